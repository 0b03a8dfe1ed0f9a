"""Page data engine for the detector: page images + word quadrilaterals, stored as JPEG + JSON.

Sources (all through the same pdftotext text-layer path, ``pdf_words``):
  (a) real pages of Debian documentation PDFs (``fetch_debian_pdfs(DEFAULT_PACKAGES)``; held-out packages refused),
      rendered at a random dpi;
  (b) synthetic documents (``synth_doc``: invoices, forms, letters, tables, receipts, articles) written as PDFs;
  (c) scan/photo simulation (``page_augment.simulate``) on both, quads transformed with the pixels.

    python -m ocrapp.training.data.pages --out ~/.cache/ocrapp/pages --count 5000 --workers 2

Layout of the cache (rebuilt from scratch on a fresh machine; existing items are kept, so runs are resumable):
    OUT/pages/<id>.jpg, OUT/pages/<id>.json   (json written last, atomically: a json means a complete item)
    OUT/pdfs/                                  unpacked Debian packages
JSON: {"id", "source", "kind": "real"|"synth", "dpi", "width", "height", "ops": [...],
       "words": [{"text": str, "quad": [[x, y] x4]}]}   quads TL,TR,BR,BL of the upright word, page pixels.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from ocrapp.training.data.pdf_words import DEFAULT_PACKAGES, fetch_debian_pdfs, pdf_page_count, read_word_boxes, render_page

DEFAULT_OUT = Path.home() / ".cache/ocrapp/pages"
MAX_SIDE = 1800  # stored pages are capped (the detector sees ~1024 px pages)


@dataclass
class PageSample:
    image: np.ndarray  # RGB uint8
    quads: np.ndarray  # (N, 4, 2) float32
    texts: list[str]
    meta: dict


def _boxes_to_quads(words, factor: float) -> tuple[np.ndarray, list[str]]:
    quads, texts = [], []
    for wb in words:
        x0, y0, x1, y1 = (v * factor for v in wb.box)
        quads.append([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        texts.append(wb.text)
    return np.asarray(quads, np.float32).reshape(-1, 4, 2), texts


def page_from_pdf(pdf: Path, page_index: int, rng: random.Random, dpi_range=(72, 200)) -> PageSample | None:
    pages = read_word_boxes(pdf, page_index, page_index)
    if not pages:
        return None
    pw = pages[0]
    if pw.width_pt <= 0 or pw.height_pt <= 0:
        return None
    dpi = rng.uniform(*dpi_range)
    dpi = min(dpi, MAX_SIDE * 72.0 / max(pw.width_pt, pw.height_pt))
    img = render_page(pdf, page_index, dpi)
    # pdftoppm rounds the pixel size: scale by actual size / points
    fx = img.shape[1] / pw.width_pt
    quads, texts = _boxes_to_quads(pw.words, fx)
    quads[..., 1] *= (img.shape[0] / pw.height_pt) / fx
    return PageSample(img, quads, texts, {"dpi": round(dpi, 1)})


def _list_pdfs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.pdf") if "debs" not in p.parts)


class _Worker:
    pdfs: list[Path] = []
    counts: dict[Path, int] = {}


def _init_worker(pdfs: list[Path]) -> None:
    import torch  # noqa: F401  (keeps threads low if imported elsewhere)

    cv2.setNumThreads(1)
    _Worker.pdfs = pdfs
    _Worker.counts = {}


def make_item(item_id: int, seed: int, real_share: float) -> dict | None:
    rng = random.Random(seed * 1_000_003 + item_id)
    sample: PageSample | None = None
    kind = "real" if (_Worker.pdfs and rng.random() < real_share) else "synth"
    for _attempt in range(6):
        try:
            if kind == "real":
                pdf = rng.choice(_Worker.pdfs)
                if pdf not in _Worker.counts:
                    _Worker.counts[pdf] = pdf_page_count(pdf)
                n = _Worker.counts[pdf]
                if n < 1:
                    continue
                sample = page_from_pdf(pdf, rng.randrange(n), rng)
                if sample is not None and len(sample.texts) < 15:
                    sample = None  # figure pages / blank pages: too little text to learn from
                if sample is not None:
                    sample.meta["source"] = pdf.name
            else:
                from ocrapp.training.data.synth_doc import make_synthetic_pdf

                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "doc.pdf"
                    layout = make_synthetic_pdf(rng, path)
                    sample = page_from_pdf(path, 0, rng, dpi_range=(90, 220))
                    if sample is not None:
                        sample.meta["source"] = f"synth:{layout}"
        except Exception as exc:  # a broken PDF page or font: try another
            print(f"item {item_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
            sample = None
        if sample is not None and len(sample.texts) > 0:
            break
    if sample is None:
        return None
    from ocrapp.training.data.page_augment import simulate

    receipt = sample.meta.get("source") == "synth:receipt"
    img, quads, ops = simulate(sample.image, sample.quads, rng, dot_matrix_p=0.5 if receipt else 0.03)
    h, w = img.shape[:2]
    if max(h, w) > MAX_SIDE:
        f = MAX_SIDE / max(h, w)
        img = cv2.resize(img, (int(w * f), int(h * f)), interpolation=cv2.INTER_AREA)
        quads = quads * np.float32([img.shape[1] / w, img.shape[0] / h])
    return {"id": item_id, "kind": kind, "image": img, "quads": quads, "texts": sample.texts, "ops": ops,
            **sample.meta}


def write_item(out_dir: Path, item: dict) -> None:
    """Atomic write: JPEG first, then the JSON (its presence marks a complete item)."""
    name = f"{item['id']:07d}"
    img = item.pop("image")
    quads = item.pop("quads")
    texts = item.pop("texts")
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    tmp = out_dir / f".{name}.jpg.tmp"
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, out_dir / f"{name}.jpg")
    meta = {**item, "height": int(img.shape[0]), "width": int(img.shape[1]),
            "words": [{"text": t, "quad": [[round(float(x), 1), round(float(y), 1)] for x, y in q]}
                      for t, q in zip(texts, quads)]}
    tmp = out_dir / f".{name}.json.tmp"
    tmp.write_text(json.dumps(meta, ensure_ascii=False))
    os.replace(tmp, out_dir / f"{name}.json")


def _job(args: tuple[int, int, float, str]) -> int:
    item_id, seed, real_share, out = args
    item = make_item(item_id, seed, real_share)
    if item is None:
        return 0
    write_item(Path(out), item)
    return 1


def load_item(json_path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read a stored page: (RGB image, quads (N,4,2) float32, metadata)."""
    meta = json.loads(Path(json_path).read_text())
    img = cv2.imread(str(Path(json_path).with_suffix(".jpg")), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(Path(json_path).with_suffix(".jpg"))
    quads = np.asarray([w["quad"] for w in meta["words"]], np.float32).reshape(-1, 4, 2)
    return img[..., ::-1].copy(), quads, meta


def build_pages(out: Path, count: int, workers: int = 1, seed: int = 0, real_share: float = 0.5,
                packages: tuple[str, ...] = DEFAULT_PACKAGES, pdf_root: Path | None = None,
                start: int = 0, log_every: int = 50) -> int:
    """Generate items ``start .. start+count-1`` that are not in the cache yet. Returns how many were written."""
    page_dir = out / "pages"
    page_dir.mkdir(parents=True, exist_ok=True)
    pdfs: list[Path] = []
    if real_share > 0:
        pdf_root = pdf_root or out / "pdfs"
        try:
            pdfs = fetch_debian_pdfs(tuple(packages), pdf_root)
        except Exception as exc:  # offline: fall back to synthetic pages only, loudly
            print(f"warning: Debian PDFs unavailable ({exc}); using whatever is unpacked + synthetic pages",
                  file=sys.stderr)
            pdfs = _list_pdfs(pdf_root) if pdf_root.exists() else []
    todo = [i for i in range(start, start + count) if not (page_dir / f"{i:07d}.json").exists()]
    print(f"{len(pdfs)} real PDFs; {len(todo)} of {count} pages to generate into {page_dir}", flush=True)
    jobs = [(i, seed, real_share, str(page_dir)) for i in todo]
    done = 0
    t0 = time.time()
    if workers <= 1:
        _init_worker(pdfs)
        results = map(_job, jobs)
        for k, r in enumerate(results, 1):
            done += r
            if k % log_every == 0:
                print(f"{k}/{len(jobs)} pages, {time.time() - t0:.0f}s", flush=True)
    else:
        with Pool(workers, initializer=_init_worker, initargs=(pdfs,)) as pool:
            for k, r in enumerate(pool.imap_unordered(_job, jobs, chunksize=4), 1):
                done += r
                if k % log_every == 0:
                    print(f"{k}/{len(jobs)} pages, {time.time() - t0:.0f}s", flush=True)
    return done


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--start", type=int, default=0, help="first item id (to extend a cache)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real-share", type=float, default=0.5, help="share of real Debian pages (rest synthetic)")
    ap.add_argument("--packages", nargs="*", default=list(DEFAULT_PACKAGES))
    ap.add_argument("--pdf-root", type=Path, default=None, help="where Debian packages are unpacked (default OUT/pdfs)")
    args = ap.parse_args(argv)
    n = build_pages(args.out, args.count, args.workers, args.seed, args.real_share, tuple(args.packages),
                    args.pdf_root, args.start)
    print(f"wrote {n} pages to {args.out / 'pages'}")


if __name__ == "__main__":
    main()
