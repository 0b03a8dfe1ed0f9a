"""What painting over form rules before reading buys (``RecognizerConfig.form_rules``, ``recognition/form_rules.py``).

    python benchmarks/form_rules.py \
        --on /work/cache/crops/{pdf_val,held_out_fonts,synth_val,receipts_val,scans_val,forms_val} \
        [--dev funsd-train-word-crops ...] [--limit 1000] [--weights W] [--threads 1] [--json F]

Every crop is read by the predictor as shipped (re-read and word list included) twice: with the rules painted over
and as it is. Per folder: the exact accuracy both ways, how many crops had rules painted over, and how many
readings each way alone got right. Held-out folders come from ``python -m ocrapp.training.data.val_sets`` (their
crops are already at the model's input size; ``forms_val`` sets every word on or under a form's rules); the
``--dev`` crop sets are reported, not chosen on.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ocrapp.bench.datasets import DEV_CROP_SETS, iter_dev_crops
from ocrapp.recognition.form_rules import FormRuleConfig, erase_form_rules
from ocrapp.recognition.predictor import Recognizer, RecognizerConfig
from ocrapp.training.recognizer.train import load_val_sets


def compare(recognizer: Recognizer, crops: list[np.ndarray], labels: list[str],
            cfg: FormRuleConfig) -> dict[str, float | int]:
    """Exact accuracy with and without painting rules over, crops painted, and the readings only one way got.
    ``recognizer`` reads crops as they are (its own ``form_rules`` off)."""
    painted = [erase_form_rules(c, cfg) for c in crops]
    erased = [text == label for (text, _), label in zip(recognizer.read(painted), labels)]
    as_is = [text == label for (text, _), label in zip(recognizer.read(crops), labels)]
    return {"n": len(crops), "erased": round(float(np.mean(erased)), 4), "as_is": round(float(np.mean(as_is)), 4),
            "crops_painted": sum(p is not c for p, c in zip(painted, crops)),
            "only_erased": sum(a and not b for a, b in zip(erased, as_is)),
            "only_as_is": sum(b and not a for a, b in zip(erased, as_is))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--on", type=Path, nargs="*", default=[], metavar="SHARD_DIR")
    ap.add_argument("--dev", nargs="*", default=[], choices=sorted(DEV_CROP_SETS))
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shipped = RecognizerConfig()
    recognizer = Recognizer.from_pretrained(args.weights, device="cpu", cfg=replace(shipped, form_rules=None))
    sets = {name: (list(images), labels) for name, (images, labels) in load_val_sets(args.on, args.limit).items()}
    for name in args.dev:
        crops = list(iter_dev_crops(name))[:args.limit]
        sets[name] = ([c.image for c in crops], [c.text for c in crops])
    results = {}
    for name, (crops, labels) in sets.items():
        results[name] = row = compare(recognizer, crops, labels, shipped.form_rules)
        print(f"{name:24s} erased {row['erased']:.4f}  as is {row['as_is']:.4f}  painted {row['crops_painted']:4d}"
              f" of {row['n']}  right only erased {row['only_erased']}, only as is {row['only_as_is']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
