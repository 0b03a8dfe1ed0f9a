"""Median seconds per page of the detector on CPU (default: 2 threads, the input size stored in the weights).

    python benchmarks/detection_speed.py [--weights models/detector_db_mobilenet_v3_large_h96.safetensors]
        [--threads 2] [--input-size N] [--pages 5] [--batch 1] [--fp32]

The page is a synthetic letter (fixed seed) rendered at 150 dpi; its pixel size is reported as page_px. Without a weights file the model runs
randomly initialised (same cost; the postprocessor time then differs). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    import torch

    from ocrapp.detection import DEFAULT_ARCH, DetectionPredictor, build_detector, load_detector
    from ocrapp.detection.model import inference_size
    from ocrapp.training.data.pages import page_from_pdf
    from ocrapp.training.data.synth_doc import make_synthetic_pdf

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=REPO / "models" / f"detector_{DEFAULT_ARCH}.safetensors")
    ap.add_argument("--arch", default=DEFAULT_ARCH)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input-size", type=int, default=None, help="default: the size stored in the weights, else 1024")
    ap.add_argument("--pages", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--fp32", action="store_true", help="fp32 even where the CPU has native bf16 (the default uses it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "page.pdf"
        rng = random.Random(2024)
        make_synthetic_pdf(rng, pdf, "letter")
        page = page_from_pdf(pdf, 0, rng, dpi_range=(150, 150)).image
    trained = args.weights.exists()
    model = load_detector(args.weights, args.arch) if trained else build_detector(args.arch).eval()
    size = inference_size(model, args.arch, args.input_size)
    pred = DetectionPredictor(model, input_size=size, batch_size=args.batch, fold_batchnorm=True,
                              low_precision=not args.fp32)
    pred.predict([page] * args.batch)  # warm-up
    times = []
    n_words = 0
    for _ in range(args.pages):
        t0 = time.perf_counter()
        out = pred.predict([page] * args.batch)
        times.append((time.perf_counter() - t0) / args.batch)
        n_words = len(out[0])
    print(json.dumps({"arch": args.arch, "weights": str(args.weights) if trained else "random-init",
                      "threads": args.threads, "input_size": size, "page_px": list(page.shape[:2]),
                      "median_s_per_page": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                      "words_found": n_words, "precision": "fp32" if args.fp32 else "default",
                      "cpu": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
