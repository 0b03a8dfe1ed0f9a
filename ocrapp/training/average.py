"""Average weight files that share a starting point (a "model soup"): recognizers or detectors alike.

    python -m ocrapp.training.average SHIPPED.safetensors GPU.safetensors --share 0.5 --out SOUP.safetensors

Two runs fine-tuned from the same weights stay in one basin, so their mean is a model, and it keeps much of what
each run learnt: the GPU run on synthetic words alone drifted from real-PDF words, the shipped weights had not
seen its 222k extra samples, and their mean beat both on the held-out sets (scripts/gpu_session.md); the
detector shipped in session 26 is the mean of two fine-tuning rounds (its card). Integer buffers (BatchNorm's
batch counters) are taken from the last file. The header metadata of the first file is kept (the recognizer's
config and charset, the detector's input size and postprocessing), with ``averaged_from`` naming the files and
their shares; shard indexes are accepted in place of files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ocrapp.errors import ModelError
from ocrapp.safetensors_io import read_safetensors, write_safetensors


def average_states(states: list[dict[str, torch.Tensor]], shares: list[float]) -> dict[str, torch.Tensor]:
    """sum_i shares[i] * states[i] for floating tensors (computed in fp32, stored in the first state's dtypes)."""
    if len(states) != len(shares) or not states:
        raise ValueError("one share per state")
    keys = set(states[0])
    for i, state in enumerate(states[1:], 1):
        if set(state) != keys:
            raise ModelError(f"weights {i} do not have the tensors of weights 0: "
                             f"{sorted(keys ^ set(state))[:5]} ...")
    total = sum(shares)
    out = {}
    for key, first in states[0].items():
        if any(s[key].shape != first.shape for s in states):
            raise ModelError(f"tensor {key} differs in shape between the weights")
        if not first.is_floating_point():
            out[key] = states[-1][key]
            continue
        mixed = sum(share / total * s[key].float() for share, s in zip(shares, states))
        out[key] = mixed.to(first.dtype)
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("first", type=Path)
    p.add_argument("second", type=Path)
    p.add_argument("--share", type=float, default=0.5, help="the second file's share (0..1)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    if not 0.0 <= a.share <= 1.0:
        p.error("--share must lie in 0..1")
    (first, meta), (second, _) = read_safetensors(a.first), read_safetensors(a.second)
    meta = {**meta, "averaged_from": f"{a.first.name} x {1 - a.share:g} + {a.second.name} x {a.share:g}"}
    write_safetensors(average_states([first, second], [1 - a.share, a.share]), a.out, meta)
    return a.out


if __name__ == "__main__":
    main()
