"""The text the whole pipeline reads from held-out pages of the training page cache (the validation split, never
trained on; the dev data is not used here), under the default settings and variants of them, to choose a rule.

    python benchmarks/held_out_text.py [--data ~/.cache/ocrapp/pages] [--pages 80] [--threads 2]
        [--variants default no-sure-space-alternative no-word-spans spaces-as-read] [--recognizer-weights W]
        [--detector-weights D] [--json out.json]

Per variant: bag-of-words and end-to-end F1, strict and relaxed, over all pages' words (``bench.pages.score_page``
summed over pages: pooled counts, not a mean of pages). Every variant reads every page from scratch.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from ocrapp.bench.pages import _quad_box, score_page
from ocrapp.io.sources import PageImage
from ocrapp.pipeline import OCR, OcrConfig
from ocrapp.training.data.pages import load_item
from ocrapp.training.detector.data import list_items

VARIANTS: dict[str, Callable[[OcrConfig], OcrConfig]] = {
    "default": lambda c: c,
    "no-sure-space-alternative": lambda c: replace(c, recognizer=replace(c.recognizer, sure_space_alternative=False)),
    "no-word-spans": lambda c: replace(c, word_spans=None),
    "spaces-as-read": lambda c: replace(c, recognizer=replace(c.recognizer, min_space_gap=None)),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache/ocrapp/pages")
    ap.add_argument("--pages", type=int, default=80)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["default", "no-sure-space-alternative"])
    ap.add_argument("--recognizer-weights", type=Path, default=None, help="default: the shipped recognizer")
    ap.add_argument("--detector-weights", type=Path, default=None,
                    help="default: the shipped detector (its stored input size and postprocessing)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = OcrConfig(device="cpu", recognizer_weights=args.recognizer_weights,
                     detector_weights=args.detector_weights)
    ocr = OCR(base)
    configs = {name: VARIANTS[name](base) for name in args.variants}
    counts: dict[str, dict[str, list[int]]] = {name: {} for name in configs}
    paths = list_items(args.data, split="val")[: args.pages]
    if not paths:
        sys.exit(f"error: no held-out pages under {args.data} (build them: python -m ocrapp.training.data.pages)")
    for k, path in enumerate(paths):
        image, _, meta = load_item(path)
        truth = [(w["text"], _quad_box(w["quad"])) for w in meta["words"]]
        source = PageImage(k, image, None, path)
        for name, config in configs.items():
            ocr.recognizer.cfg = config.recognizer  # one set of loaded models serves every variant
            page = ocr.process_pages([source], config)[0]
            read = [(w.text, _quad_box(w.polygon.points)) for w in page.words]
            for metric, prf in score_page(read, truth).items():
                total = counts[name].setdefault(metric, [0, 0, 0])
                total[0], total[1], total[2] = total[0] + prf.tp, total[1] + prf.n_pred, total[2] + prf.n_gt
    results = {"pages": len(paths), **{name: {metric: round(2 * tp / max(1, n_pred + n_gt), 4)
                                              for metric, (tp, n_pred, n_gt) in metrics.items()}
                                       for name, metrics in counts.items()}}
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
