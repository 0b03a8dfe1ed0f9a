"""Detection recall / precision at IoU 0.5 against the word boxes of the dev sets (``ocrapp.bench.datasets``).

    python -m ocrapp.detection.evaluate --weights models/detector_db_mobilenet_v3_large_h96.safetensors \
        [--arch db_mobilenet_v3_large_h96] [--sets docbank mmocr-wildreceipt-toy c-pdf-pages] [--json out.json] \
        [--postprocess tune.json]

Per set: gt words, predictions, matches, recall, precision, hmean (one-to-one greedy polygon IoU >= 0.5), of the
word boxes the pipeline reports: the detector's, a short word's grown to its line's height
(``detection.line_height``; ``--ink-boxes`` scores the detector's boxes as they are).
Sets whose ground-truth units are multi-word fields (WildReceipt) also get ``fields``: the same counts after the
predicted words are grouped to the field that covers each (``metrics.group_to_units``), as the page benchmark does.
Predictions that overlap a ground-truth "ignore" region (IoU >= 0.5 or >= 50% inside it) and match no word are
not counted. EVALUATION ONLY: the dev data is never trained on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from shapely.geometry import Polygon as ShapelyPolygon

from ocrapp.detection.metrics import DetCounts, group_to_units, match_counts
from ocrapp.detection.line_height import LineHeightRule, extend_to_line_height
from ocrapp.detection.model import DEFAULT_ARCH
from ocrapp.detection.predictor import DetectionPredictor
from ocrapp.detection.tune import load_tuned, load_tuned_input_size

DEFAULT_SETS = ("docbank", "mmocr-wildreceipt-toy", "c-pdf-pages")


def _drop_ignored(preds: list, words: list, ignore: list) -> list:
    if not ignore:
        return preds
    ign = [ShapelyPolygon(p.points).buffer(0) for p in ignore]
    wrd = [ShapelyPolygon(p.points).buffer(0) for p in words]
    kept = []
    for p in preds:
        sp = ShapelyPolygon(p.points).buffer(0)
        if sp.area <= 0:
            continue
        in_ignore = any(sp.intersection(g).area >= 0.5 * sp.area for g in ign)
        if in_ignore and not any(sp.intersection(w).area > 0.3 * sp.area for w in wrd):
            continue
        kept.append(p)
    return kept


def evaluate(predictor: DetectionPredictor, sets=DEFAULT_SETS, max_pages_per_pdf: int | None = 2,
             limit: int | None = None, verbose: bool = True,
             line_height: LineHeightRule | None = LineHeightRule()) -> dict:
    """``line_height``: score the word boxes the pipeline reports (``OcrConfig.line_height``); None: the detector's
    boxes as they are."""
    from ocrapp.bench.datasets import FIELD_UNIT_SETS, iter_dev_pages

    results = {}
    for name in sets:
        total, fields = DetCounts(), DetCounts()
        n = 0
        t0 = time.time()
        for page in iter_dev_pages(name, max_pages_per_pdf=max_pages_per_pdf):
            found = predictor.predict([page.image])[0]
            if line_height is not None:
                found = extend_to_line_height(found, line_height)
            gt = [poly for _, poly in page.words]
            preds = _drop_ignored([p for p, _ in found], gt, page.ignore)
            total = total.add(match_counts(gt, preds))
            if name in FIELD_UNIT_SETS:
                fields = fields.add(match_counts(gt, group_to_units(gt, preds)))
            n += 1
            if limit and n >= limit:
                break
        results[name] = {"pages": n, **total.as_dict(), "seconds": round(time.time() - t0, 1)}
        if name in FIELD_UNIT_SETS:
            results[name]["fields"] = fields.as_dict()
        if verbose:
            print(f"{name}: {results[name]}", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help=".safetensors, docTR .pt, or a training checkpoint")
    ap.add_argument("--arch", default=DEFAULT_ARCH)
    ap.add_argument("--sets", nargs="*", default=list(DEFAULT_SETS))
    ap.add_argument("--input-size", type=int, default=None,
                    help="default: the --postprocess JSON's, else the one stored in the weights, else 1024")
    ap.add_argument("--max-pages-per-pdf", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="pages per set (quick checks)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--postprocess", type=Path, default=None,
                    help="JSON of `python -m ocrapp.detection.tune` (default: the setting stored in the weights)")
    ap.add_argument("--ink-boxes", action="store_true",
                    help="score the detector's boxes as they are, not the line-height boxes the pipeline reports")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    input_size = args.input_size or load_tuned_input_size(args.postprocess)
    predictor = DetectionPredictor.from_weights(args.weights, args.arch, args.device, input_size=input_size)
    tuned = load_tuned(args.postprocess)
    if tuned is not None:
        tuned.apply(predictor.postprocessor)
    line_height = None if args.ink_boxes else LineHeightRule()
    results = evaluate(predictor, args.sets, args.max_pages_per_pdf, args.limit, line_height=line_height)
    post = predictor.postprocessor
    results["_config"] = {"weights": str(args.weights), "arch": args.arch, "input_size": predictor.input_size,
                          "postprocess": {"bin_thresh": post.bin_thresh, "box_thresh": post.box_thresh,
                                          "unclip_ratio": post.unclip_ratio},
                          "max_pages_per_pdf": args.max_pages_per_pdf, "iou": 0.5,
                          "boxes": "ink" if args.ink_boxes else "line height"}
    text = json.dumps(results, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(text if not sys.stdout.isatty() else "")


if __name__ == "__main__":
    main()
