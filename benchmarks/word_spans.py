"""Choose how a box read as several words is cut into word boxes (``OcrConfig.word_spans``), on held-out pages of
the training page cache (the validation split, never trained on; the dev data is not used here).

    python benchmarks/word_spans.py [--data ~/.cache/ocrapp/pages] [--pages 80] [--min-gaps 0.08 0.2 0.3]
        [--min-contrasts 1 1.5 2 3] [--threads 2] [--json out.json]

Each page is read once by the whole pipeline (``OCR.read_boxes``); the boxes of the words it reports are then
scored, for each setting (every pair of ``min_gap`` and ``min_contrast``) and with no cutting at all, by
one-to-one IoU >= 0.5 against the page's word boxes (recall, precision, hmean), with how many boxes were read as
several words and how many of those were cut.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from ocrapp.detection.metrics import DetCounts, match_counts
from ocrapp.detection.tune import held_out_pages
from ocrapp.document import Polygon
from ocrapp.io.sources import PageImage
from ocrapp.pipeline import OCR, OcrConfig, ReadBox, split_words
from ocrapp.recognition.word_boxes import WordSpanConfig


def score(pages: list[tuple[list[ReadBox], list[Polygon]]], config: WordSpanConfig | None) -> dict:
    total, several, cut = DetCounts(), 0, 0
    for boxes, truth in pages:
        words = []
        for box in boxes:
            parts = split_words(box, config)
            several += len(box.word.text.split()) > 1
            cut += len(parts) > 1
            words += [w.polygon for w in parts if w.text.strip()]
        total = total.add(match_counts(truth, words))
    return {**total.as_dict(), "read_as_several": several, "cut": cut}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache/ocrapp/pages")
    ap.add_argument("--pages", type=int, default=80)
    ap.add_argument("--min-gaps", type=float, nargs="+", default=[0.08, 0.2, 0.3, 0.4])
    ap.add_argument("--min-contrasts", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ocr = OCR(OcrConfig(device="cpu"))
    pages = []
    for k, (image, quads) in enumerate(held_out_pages(args.data, args.pages)):
        boxes = ocr.read_boxes([PageImage(k, image, None, Path("<held-out>"))], ocr.config)[0]
        truth = [Polygon(tuple((float(x), float(y)) for x, y in q)) for q in quads]
        pages.append((boxes, truth))
    if not pages:
        sys.exit(f"error: no held-out pages under {args.data} (build them: python -m ocrapp.training.data.pages)")
    results = {"pages": len(pages), "not cut": score(pages, None)}
    for gap in args.min_gaps:
        for contrast in args.min_contrasts:
            config = replace(WordSpanConfig(), min_gap=gap, min_contrast=contrast)
            results[f"min_gap {gap} min_contrast {contrast}"] = score(pages, config)
    for name, row in results.items():
        print(name, row, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
