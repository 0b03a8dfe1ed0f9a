"""How much margin around a detected word the recognizer reads best with (``RectifyConfig.pad``).

    python benchmarks/crop_padding.py [--pages 4] [--pads 0 0.1 0.2 0.3 0.4] [--detector W] [--postprocess tune.json]
    [--recognizer W]

On held-out pages of the training page cache (validation split, real PDF pages or ``--kind synth`` documents;
never the dev data): detect words, crop every detection with every padding and every rule towards the
neighbouring words (``RectifyConfig.neighbours``), keep the detections matched one-to-one to a ground-truth word
at IoU >= 0.5 (``matched_pairs``), and report the recognizer's exact accuracy per setting (same words).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from ocrapp.detection.metrics import matched_pairs
from ocrapp.detection.model import DEFAULT_ARCH
from ocrapp.detection.predictor import DetectionPredictor
from ocrapp.detection.tune import load_tuned
from ocrapp.models_registry import default_detector_path
from ocrapp.recognition.predictor import Recognizer
from ocrapp.rectify import NEIGHBOUR_RULES, RectifyConfig, rectify_words
from ocrapp.training.data.pages import load_item
from ocrapp.training.detector.data import list_items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache/ocrapp/pages")
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--pads", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4])
    ap.add_argument("--detector", type=Path, default=None)
    ap.add_argument("--postprocess", type=Path, default=None, help="tune JSON (default: the detector file's own)")
    ap.add_argument("--recognizer", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kind", choices=["real", "synth", "all"], default="real",
                    help="held-out pages of real PDFs, of synthetic documents (receipts, forms ...), or both")
    ap.add_argument("--neighbours", nargs="+", choices=NEIGHBOUR_RULES, default=list(NEIGHBOUR_RULES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    detector = DetectionPredictor.from_weights(args.detector or default_detector_path(DEFAULT_ARCH))
    if args.postprocess:
        load_tuned(args.postprocess).apply(detector.postprocessor)
    recognizer = Recognizer.from_pretrained(args.recognizer, "cpu")
    items = [p for p in list_items(args.data, "val")
             if args.kind == "all" or json.loads(p.read_text())["kind"] == args.kind][: args.pages]
    settings = [(pad, rule) for pad in args.pads for rule in args.neighbours]
    correct = {setting: 0 for setting in settings}
    total = 0
    for item in items:
        image, quads, meta = load_item(item)
        texts = [w["text"] for w in meta["words"]]
        found = detector.predict([image])[0]
        pairs = matched_pairs(list(quads), [poly for poly, _ in found])
        total += len(pairs)
        for pad, rule in settings:
            config = replace(RectifyConfig(), pad=pad, neighbours=rule)
            crops = rectify_words(image, [poly for poly, _ in found], config)  # all of them: neighbours matter
            readings = recognizer.read([crops[j] for _, j, _ in pairs])
            correct[pad, rule] += sum(text == texts[i] for (text, _), (i, _, _) in zip(readings, pairs))
    print(json.dumps({"pages": len(items), "words": total,
                      "exact": {f"pad {pad}, {rule}": round(n / max(1, total), 4)
                                for (pad, rule), n in correct.items()}}))


if __name__ == "__main__":
    main()
