"""What re-reading unsure crops with a wider margin buys (``RecognizerConfig.reread_below`` / ``reread_margin``).

    python benchmarks/reread.py --on /work/cache/crops/{pdf_val,held_out_fonts,synth_val,receipts_val,scans_val} \
        [--limit 1000] [--thresholds 0.5 0.7 0.9] [--margins 0.1] [--weights W] [--threads 1]

Every crop of the held-out shard folders (``python -m ocrapp.training.data.val_sets``; never the dev data) is read
as it is and with each margin added; per threshold, the predictor's rule (keep the widened reading when the first
one is below the threshold and the widened one is more confident) gives the exact accuracy and the share of
crops read twice (the cost: that share of extra reads).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ocrapp.recognition.predictor import Recognizer, RecognizerConfig, keep_more_confident, unsure_indices
from ocrapp.recognition.preprocess import widen_margin
from ocrapp.training.recognizer.train import load_val_sets


def score(first: list[tuple[str, float]], widened: list[tuple[str, float]], labels: list[str],
          threshold: float | None) -> tuple[float, float]:
    """(exact accuracy, share of crops read twice) under the predictor's rule at ``threshold``."""
    kept = list(first)
    unsure = [] if threshold is None else unsure_indices(first, threshold)
    keep_more_confident(kept, unsure, [widened[i] for i in unsure])
    return float(np.mean([k == t for (k, _), t in zip(kept, labels)])), len(unsure) / max(1, len(labels))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--on", type=Path, nargs="+", required=True, metavar="SHARD_DIR")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    ap.add_argument("--margins", type=float, nargs="+", default=[0.1])
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = Recognizer.from_pretrained(args.weights, "cpu", replace(RecognizerConfig(), reread_below=None))
    table: dict[str, dict[str, list[float]]] = {}
    for name, (images, labels) in load_val_sets(args.on, args.limit).items():
        first = recognizer.read(list(images), correct=False)
        row = {"once": list(score(first, first, labels, None))}
        for margin in args.margins:
            widened = recognizer.read([widen_margin(image, margin) for image in images], correct=False)
            for threshold in args.thresholds:
                row[f"margin {margin} below {threshold}"] = [round(v, 4) for v in
                                                            score(first, widened, labels, threshold)]
        table[name] = row
        print(name, json.dumps(row), flush=True)
    settings = next(iter(table.values())).keys()
    means = {s: round(float(np.mean([row[s][0] for row in table.values()])), 4) for s in settings}
    print("mean exact", json.dumps(means))
    if args.json:
        args.json.write_text(json.dumps({"folders": table, "mean_exact": means}, indent=1))


if __name__ == "__main__":
    main()
