#!/usr/bin/env python
"""Pack what a lent GPU machine lacks into .gpu/ (git-ignored via .git/info/exclude), to travel with `carry`.

    . .venv/bin/activate && python scripts/gpu_pack.py        # run here, where PyPI is reachable

The device machine (see scripts/gpu_session.md) has Python 3.12 with torch, torchvision, numpy, opencv, scipy,
h5py, onnx, timm, huggingface_hub, safetensors, typer, fonttools, pillow, regex, msgpack, tqdm ..., no internet,
no font files we can rely on, and maybe no poppler. This writes:

* .gpu/site.tar.gz  pure-Python packages copied from this venv (their RECORD files), wordfreq data cut to the
                    six languages of ocrapp.training.data.corpus and their 60000 most frequent words;
* .gpu/whl/*.whl    CPython 3.12 manylinux wheels of the compiled ones (shapely, pyclipper, rapidfuzz);
* .gpu/poppler.tar.gz pdftotext/pdftoppm/pdfinfo of this machine with their libraries (used only where the device
                    has no poppler; the detector's page engine and ocrapp's PDF input call them);
* .gpu/fonts.tar.gz Debian font families the data engines render with (Caladea and URW Bookman, the held-out
                    families, included; Noto: Latin regular and bold only; the printer faces last, each in its
                    folder); freefont left out for size;
* .gpu/imports.txt  the modules scripts/gpu_session.sh checks before it starts.

``--model recognizer`` packs for the recognizer recipe alone (the benchmark needs docTR: pass --skip-benchmark):
its few pure packages, no wheels, poppler, fonts up to 12.5 MiB (the printer faces last), and .gpu/pdfs.tar, a
sample of small training-split Debian PDFs (from ~/.cache/ocrapp/debian, built by
``ocrapp.training.data.pdf_crops``) filling the rest, from which the recipe cuts real-word crops on the device:
without them a GPU run drifts away from real PDF words.
"""

from __future__ import annotations

import importlib.metadata as md
import io
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_DIR = ".gpu"  # scripts/gpu_session.sh reads $GPU_PACK, default .gpu
PURE = ["open_clip_torch", "ftfy", "wcwidth", "python-doctr", "anyascii", "langdetect", "validators", "fpdf2",
        "defusedxml", "pypdf", "pdf2image", "reportlab", "wordfreq", "langcodes", "locate", "Faker", "pypdfium2"]
BINARY = ["shapely", "pyclipper", "rapidfuzz"]  # pinned to this venv's versions
# --model recognizer: what the recognizer recipe and its data engines import (msgpack, regex: on the device)
RECOGNIZER_PURE = ["open_clip_torch", "ftfy", "wcwidth", "wordfreq", "langcodes", "locate", "defusedxml"]
# the modules scripts/gpu_session.sh checks before it starts (.gpu/imports.txt)
IMPORTS = {"any": "torch open_clip doctr shapely reportlab wordfreq ocrapp.pipeline",
           "recognizer": "torch open_clip wordfreq ocrapp.training.recognizer.gpu_recipe"}
RECOGNIZER_FONT_MIB = 12.5  # fonts first, up to this; the real-PDF sample gets the rest
PDF_ROOT = Path.home() / ".cache/ocrapp/debian"  # Debian documentation packages, unpacked by pdf_crops
PDF_SIZE = (30_000, 400_000)  # bytes: small documents, so that many documents (fonts, layouts) fit
WORDFREQ_LANGS = ("en", "fr", "de", "es", "it", "pt")
WORDFREQ_TOP = 60000  # > RenderConfig.vocab_size (40000)
FONT_DIRS = ["truetype/crosextra", "opentype/urw-base35", "truetype/liberation", "truetype/dejavu"]  # + Noto
LIMIT_MIB = 62.0  # the device tool's limit on what travels is 64 MiB
FONT_SKIP = ("Condensed", "ExtraLight")  # DejaVu variants, left out for size
NOTO_LATIN = ("NotoSans-", "NotoSerif-", "NotoSansMono-", "NotoSerifDisplay-", "NotoSansDisplay-")
PRINTER_FACE_MAX_BYTES = 300_000  # the printer faces (till-receipt print) but the large CJK ones (Mplus1Code)


# the faker locales of ocrapp.training.data.synth_doc (and their languages, Faker's fallback)
FAKER_LOCALES = {"en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "pt_PT", "nl_NL"}
# + the lorem fallbacks Faker imported on the device (session 9: "No module named faker.providers.lorem.la/nl_BE")
FAKER_KEEP = FAKER_LOCALES | {loc.split("_")[0] for loc in FAKER_LOCALES} | {"la", "nl_BE"}
_LOCALE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")


def _keep(rel: str) -> bool:
    if "__pycache__" in rel or rel.endswith(".pyc") or rel.startswith(".."):
        return False
    if rel.startswith("wordfreq/data/"):
        return any(rel.endswith(f"_{lang}.msgpack.gz") for lang in WORDFREQ_LANGS)
    if rel.startswith("faker/"):
        parts = rel.split("/")
        return not any(_LOCALE.match(p) and p not in FAKER_KEEP for p in parts[2:-1] + [parts[-1].removesuffix(".py")])
    return True


def pack_site(path: Path, names: list[str]) -> int:
    files = 0
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            dist = md.distribution(name)
            for f in dist.files or []:
                rel = str(f)
                if not _keep(rel):
                    continue
                src = Path(dist.locate_file(f))
                if src.suffix == ".so" and "cpython" in src.name:
                    raise SystemExit(f"{name} has a CPython extension ({src.name}): move it to BINARY")
                if not src.is_file():
                    continue
                if rel.startswith("wordfreq/data/large_"):
                    data = _top_words(src, WORDFREQ_TOP)
                    info = tarfile.TarInfo(rel)
                    info.size, info.mtime = len(data), int(src.stat().st_mtime)
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.add(src, arcname=rel)
                files += 1
    return files


def _top_words(path: Path, keep: int) -> bytes:
    """A wordfreq cBpack list (gzipped msgpack: header, then frequency buckets of words) cut after the buckets
    that hold the ``keep`` most frequent words: top_n_list(lang, n <= keep) is unchanged, and it is far smaller."""
    import gzip

    import msgpack

    with gzip.open(path, "rb") as f:
        data = msgpack.load(f, raw=False)
    out, count = [data[0]], 0
    for bucket in data[1:]:
        out.append(bucket)
        count += len(bucket)
        if count >= keep:
            break
    return gzip.compress(msgpack.dumps(out), mtime=0)


def download_wheels(dest: Path) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    pins = [f"{n}=={md.version(n)}" for n in BINARY]
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                 "manylinux1_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "-d", str(dest), *[a for p in platforms for a in ("--platform", p)], *pins]
    subprocess.run(cmd, check=True)
    return sorted(p.name for p in dest.glob("*.whl"))


def _font_groups(root: Path) -> list[list[Path]]:
    """Font files by family folder, most needed first (the held-out families first: the recipe's test set)."""
    sys.path.insert(0, str(REPO))
    from ocrapp.training.data.fonts import discover_printer_faces

    groups = []
    for d in FONT_DIRS:
        groups.append([f for f in sorted((root / d).rglob("*"))
                       if f.suffix.lower() in (".ttf", ".otf") and not any(x in f.name for x in FONT_SKIP)])
    groups.append([f for f in sorted((root / "truetype/noto").glob("*"))  # regular and bold only, to stay small
                   if f.name.startswith(NOTO_LATIN) and f.stem.endswith(("-Regular", "-Bold"))])
    groups.append([face.path for face in discover_printer_faces(roots=_font_roots(root))
                   if face.path.stat().st_size <= PRINTER_FACE_MAX_BYTES])
    return groups


def _font_roots(root: Path) -> tuple[Path, ...]:
    return (root / "truetype", root / "opentype")


def _arcname(font: Path) -> str:
    """Flat, but a printer face keeps its folder: that is how the data engine tells it from a document face."""
    from ocrapp.training.data.fonts import is_printer_face

    return f"{font.parent.name}/{font.name}" if is_printer_face(font) else font.name


def _gz_size(files: list[Path]) -> int:
    import gzip

    return sum(len(gzip.compress(f.read_bytes(), compresslevel=6)) for f in files)


def pack_fonts(path: Path, budget: float, root: Path = Path("/usr/share/fonts")) -> int:
    """Whole family folders in FONT_DIRS order while their compressed size fits ``budget`` bytes."""
    files, used = 0, 0
    with tarfile.open(path, "w:gz") as tar:
        for group in _font_groups(root):
            size = _gz_size(group)
            if used + size > budget and files:
                print(f"left out for size: {group[0].parent.name} ({size / 2**20:.1f} MiB)")
                continue
            for f in group:
                tar.add(f, arcname=_arcname(f))
            used += size
            files += len(group)
    return files


POPPLER_TOOLS = ("pdftotext", "pdftoppm", "pdfinfo")
# the device's own C runtime is newer: never shadow it
_SYSTEM_LIBS = ("libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "ld-linux", "libstdc++.so",
                "libgcc_s.so")
_WRAPPER = """#!/bin/sh
d=$(cd "$(dirname "$0")/.." && pwd)
LD_LIBRARY_PATH="$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$d/real/$(basename "$0")" "$@"
"""


def pack_poppler(path: Path) -> int:
    """poppler's command-line tools with the shared libraries they need (glibc and libstdc++ excepted), behind
    wrappers that set LD_LIBRARY_PATH for them alone: bin/pdftotext etc. (the detector's data engine needs them)."""
    libs: set[str] = set()
    for tool in POPPLER_TOOLS:
        exe = shutil.which(tool)
        if exe is None:
            raise SystemExit(f"{tool} is not installed here (apt-get install poppler-utils)")
        for line in subprocess.run(["ldd", exe], capture_output=True, text=True, check=True).stdout.splitlines():
            parts = line.split("=>")
            if len(parts) == 2 and parts[1].strip().startswith("/"):
                lib = parts[1].split()[0]
                if not any(Path(lib).name.startswith(s) for s in _SYSTEM_LIBS):
                    libs.add(lib)
    with tarfile.open(path, "w:gz") as tar:
        for tool in POPPLER_TOOLS:
            tar.add(shutil.which(tool), arcname=f"real/{tool}")
            data = _WRAPPER.encode()
            info = tarfile.TarInfo(f"bin/{tool}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        for lib in sorted(libs):
            tar.add(str(Path(lib).resolve()), arcname=f"lib/{Path(lib).name}")
    return len(libs)


def pack_pdfs(path: Path, budget: float, root: Path = PDF_ROOT, seed: int = 0) -> int:
    """Small born-digital PDFs of the training split (``pdf_crops.document_split``), drawn round robin over the
    unpacked packages while they fit ``budget`` bytes; stored as ``<package>/<path>`` with each package's
    ``.unpacked`` marker, so that ``pdf_crops --pdf-root`` on the device finds them without a download."""
    import random

    sys.path.insert(0, str(REPO))
    from ocrapp.training.data.pdf_crops import DEFAULT_PACKAGES, document_split, fetch_debian_pdfs

    fetch_debian_pdfs(DEFAULT_PACKAGES, root)  # idempotent: downloads (about a minute) only what is not unpacked yet
    packages = sorted(d for d in root.iterdir() if (d / ".unpacked").exists())
    pools = []
    for package in packages:
        pool = [f for f in sorted(package.rglob("*.pdf")) if PDF_SIZE[0] <= f.stat().st_size <= PDF_SIZE[1]
                and document_split(str(f.relative_to(root))) == "train"]
        random.Random(seed).shuffle(pool)
        pools.append(pool)
    chosen, used = [], 0
    while any(pools):
        for pool in pools:
            if pool:
                f = pool.pop()
                if used + f.stat().st_size <= budget:
                    chosen.append(f)
                    used += f.stat().st_size
        if used >= budget - PDF_SIZE[0]:
            break
    with tarfile.open(path, "w") as tar:  # PDFs are compressed already
        for package in packages:
            info = tarfile.TarInfo(f"{package.name}/.unpacked")
            tar.addfile(info, io.BytesIO(b""))
        for f in chosen:
            tar.add(f, arcname=str(f.relative_to(root)))
    return len(chosen)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["any", "recognizer"], default="any",
                    help="recognizer: only what the recognizer recipe needs (no docTR, no wheels: the benchmark is "
                         "skipped), poppler and a sample of real Debian PDFs for its real-word crops")
    ap.add_argument("--dir", default=PACK_DIR,
                    help="pack folder in the repository (git-ignored here); a second pack lets a warm device run "
                         "a second recipe without a new start: GPU_PACK=<dir> bash scripts/gpu_session.sh ...")
    args = ap.parse_args()
    model, pack = args.model, REPO / args.dir
    pack.mkdir(exist_ok=True)
    exclude = REPO / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    if f"/{args.dir}/" not in (exclude.read_text() if exclude.exists() else ""):
        with open(exclude, "a") as f:
            f.write(f"/{args.dir}/\n")
    for old in ("site.tar.gz", "poppler.tar.gz", "fonts.tar.gz", "pdfs.tar"):
        (pack / old).unlink(missing_ok=True)
    (pack / "imports.txt").write_text(IMPORTS[model] + "\n")
    n_site = pack_site(pack / "site.tar.gz", PURE if model == "any" else RECOGNIZER_PURE)
    if model == "any":
        wheels = download_wheels(pack / "whl")
    else:
        shutil.rmtree(pack / "whl", ignore_errors=True)
        wheels = []
    n_libs = pack_poppler(pack / "poppler.tar.gz")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    tree = sum((REPO / f).stat().st_size for f in listed if f and (REPO / f).is_file()) / 2**20
    packed = sum(p.stat().st_size for p in pack.rglob("*") if p.is_file()) / 2**20
    room = LIMIT_MIB - tree - packed
    n_fonts = pack_fonts(pack / "fonts.tar.gz", (room if model == "any" else min(room, RECOGNIZER_FONT_MIB)) * 2**20)
    n_pdfs = 0
    if model == "recognizer":
        packed = sum(p.stat().st_size for p in pack.rglob("*") if p.is_file()) / 2**20
        n_pdfs = pack_pdfs(pack / "pdfs.tar", (LIMIT_MIB - tree - packed) * 2**20)
    total = sum(p.stat().st_size for p in pack.rglob("*") if p.is_file()) / 2**20
    print(f"{args.dir}/site.tar.gz: {n_site} files; wheels: {', '.join(wheels) or 'none'}; fonts: {n_fonts}; "
          f"poppler: 3 tools + {n_libs} libraries; PDFs: {n_pdfs}; {total:.1f} MiB; with the working tree "
          f"({tree:.1f} MiB) {total + tree:.1f} MiB travels (limit 64 MiB)")


if __name__ == "__main__":
    main()
