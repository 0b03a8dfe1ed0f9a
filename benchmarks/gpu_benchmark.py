"""Throughput of the recognizer, the detector and the whole pipeline on one device, and which stage bounds it.

    python benchmarks/gpu_benchmark.py [--device cuda|cpu] [--out DIR] [--tiny] [--budget-s 120]

Measures, on the stated device (default: cuda if available, else cpu):
* recognizer crops/s at batch 64, 256, 1024 (synthetic words from ``ocrapp.training.data.synth_words``; PIL's
  built-in font if the machine has no font files);
* detector pages/s at its default input size (pages of a generated born-digital PDF);
* end-to-end pages/s on that PDF (reportlab, several pages of running text), through ``OCR.process_pages`` with
  the loader thread, as ``ocrapp pdf`` runs it;
* time per stage run one after the other (rasterisation, detection, rectification, recognition, layout): the
  largest is the stage that bounds end-to-end throughput (rasterisation runs in a thread beside the models);
* peak GPU memory (torch.cuda.max_memory_allocated) per part.
Uses the shipped weights in models/ when present, else randomly initialised models of the same architecture
(random weights never stop decoding early, so the recognizer numbers are then a worst case).
Writes ``gpu_benchmark.json`` and ``gpu_benchmark.md`` into --out (and prints the Markdown).
``--tiny``: small models, batches and pages, for a CPU test in seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

WORDS = ("the of and to in for is on that by this with from you at are be or an will as can has have not more "
         "report annual revenue total page section table figure results market quarter growth customer invoice "
         "number date amount account payment service product company summary analysis financial statement "
         "December January 2024 2025 12.5% $1,234.56 No. ID: A-17 (see p. 4) e-mail www.example.org").split()


# -- inputs ---------------------------------------------------------------------------------------------------
def make_pdf(path: Path, pages: int, seed: int = 0) -> Path:
    """A born-digital PDF: a title and paragraphs of running text in the PDF base fonts (no font files needed)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    rng = random.Random(seed)
    c = canvas.Canvas(str(path), pagesize=A4)
    width, height = A4
    for p in range(pages):
        c.setFont("Helvetica-Bold", 16)
        c.drawString(60, height - 70, f"Section {p + 1}: {' '.join(rng.choices(WORDS, k=4)).title()}")
        y = height - 100
        while y > 70:
            font, size = rng.choice([("Times-Roman", 10), ("Helvetica", 10), ("Times-Roman", 11), ("Courier", 9)])
            c.setFont(font, size)
            line, x_max = "", width - 120
            while True:
                word = rng.choice(WORDS)
                if c.stringWidth(f"{line} {word}", font, size) > x_max:
                    break
                line = f"{line} {word}".strip()
            c.drawString(60, y, line)
            y -= size * 1.45 + (8 if rng.random() < 0.12 else 0)
        c.showPage()
    c.save()
    return path


def rasterise(pdf: Path, dpi: int) -> tuple[list[np.ndarray], str]:
    """Page images of ``pdf``: poppler as ``ocrapp`` uses it when installed, else pypdfium2."""
    if shutil.which("pdftoppm"):
        from ocrapp.io.pdf import probe_pdf, render_pdf_page

        n = probe_pdf(pdf).page_count
        return [render_pdf_page(pdf, i, dpi) for i in range(n)], "poppler"
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    images = [np.asarray(page.render(scale=dpi / 72).to_pil().convert("RGB")) for page in doc]
    doc.close()
    return images, "pypdfium2"


def make_crops(count: int, seed: int = 123) -> tuple[list[np.ndarray], str]:
    try:
        from ocrapp.training.data.synth_words import RenderConfig, WordRenderer

        renderer = WordRenderer(RenderConfig(), seed=seed)
        return [renderer.sample()[0] for _ in range(count)], "synth_words"
    except Exception:  # no font files (or no wordfreq) on this machine: PIL's built-in font
        from PIL import Image, ImageDraw, ImageFont

        rng = random.Random(seed)
        font = ImageFont.load_default(size=26)
        crops = []
        for _ in range(count):
            text = rng.choice(WORDS)
            w = int(font.getlength(text)) + 12
            img = Image.new("RGB", (max(w, 16), 34), (250, 250, 245))
            ImageDraw.Draw(img).text((6, 2), text, fill=(20, 20, 20), font=font)
            crops.append(np.asarray(img))
        return crops, "pil-default-font"


# -- models ---------------------------------------------------------------------------------------------------
def load_models(device: torch.device, tiny: bool, random_weights: bool):
    from ocrapp.detection.model import DEFAULT_ARCH, DETECTOR_CONFIGS, build_detector, load_detector
    from ocrapp.detection.predictor import DetectionPredictor
    from ocrapp.models_registry import default_detector_path, default_recognizer_path
    from ocrapp.recognition.clip4str.config import CONFIGS
    from ocrapp.recognition.clip4str.model import Clip4Str
    from ocrapp.recognition.predictor import Recognizer
    from ocrapp.recognition.weights import load_recognizer

    det_path, rec_path = default_detector_path(DEFAULT_ARCH), default_recognizer_path()
    size = 256 if tiny else DETECTOR_CONFIGS[DEFAULT_ARCH].input_size
    if det_path.exists() and not random_weights:
        det_model, det_src = load_detector(det_path, DEFAULT_ARCH, device), det_path.name
    else:
        torch.manual_seed(0)
        det_model, det_src = build_detector(DEFAULT_ARCH), f"random {DEFAULT_ARCH}"
    detector = DetectionPredictor(det_model, input_size=size, device=device, fold_batchnorm=True)
    if rec_path.exists() and not random_weights and not tiny:
        rec_model, rec_src = load_recognizer(rec_path, device), rec_path.name
    else:
        torch.manual_seed(0)
        name = "clip4str-tiny" if tiny else "clip4str-s"
        rec_model, rec_src = Clip4Str(CONFIGS[name]), f"random {name}"
    return detector, Recognizer(rec_model, device), {"detector": det_src, "recognizer": rec_src,
                                                     "detector_input_size": size}


# -- measurements ---------------------------------------------------------------------------------------------
class Clock:
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, fn, *args):
        self.sync()
        t = time.perf_counter()
        out = fn(*args)
        self.sync()
        return time.perf_counter() - t, out


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def bench_recognizer(recognizer, crops: list[np.ndarray], batches: list[int], clock: Clock, deadline: float,
                     repeats: int) -> list[dict]:
    from ocrapp.recognition.long_crops import SplitConfig
    from ocrapp.recognition.predictor import RecognizerConfig

    rows = []
    base_cfg = recognizer.cfg
    for batch in batches:
        if time.time() > deadline:
            rows.append({"batch": batch, "skipped": "time budget"})
            continue
        # a fixed batch: growth, splitting and second readings off, so the number is for exactly this batch size
        recognizer.cfg = RecognizerConfig(batch_size=batch, max_batch_size=batch, split=SplitConfig(cut_aspect=1e9),
                                          vertical_aspect=0.0)
        recognizer._batch_size = batch
        items = (crops * (batch // len(crops) + 1))[:batch]
        reset_peak(clock.device)
        try:
            clock.time(recognizer.read, items)  # warm-up (kernels, allocator)
            times = [clock.time(recognizer.read, items)[0] for _ in range(repeats)]
        except Exception as exc:
            rows.append({"batch": batch, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            continue
        med = statistics.median(times)
        rows.append({"batch": batch, "crops": len(items), "effective_batch": recognizer._batch_size,
                     "median_s": round(med, 4),
                     "crops_per_s": round(batch / med, 1), "peak_mib": peak_mib(clock.device)})
    recognizer.cfg, recognizer._batch_size = base_cfg, base_cfg.batch_size
    return rows


def bench_detector(detector, pages: list[np.ndarray], clock: Clock, repeats: int) -> dict:
    reset_peak(clock.device)
    clock.time(detector.predict, pages[: max(1, min(len(pages), detector.batch_size))])  # warm-up
    times = [clock.time(detector.predict, pages)[0] for _ in range(repeats)]
    med = statistics.median(times)
    return {"pages": len(pages), "input_size": detector.input_size, "batch": detector.batch_size,
            "median_s": round(med, 4), "pages_per_s": round(len(pages) / med, 2), "peak_mib": peak_mib(clock.device)}


def bench_stages(ocr, pdf: Path, dpi: int, clock: Clock) -> tuple[dict, list]:
    """Each stage alone, one after the other, over the whole PDF (seconds per page)."""
    from ocrapp.io.sources import PageImage
    from ocrapp.pipeline import assemble_page, select_words
    from ocrapp.rectify import rectify_words

    cfg = ocr.config
    t_raster, (images, _how) = clock.time(rasterise, pdf, dpi)
    sources = [PageImage(i, img, dpi, pdf) for i, img in enumerate(images)]
    t_det, found = clock.time(ocr.detector.predict, [s.image for s in sources])
    # the network alone (resize, upload, forward, download), without the DB postprocessing on the host
    t_fwd, _ = clock.time(lambda: list(ocr.detector.iter_maps([s.image for s in sources])))

    def rectify():
        kept, crops = [], []
        for s, f in zip(sources, found):
            words = select_words(s.image, f, cfg.rectify)
            kept.append(words)
            crops.extend(rectify_words(s.image, [p for p, _ in words], cfg.rectify))
        return kept, crops

    t_rect, (kept, crops) = clock.time(rectify)
    t_rec, readings = clock.time(ocr.recognizer.read, crops)

    def layout():
        from ocrapp.document import Word

        it = iter(readings)
        return [assemble_page(s, [Word(t, c, p, sc) for (p, sc), (t, c) in zip(words, it)], cfg)
                for s, words in zip(sources, kept)]

    t_lay, pages = clock.time(layout)
    n = len(sources)
    stages = {"rasterisation": t_raster, "detection": t_det, "rectification": t_rect, "recognition": t_rec,
              "layout": t_lay}
    per_page = {k: round(v / n, 4) for k, v in stages.items()}
    return {"pages": n, "crops": len(crops), "crops_per_page": round(len(crops) / n, 1), "s_per_page": per_page,
            "detection_forward_ms_per_page": round(1000 * t_fwd / n, 1),
            "bound_by": max(stages, key=stages.get),
            "models_bound_by": max((k for k in stages if k != "rasterisation"), key=stages.get)}, pages


def bench_end_to_end(ocr, pdf: Path, dpi: int, clock: Clock) -> dict:
    """The pipeline as ``ocrapp pdf`` runs it: loader thread + page groups through OCR.process_pages."""
    from ocrapp.io.sources import PageImage
    from ocrapp.pipeline import chunked, prefetch

    group = ocr.config.pages_per_batch or (4 if clock.device.type == "cpu" else 16)
    reset_peak(clock.device)

    def run():
        if shutil.which("pdftoppm"):
            return list(ocr.iter_pages(pdf))

        def load():  # pypdfium2 page by page, like poppler in ocrapp.io
            import pypdfium2 as pdfium

            doc = pdfium.PdfDocument(str(pdf))
            for i, page in enumerate(doc):
                yield PageImage(i, np.asarray(page.render(scale=dpi / 72).to_pil().convert("RGB")), dpi, pdf)
            doc.close()

        out = []
        ahead = 2 if clock.device.type == "cpu" else group
        for chunk in chunked(prefetch(load(), depth=ahead), group):
            out.extend(ocr.process_pages(chunk, ocr.config))
        return out

    seconds, pages = clock.time(run)
    return {"pages": len(pages), "pages_per_batch": group, "seconds": round(seconds, 3),
            "pages_per_s": round(len(pages) / seconds, 3), "words": sum(sum(1 for _ in p.words)
                                                                        for p in pages),
            "peak_mib": peak_mib(clock.device)}


# -- report ---------------------------------------------------------------------------------------------------
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)"


def markdown(r: dict) -> str:
    lines = [f"### ocrapp GPU benchmark: {r['device_name']} ({r['device']}), {r['date']}", "",
             f"Weights: detector {r['weights']['detector']}, recognizer {r['weights']['recognizer']}; "
             f"crops: {r['crops_source']}; PDF rasteriser: {r['rasteriser']}; torch {r['torch']}; "
             f"autocast {r['autocast']}.", "", "| measure | value |", "|---|---|"]
    for row in r["recognizer"]:
        val = (f"{row['crops_per_s']} crops/s" + (f", peak {row['peak_mib']} MiB" if row.get("peak_mib") else "")
               if "crops_per_s" in row else row.get("error") or row.get("skipped"))
        lines.append(f"| recognizer, batch {row['batch']} | {val} |")
    d = r["detector"]
    lines.append(f"| detector, {d['input_size']} px, batch {d['batch']} | {d['pages_per_s']} pages/s"
                 + (f", peak {d['peak_mib']} MiB" if d.get("peak_mib") else "") + " |")
    e = r["end_to_end"]
    lines.append(f"| end to end, {e['pages']}-page PDF at {r['dpi']} dpi | {e['pages_per_s']} pages/s"
                 + (f", peak {e['peak_mib']} MiB" if e.get("peak_mib") else "") + " |")
    s = r["stages"]
    per = ", ".join(f"{k} {v * 1000:.0f}" for k, v in s["s_per_page"].items())
    lines += [f"| ms per page by stage (serial) | {per} |",
              f"| bounded by | {s['bound_by']} (models alone: {s['models_bound_by']}); "
              f"{s['crops_per_page']} crops/page |",
              f"| detector forward alone (no postprocessing) | {s['detection_forward_ms_per_page']:.0f} ms/page |",
              "| peak GPU memory | " + (f"{r['max_peak_mib']} MiB" if r["device"] == "cuda" else "n/a (CPU)") + " |",
              ""]
    return "\n".join(lines)


def run(device: str | None = None, out: Path | None = None, tiny: bool = False, budget_s: float = 120.0,
        random_weights: bool = False, dpi: int = 200, pages: int | None = None, batches: list[int] | None = None,
        repeats: int | None = None) -> dict:
    from ocrapp.pipeline import OCR, OcrConfig

    t0 = time.time()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    clock = Clock(dev)
    reset_peak(dev)
    detector, recognizer, weights = load_models(dev, tiny, random_weights)
    batches = batches or ([4, 8, 16] if tiny else [64, 256, 1024])
    n_pages = pages or (2 if tiny else (24 if dev.type == "cuda" else 4))
    dpi = 72 if tiny else dpi
    crops, crops_source = make_crops(16 if tiny else 512)
    repeats = repeats or (1 if tiny else 3)
    report: dict = {"device": dev.type, "device_name": device_name(dev), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                              time.gmtime()),
                    "torch": torch.__version__, "tiny": tiny, "weights": weights, "crops_source": crops_source,
                    "dpi": dpi, "autocast": str(__import__("ocrapp.accel", fromlist=["x"]).autocast_dtype(dev))}
    # the recognizer gets about half of the budget; batches left when it runs out are marked skipped
    report["recognizer"] = bench_recognizer(recognizer, crops, batches, clock, t0 + budget_s * 0.5, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        pdf = make_pdf(Path(tmp) / "bench.pdf", n_pages)
        images, report["rasteriser"] = rasterise(pdf, dpi)
        report["detector"] = bench_detector(detector, images, clock, repeats)
        ocr = OCR.__new__(OCR)  # the same OCR object, with the models built above
        ocr.config, ocr.device, ocr.detector, ocr.recognizer = OcrConfig(device=dev.type, dpi=dpi), dev, detector, \
            recognizer
        reset_peak(dev)
        report["stages"], _ = bench_stages(ocr, pdf, dpi, clock)
        report["stages"]["peak_mib"] = peak_mib(dev)
        report["end_to_end"] = bench_end_to_end(ocr, pdf, dpi, clock)
    parts = report["recognizer"] + [report["detector"], report["stages"], report["end_to_end"]]
    report["peak_mib"] = report["max_peak_mib"] = (max(p.get("peak_mib") or 0 for p in parts) if dev.type == "cuda"
                                                   else None)
    report["seconds"] = round(time.time() - t0, 1)
    report["markdown"] = markdown(report)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_benchmark.json").write_text(json.dumps(report, indent=2))
        (out / "gpu_benchmark.md").write_text(report["markdown"] + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda if available)")
    p.add_argument("--out", type=Path, default=None, help="folder for gpu_benchmark.json / .md")
    p.add_argument("--tiny", action="store_true", help="tiny models and sizes (CPU test)")
    p.add_argument("--budget-s", type=float, default=120.0)
    p.add_argument("--random-weights", action="store_true", help="ignore the shipped weights")
    p.add_argument("--pages", type=int, default=None, help="PDF pages (default 24 on a GPU, 4 on a CPU)")
    p.add_argument("--dpi", type=int, default=200)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--batches", type=int, nargs="+", default=None, help="recognizer batches (default 64 256 1024)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per measure (median; default 3)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    report = run(a.device, a.out, a.tiny, a.budget_s, a.random_weights, a.dpi, a.pages, a.batches, a.repeats)
    print(report["markdown"])


if __name__ == "__main__":
    main()
