"""Turn a training checkpoint into the shipped fp16 safetensors (one file, or shards of at most N MiB).

python -m ocrapp.training.recognizer.export runs/rec/best.pt models/recognizer_clip4str-s.safetensors \
    [--output-branch cross|visual|confident]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from ocrapp.recognition.clip4str.config import Clip4StrConfig
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.weights import save_recognizer


def model_from_checkpoint(path: Path) -> tuple[Clip4Str, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = Clip4Str(Clip4StrConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state


def training_summary(state: dict) -> dict[str, str]:
    history = state.get("history") or []
    return {"steps": str(state["step"]), "samples_seen": str(state["seen"]),
            "train_hours": f"{state['elapsed'] / 3600:.2f}", "history": json.dumps(history[-20:])}


def main() -> None:
    parser = argparse.ArgumentParser(description="Export a recognizer checkpoint to fp16 safetensors.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--output-branch", choices=("cross", "visual", "confident"), default=None,
                        help="the reading the shipped model returns (default: as trained, 'cross')")
    args = parser.parse_args()
    model, state = model_from_checkpoint(args.checkpoint)
    if args.output_branch:
        model.cfg = replace(model.cfg, output_branch=args.output_branch)
    save_recognizer(model, args.output, training_summary(state))
    print(f"wrote {args.output} ({args.output.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
