"""Recognizer weights: ocrapp's fp16 safetensors, official CLIP4STR checkpoints, OpenAI/OpenCLIP CLIP towers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch

from ocrapp.errors import ModelError
from ocrapp.safetensors_io import fp16_state, read_safetensors, write_safetensors
from ocrapp.recognition.clip4str.config import CONFIGS, Clip4StrConfig
from ocrapp.recognition.clip4str.model import Clip4Str

FORMAT = "ocrapp-clip4str"


def save_recognizer(model: Clip4Str, path: Path, metadata: Mapping[str, str] | None = None,
                    max_shard_bytes: int | None = None) -> list[Path]:
    """fp16 safetensors with the model config in the header, written atomically; split into shards + index
    past ``max_shard_bytes`` (``load_recognizer`` reads either form)."""
    meta = {"format": FORMAT, "config": json.dumps(model.cfg.to_dict()), **(metadata or {})}
    return write_safetensors(fp16_state(model), Path(path), meta, max_shard_bytes)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return read_safetensors(path, "recognizer weights")


def _load_into(model: Clip4Str, state: Mapping[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)) if keys
        )
        raise ModelError(f"recognizer weights do not match {model.cfg.name}: {path} ({details})")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def load_recognizer(path: Path, device: torch.device | str = "cpu") -> Clip4Str:
    """Load ocrapp's own weight file (config in the header)."""
    tensors, meta = _read_safetensors(path)
    if meta.get("format") != FORMAT or "config" not in meta:
        raise ModelError(f"not an ocrapp recognizer weight file (no config in header): {path}")
    model = Clip4Str(Clip4StrConfig.from_dict(json.loads(meta["config"])))
    _load_into(model, tensors, path)
    return model.to(device).eval()


def _torch_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)[0]
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"checkpoint unreadable: {path}: {exc}") from exc
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise ModelError(f"checkpoint holds no state dict: {path}")
    return state


def _fit_text_context(state: dict[str, torch.Tensor], cfg: Clip4StrConfig, prefix: str) -> None:
    """Official CLIP text towers have 77 positions; CLIP4STR reads only the first ``context_length``."""
    key = f"{prefix}positional_embedding"
    if key in state and state[key].shape[0] > cfg.context_length:
        state[key] = state[key][: cfg.context_length]
    state.pop(f"{prefix}attn_mask", None)


def load_official_clip4str(path: Path, config: str | Clip4StrConfig = "clip4str-b16") -> Clip4Str:
    """An official CLIP4STR checkpoint (Lightning .ckpt of VL4STR: clip_model.*, visual_decoder.*,
    cross_decoder.*) into the matching named shape."""
    cfg = CONFIGS[config] if isinstance(config, str) else config
    state = {k.removeprefix("model."): v for k, v in _torch_state(path).items()}
    _fit_text_context(state, cfg, "clip_model.")
    model = Clip4Str(cfg)
    _load_into(model, state, path)
    return model.eval()


def load_clip_towers(model: Clip4Str, path: Path) -> None:
    """Initialise the image and text towers from an OpenAI or OpenCLIP CLIP state dict (as CLIP4STR does);
    the decoders keep their fresh initialisation."""
    state = {k.removeprefix("module."): v for k, v in _torch_state(path).items()}
    _fit_text_context(state, model.cfg, "")
    clip = model.clip_model
    own = clip.state_dict()
    wrong = sorted(k for k in own if k in state and own[k].shape != state[k].shape)
    missing = sorted(k for k in own if k not in state)
    if wrong or missing:
        raise ModelError(f"CLIP weights do not fit {model.cfg.name}: {path} "
                         f"(missing {missing[:3]}, shape mismatch {wrong[:3]})")
    clip.load_state_dict({k: state[k].float() for k in own})

