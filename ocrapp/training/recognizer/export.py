"""Turn a training checkpoint into the shipped fp16 safetensors (one file, or shards of at most N MiB).

python -m ocrapp.training.recognizer.export runs/rec/best.pt models/recognizer_clip4str-s.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ocrapp.recognition.clip4str.config import Clip4StrConfig
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.weights import FORMAT, save_recognizer


def model_from_checkpoint(path: Path) -> tuple[Clip4Str, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = Clip4Str(Clip4StrConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state


def training_summary(state: dict) -> dict[str, str]:
    history = state.get("history") or []
    return {"steps": str(state["step"]), "samples_seen": str(state["seen"]),
            "train_hours": f"{state['elapsed'] / 3600:.2f}", "history": json.dumps(history[-20:])}


def save_sharded(model: Clip4Str, out_dir: Path, max_mib: float = 16.0, stem: str = "recognizer") -> list[Path]:
    """fp16 tensors split over files of at most ``max_mib`` MiB (for transfers with a per-file limit).
    ``ocrapp.recognition.weights.join_shards`` puts them back into one file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    limit = int(max_mib * 1024 * 1024) - 64 * 1024  # room for the header
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, value in model.state_dict().items():
        tensor = value.detach().to(torch.float16) if value.is_floating_point() else value.detach()
        tensor = tensor.contiguous()
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes > limit:
            raise ValueError(f"tensor {key} ({nbytes} bytes) exceeds the shard limit")
        if size + nbytes > limit and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    paths = []
    meta = {"format": FORMAT, "config": json.dumps(model.cfg.to_dict()), "shards": str(len(shards))}
    for i, tensors in enumerate(shards):
        path = out_dir / f"{stem}-{i:02d}-of-{len(shards):02d}.safetensors"
        save_file(tensors, str(path), metadata=meta)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description="Export a recognizer checkpoint to fp16 safetensors.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    model, state = model_from_checkpoint(args.checkpoint)
    save_recognizer(model, args.output, training_summary(state))
    print(f"wrote {args.output} ({args.output.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
