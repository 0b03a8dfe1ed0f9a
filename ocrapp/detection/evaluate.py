"""Detection recall / precision at IoU 0.5 against the word boxes of the dev sets (``ocrapp.bench.datasets``).

    python -m ocrapp.detection.evaluate --weights models/detector_db_mobilenet_v3_large_h96.safetensors \
        [--arch db_mobilenet_v3_large_h96] [--sets docbank mmocr-wildreceipt-toy c-pdf-pages] [--json out.json] \
        [--postprocess tune.json]

Per set: gt words, predictions, matches, recall, precision, hmean (one-to-one greedy polygon IoU >= 0.5), of the
word boxes the pipeline reports: the detector's, a short word's grown to its line's height
(``detection.line_height``; ``--ink-boxes`` scores the detector's boxes as they are). ``--read`` runs the whole
pipeline (the recognizer too) and scores the boxes of the words it reports: a box read as several words is cut
into one box per word there (``OcrConfig.word_spans``); ``--read --no-word-spans`` leaves such boxes whole.
Sets whose ground-truth units are multi-word fields (WildReceipt) also get ``fields``: the same counts after the
predicted words are grouped to the field that covers each (``metrics.group_to_units``), as the page benchmark does.
Predictions that overlap a ground-truth "ignore" region (IoU >= 0.5 or >= 50% inside it) and match no word are
not counted. ``--misses`` sorts the unmatched words by cause (``detection.misses``: pieces of one printed word
merged, other merges, split, missed, misfit) and gives the recall word boxes could reach (every
word found but the pieces the text layer splits without a space). EVALUATION ONLY: the dev data is never trained on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from shapely.geometry import Polygon as ShapelyPolygon

from ocrapp.detection.metrics import DetCounts, counts_of, group_to_units, match_counts, matched_pairs
from ocrapp.detection.misses import MISS_KINDS, classify_misses, recall_ceiling
from ocrapp.detection.line_height import LineHeightRule, extend_to_line_height
from ocrapp.detection.model import DEFAULT_ARCH
from ocrapp.detection.predictor import DetectionPredictor
from ocrapp.detection.tune import load_tuned, load_tuned_input_size
from ocrapp.document import Polygon
from ocrapp.io.sources import PageImage
from ocrapp.recognition.word_boxes import WordSpanConfig

if TYPE_CHECKING:
    from ocrapp.pipeline import OCR

BoxSource = Callable[[np.ndarray], list[Polygon]]  # a page image -> the word boxes to score

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


def detector_boxes(predictor: DetectionPredictor, line_height: LineHeightRule | None) -> BoxSource:
    """The detector's boxes of a page; with ``line_height``, as the pipeline reports them (a short word grown to
    its line's height)."""
    def boxes(image: np.ndarray) -> list[Polygon]:
        found = predictor.predict([image])[0]
        if line_height is not None:
            found = extend_to_line_height(found, line_height)
        return [p for p, _ in found]
    return boxes


def pipeline_boxes(ocr: "OCR") -> BoxSource:
    """The boxes of the words the whole pipeline reports for a page (recognizer included)."""
    def boxes(image: np.ndarray) -> list[Polygon]:
        page = ocr.process_pages([PageImage(0, image, None, Path("<dev>"))], ocr.config)[0]
        return [w.polygon for w in page.words]
    return boxes


def evaluate(predict: BoxSource, sets=DEFAULT_SETS, max_pages_per_pdf: int | None = 2,
             limit: int | None = None, verbose: bool = True, misses: bool = False) -> dict:
    """Score the boxes ``predict`` gives each page (``detector_boxes``, ``pipeline_boxes``); with ``misses``, also
    why each unmatched word went unmatched (``misses.classify_misses``) and the recall word boxes could reach."""
    from ocrapp.bench.datasets import FIELD_UNIT_SETS, iter_dev_pages

    results = {}
    for name in sets:
        total, fields, kinds = DetCounts(), DetCounts(), Counter()
        n = 0
        t0 = time.time()
        for page in iter_dev_pages(name, max_pages_per_pdf=max_pages_per_pdf):
            gt = [poly for _, poly in page.words]
            preds = _drop_ignored(predict(page.image), gt, page.ignore)
            matches = matched_pairs(gt, preds)
            total = total.add(counts_of(gt, preds, matches))
            if misses:
                kinds += classify_misses(gt, preds, {i for i, _, _ in matches})
            if name in FIELD_UNIT_SETS:
                fields = fields.add(match_counts(gt, group_to_units(gt, preds)))
            n += 1
            if limit and n >= limit:
                break
        results[name] = {"pages": n, **total.as_dict(), "seconds": round(time.time() - t0, 1)}
        if name in FIELD_UNIT_SETS:
            results[name]["fields"] = fields.as_dict()
        if misses:
            results[name]["misses"] = {kind: kinds[kind] for kind in MISS_KINDS}
            results[name]["recall_ceiling"] = round(recall_ceiling(total.gt, kinds), 4)
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
    ap.add_argument("--read", action="store_true",
                    help="run the whole pipeline and score the boxes of the words it reports (slower)")
    ap.add_argument("--misses", action="store_true",
                    help="sort the unmatched words by cause (detection.misses) and report the recall word boxes "
                         "could reach on each set's ground truth")
    ap.add_argument("--no-word-spans", action="store_true",
                    help="with --read: leave a box read as several words whole")
    args = ap.parse_args(argv)
    if args.read and args.ink_boxes:
        ap.error("--ink-boxes scores the detector alone; it does not go with --read")
    torch.set_num_threads(args.threads)
    input_size = args.input_size or load_tuned_input_size(args.postprocess)
    if args.read:
        from ocrapp.pipeline import OCR, OcrConfig

        config = OcrConfig(device=args.device, detector_weights=args.weights, detector_arch=args.arch,
                           detector_input_size=input_size, word_spans=None if args.no_word_spans else WordSpanConfig())
        ocr = OCR(config)
        predictor, predict = ocr.detector, pipeline_boxes(ocr)
    else:
        predictor = DetectionPredictor.from_weights(args.weights, args.arch, args.device, input_size=input_size)
        predict = detector_boxes(predictor, None if args.ink_boxes else LineHeightRule())
    tuned = load_tuned(args.postprocess)
    if tuned is not None:
        tuned.apply(predictor.postprocessor)
    results = evaluate(predict, args.sets, args.max_pages_per_pdf, args.limit, misses=args.misses)
    post = predictor.postprocessor
    results["_config"] = {"weights": str(args.weights), "arch": args.arch, "input_size": predictor.input_size,
                          "postprocess": {"bin_thresh": post.bin_thresh, "box_thresh": post.box_thresh,
                                          "unclip_ratio": post.unclip_ratio},
                          "max_pages_per_pdf": args.max_pages_per_pdf, "iou": 0.5,
                          "boxes": _boxes_label(args)}
    text = json.dumps(results, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(text if not sys.stdout.isatty() else "")


def _boxes_label(args: argparse.Namespace) -> str:
    if args.read:
        return "pipeline, boxes read as several words kept whole" if args.no_word_spans else "pipeline words"
    return "ink" if args.ink_boxes else "line height"


if __name__ == "__main__":
    main()
