"""Recognizer throughput on this machine: crops/s at a given batch size, median of several runs.

python benchmarks/recognizer_speed.py [--weights models/recognizer_clip4str-s.safetensors] [--batch 64]
    [--runs 7] [--threads 2] [--device cpu] [--full-prefix] [--cross-decoding ar|fast] [--cross-skip T] [--fp32]
    [--reread-below T] [--no-lexicon] [--crops synthetic|<dev crop set>] [--count N]
Crops are synthetic words rendered with the data engine (fixed seed), so every run reads the same pixels; with
``--crops c-pdf-word-crops`` (or another dev crop set) the first ``--count`` crops of that set in ../shared/data/dev.
Each run reads ``--count`` crops (default: one batch) in batches of ``--batch``; the recognizer orders them by
aspect ratio first, as it does a page's words, so batches of many crops decode fewer steps. Throughput depends on
the crops: unsure ones are read a second time and long ones in pieces.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from ocrapp.bench.datasets import DEV_CROP_SETS, iter_dev_crops
from ocrapp.models_registry import default_recognizer_path
from ocrapp.recognition.predictor import Recognizer, RecognizerConfig
from ocrapp.training.data.synth_words import RenderConfig, WordRenderer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=default_recognizer_path())
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--full-prefix", action="store_true",
                   help="decode with the full-prefix decoder instead of the incremental one (same readings)")
    p.add_argument("--cross-decoding", choices=["ar", "fast"], default="ar")
    p.add_argument("--cross-skip", type=float, default=RecognizerConfig.cross_skip_confidence,
                   help="visual confidence above which the cross-modal branch is skipped; <= 0: never skip")
    p.add_argument("--fp32", action="store_true",
                   help="the image tower in fp32 even where the CPU has native bf16 (the default uses it there)")
    p.add_argument("--reread-below", type=float, default=RecognizerConfig.reread_below,
                   help="confidence below which a crop is read again with a wider margin; <= 0: read once")
    p.add_argument("--no-lexicon", action="store_true", help="no word-list corrections of unsure readings")
    p.add_argument("--crops", choices=("synthetic",) + DEV_CROP_SETS, default="synthetic",
                   help="what is read: degraded synthetic words (default) or the first crops of a dev crop set")
    p.add_argument("--count", type=int, default=None, help="crops read per run (default: --batch)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    count = a.count or a.batch
    crops = _crops(a.crops, count)
    skip = a.cross_skip if a.cross_skip > 0 else None
    cfg = RecognizerConfig(
        batch_size=a.batch, cross_decoding=a.cross_decoding, cross_skip_confidence=skip,
        low_precision_image_tower=not a.fp32, reread_below=a.reread_below if a.reread_below > 0 else None)
    rec = Recognizer.from_pretrained(a.weights, a.device, replace(cfg, lexicon=None) if a.no_lexicon else cfg)
    rec.model.incremental_decoding = not a.full_prefix
    rec.read(crops)  # warm-up
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        rec.read(crops)
        times.append(time.perf_counter() - t)
    median = statistics.median(times)
    print(json.dumps({"crops_per_s": round(count / median, 1), "batch": a.batch, "count": count, "runs": a.runs,
                      "threads": a.threads, "device": a.device,
                      "decoder": "full-prefix" if a.full_prefix else "incremental",
                      "cross_decoding": a.cross_decoding, "cross_skip_confidence": skip,
                      "reread_below": rec.cfg.reread_below, "lexicon": rec.lexicon is not None,
                      "image_tower": str(rec.model.image_autocast or torch.float32).removeprefix("torch."),
                      "crops": a.crops, "cpu": platform.processor() or platform.machine(),
                      "median_s": round(median, 4)}))


def _crops(source: str, count: int) -> list:
    if source == "synthetic":
        renderer = WordRenderer(RenderConfig(), seed=123)
        return [renderer.render(*_word_and_font(renderer)) for _ in range(count)]
    crops = [crop.image for _, crop in zip(range(count), iter_dev_crops(source))]
    if len(crops) < count:
        raise SystemExit(f"{source} holds {len(crops)} crops, fewer than the {count} asked for")
    return crops


def _word_and_font(renderer: WordRenderer):
    text = renderer.sampler.sample()
    fonts = [f for f in renderer.fonts if f.covers(text)]
    return text, renderer.rng.choice(fonts)


if __name__ == "__main__":
    main()
