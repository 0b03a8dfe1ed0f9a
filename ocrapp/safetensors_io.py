"""fp16 safetensors for every model of ocrapp: one file, or shards plus an index when a transfer limits file size.

Sharded form: ``<stem>-0000k-of-0000n.safetensors`` beside ``<name>.safetensors.index.json`` (the Hugging Face
layout: {"metadata": {...}, "weight_map": {tensor: shard}}). Readers accept the weight path, or its index.
A tensor larger than a shard (the CLIP text tower's token embedding: 49408 x 192 fp16 = 19 MB) is stored as row
blocks ``<name>.__part000`` ... in several shards; the index lists it under "split_tensors" and readers join it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ocrapp.errors import ModelError

_HEADER_ROOM = 64 * 1024


def fp16_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with floating tensors in fp16 (integer buffers such as BN counters kept as they are)."""
    return {k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous().cpu()
            for k, v in module.state_dict().items()}


_PART = ".__part"


def _row_blocks(state: dict[str, torch.Tensor], budget: int) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """``state`` with every tensor larger than ``budget`` bytes cut into row blocks that fit (and their counts)."""
    out: dict[str, torch.Tensor] = {}
    split: dict[str, int] = {}
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes <= budget:
            out[key] = tensor
            continue
        row_bytes = nbytes // max(1, tensor.shape[0]) if tensor.dim() else nbytes
        rows = budget // row_bytes if tensor.dim() else 0
        if rows < 1:
            raise ValueError(f"tensor {key}: one row ({row_bytes} bytes) does not fit a shard of {budget} bytes")
        blocks = torch.split(tensor, int(rows))
        split[key] = len(blocks)
        out.update({f"{key}{_PART}{i:03d}": block.contiguous() for i, block in enumerate(blocks)})
    return out, split


def _join_row_blocks(state: dict[str, torch.Tensor], split: dict[str, int], what: str) -> dict[str, torch.Tensor]:
    for key, count in split.items():
        names = [f"{key}{_PART}{i:03d}" for i in range(count)]
        missing = [n for n in names if n not in state]
        if missing:
            raise ModelError(f"{what}: blocks of {key} missing from the shards: {', '.join(missing)}")
        state[key] = torch.cat([state.pop(n) for n in names])
    return state


def _split(state: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    budget = max_bytes - _HEADER_ROOM
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if size + nbytes > budget and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    return shards


def _save_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)


def write_safetensors(state: dict[str, torch.Tensor], out: Path, metadata: dict[str, str] | None = None,
                      max_shard_bytes: int | None = None) -> list[Path]:
    """Write ``state`` to ``out`` (atomically), or to shards + index when it exceeds ``max_shard_bytes``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = metadata or {}
    total = sum(v.numel() * v.element_size() for v in state.values())
    if not max_shard_bytes or total <= max_shard_bytes - _HEADER_ROOM:
        _save_atomic(state, out, metadata)
        return [out]
    blocks, split = _row_blocks(state, max_shard_bytes - _HEADER_ROOM)
    shards = _split(blocks, max_shard_bytes)
    stem = out.name.removesuffix(".safetensors")
    written, weight_map = [], {}
    for i, shard in enumerate(shards, 1):
        name = f"{stem}-{i:05d}-of-{len(shards):05d}.safetensors"
        _save_atomic(shard, out.parent / name, metadata)
        written.append(out.parent / name)
        weight_map.update({k: name for k in shard})
    index = out.with_name(out.name + ".index.json")
    layout = {"metadata": metadata, "weight_map": weight_map} | ({"split_tensors": split} if split else {})
    index.write_text(json.dumps(layout, indent=1))
    return written + [index]


def _read_file(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if path.stat().st_size == 0:
        raise ModelError(f"{what} file is empty: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise ModelError(f"cannot read {what} {path}: {exc}") from exc


def _read_index(index: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        data = json.loads(index.read_text())
        shards = sorted(set(data["weight_map"].values()))
        split = {str(k): int(v) for k, v in (data.get("split_tensors") or {}).items()}
    except Exception as exc:
        raise ModelError(f"cannot read {what} shard index {index}: {exc}") from exc
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        path = index.parent / shard
        if not path.is_file():
            raise ModelError(f"{what} shard not found: {path} (listed in {index})")
        state.update(_read_file(path, what)[0])
    return _join_row_blocks(state, split, what), dict(data.get("metadata") or {})


def read_safetensors(path: Path, what: str = "weights") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of a weight file, of its shard index, or of the index beside a missing file.
    Every failure is a ModelError naming the file."""
    path = Path(path)
    if path.name.endswith(".index.json") and path.is_file():
        return _read_index(path, what)
    index = path.with_name(path.name + ".index.json")
    if not path.is_file() and index.is_file():
        return _read_index(index, what)
    if not path.is_file():
        raise ModelError(f"{what} not found: {path}")
    return _read_file(path, what)
