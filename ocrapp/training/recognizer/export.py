"""Turn a training checkpoint into the shipped fp16 safetensors (one file, or shards of at most N MiB).

python -m ocrapp.training.recognizer.export runs/rec/best.pt models/recognizer_clip4str-s.safetensors \
    [--output-branch cross|visual|confident | --choose-branch-on HELD_OUT_SHARDS...] [--ema]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch

from ocrapp.recognition.clip4str.config import OUTPUT_BRANCHES as BRANCHES
from ocrapp.recognition.clip4str.config import Clip4StrConfig
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.weights import save_recognizer
from ocrapp.training.weight_average import WeightAverage


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def model_from_state(state: dict, ema: bool = False, source: Path | str = "the checkpoint") -> Clip4Str:
    """A training checkpoint's model; with ``ema`` its moving average of the weights (``train --ema-decay``)."""
    model = Clip4Str(Clip4StrConfig.from_dict(state["config"]))
    if not ema:
        model.load_state_dict(state["model"])
        return model.eval()
    if not state.get("ema"):
        raise SystemExit(f"{source} holds no weight average: it was trained without --ema-decay")
    average = WeightAverage(model, state["ema"]["decay"])
    average.load_state_dict(state["ema"])
    model.load_state_dict(average.weights_for(model))
    return model.eval()


def model_from_checkpoint(path: Path, ema: bool = False) -> tuple[Clip4Str, dict]:
    state = load_checkpoint(path)
    return model_from_state(state, ema, path), state


def training_summary(state: dict, ema: bool = False) -> dict[str, str]:
    history = state.get("history") or []
    summary = {"steps": str(state["step"]), "samples_seen": str(state["seen"]),
               "train_hours": f"{state['elapsed'] / 3600:.2f}", "history": json.dumps(history[-20:])}
    if ema:
        summary["weights"] = f"moving average, decay {state['ema']['decay']:g}"
    return summary


def branch_scores(model: Clip4Str, val_dirs: list[Path], limit: int,
                  cross_skips: Sequence[float] = ()) -> dict[str, float]:
    """Mean exact accuracy over the held-out sets for each output branch, and for the "confident" branch with
    each cross-modal skip threshold (``Clip4Str.forward``'s ``cross_skip_confidence``) as "confident@T"."""
    from ocrapp.training.recognizer.train import evaluate, load_val_sets

    val_sets = load_val_sets(val_dirs, limit)
    runs = [(b, b, {}) for b in BRANCHES] + [(f"confident@{t:g}", "confident", {"cross_skip_confidence": t})
                                             for t in cross_skips]
    scores = {}
    for name, branch, options in runs:
        model.cfg = replace(model.cfg, output_branch=branch)
        per_set = evaluate(model, val_sets, torch.device("cpu"), **options)
        scores[name] = round(sum(per_set.values()) / max(1, len(per_set)), 4)
    model.eval()
    return scores


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Export a recognizer checkpoint to fp16 safetensors.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--output-branch", choices=BRANCHES, default=None,
                        help="the reading the shipped model returns (default: as trained, 'cross')")
    parser.add_argument("--choose-branch-on", type=Path, nargs="+", default=None, metavar="SHARD_DIR",
                        help="pick the branch with the best exact accuracy on these held-out shard folders")
    parser.add_argument("--val-limit", type=int, default=2000)
    parser.add_argument("--ema", action="store_true", help="export the moving average of the weights kept by "
                        "train --ema-decay instead of the weights themselves")
    args = parser.parse_args(argv)
    model, state = model_from_checkpoint(args.checkpoint, args.ema)
    branch = args.output_branch
    if args.choose_branch_on:
        scores = branch_scores(model, args.choose_branch_on, args.val_limit)
        print(json.dumps({"branch_exact_accuracy": scores}))
        branch = max(BRANCHES, key=lambda b: (scores[b], b == "cross"))  # ties: the paper's output
    if branch:
        model.cfg = replace(model.cfg, output_branch=branch)
    for path in save_recognizer(model, args.output, training_summary(state, args.ema)):
        path.chmod(0o644)  # the atomic write's temporary file is private; the shipped weights are not
    print(f"wrote {args.output} ({args.output.stat().st_size / 2**20:.1f} MiB)")
    return args.output


if __name__ == "__main__":
    main()
