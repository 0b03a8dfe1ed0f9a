"""Exact word accuracy of recognizer weight files on held-out shard folders, per output branch.

    python -m ocrapp.training.recognizer.evaluate models/recognizer_clip4str-s.safetensors OTHER.safetensors \
        --on /work/cache/crops/pdf_val /work/cache/crops/held_out_fonts --limit 1000 [--json out.json]

How candidate weights are compared before one ships (a GPU run folded back, an average, a longer CPU run): the
same crops, every branch (``export.BRANCHES``). The shipped file's branch is chosen by ``export
--choose-branch-on`` on these folders; the dev data (../shared/data/dev) is for the benchmarks, never for this.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import torch

from ocrapp.recognition.weights import load_recognizer
from ocrapp.training.recognizer.export import branch_scores


def compare(weights: list[Path], folders: list[Path], limit: int, cross_skips: Sequence[float] = (),
            image_dtype: torch.dtype | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """{weights file: {folder name: {branch: exact accuracy}}}; see ``export.branch_scores`` for cross_skips.
    ``image_dtype``: run the image tower under autocast in this dtype (as the predictor does on bf16 CPUs)."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for path in weights:
        model = load_recognizer(path).eval()
        model.image_autocast = image_dtype
        table[str(path)] = {folder.name: branch_scores(model, [folder], limit, cross_skips) for folder in folders}
    return table


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", type=Path, nargs="+")
    p.add_argument("--on", type=Path, nargs="+", required=True, metavar="SHARD_DIR")
    p.add_argument("--limit", type=int, default=1000, help="crops per folder")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cross-skip", type=float, nargs="*", default=[], metavar="T",
                   help="also score the confident branch that skips the cross-modal decoder above visual confidence T")
    p.add_argument("--image-bf16", action="store_true",
                   help="run the image tower in bf16, as the predictor does on CPUs with native bf16")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    table = compare(a.weights, a.on, a.limit, a.cross_skip, torch.bfloat16 if a.image_bf16 else None)
    for path, folders in table.items():
        means = {b: sum(f[b] for f in folders.values()) / len(folders) for b in next(iter(folders.values()))}
        print(path)
        for name, scores in folders.items():
            print(f"  {name:<20} " + "  ".join(f"{b} {v:.4f}" for b, v in scores.items()))
        print(f"  {'mean':<20} " + "  ".join(f"{b} {v:.4f}" for b, v in means.items()))
    if a.json:
        a.json.write_text(json.dumps(table, indent=2))
    return table


if __name__ == "__main__":
    main()
