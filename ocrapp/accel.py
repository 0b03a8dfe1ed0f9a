"""Device helpers shared by the detector and the recognizer: autocast dtype, OOM detection, memory-sized batches.

Everything here is device-agnostic: on a CPU the helpers return "nothing to do" values, so the same code paths
run (and are tested) without a GPU. The memory probes are module functions so that tests can monkeypatch them.
"""

from __future__ import annotations

import contextlib

import torch


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA GPUs that support it (Ampere and later), fp16 on older ones, None (no autocast) on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes in bf16 natively (AVX512-BF16 or AMX); elsewhere oneDNN would emulate it, slower
    than fp32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private in torch.cpu: absent -> False
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def low_precision_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype for inference of the convolutional networks (detector, recognizer's image tower), which keep
    their outputs in it: the GPU's autocast dtype, bf16 on CPUs with native bf16 (about half the fp32 time),
    else None (fp32)."""
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return autocast_dtype(device)


def autocast(device: torch.device, low_precision_cpu: bool = False):
    """Autocast for inference on ``device``: ``autocast_dtype`` (none on a CPU), or with ``low_precision_cpu``
    ``low_precision_dtype`` (bf16 on CPUs with native bf16 too)."""
    dtype = low_precision_dtype(device) if low_precision_cpu else autocast_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def is_oom(exc: BaseException) -> bool:
    """CUDA (and other accelerators') out-of-memory errors, also when a library re-raises them as RuntimeError."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def release_cached(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def free_memory(device: torch.device) -> int | None:
    """Free bytes on the device (torch.cuda.mem_get_info plus the allocator's unused cache), None on CPU."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    # memory the caching allocator holds but does not use is free for our next batch too
    return int(free) + int(torch.cuda.memory_reserved(device)) - int(torch.cuda.memory_allocated(device))


def start_peak(device: torch.device) -> int | None:
    """Reset the peak counter; returns the bytes allocated now (the baseline of ``peak_since``)."""
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    return int(torch.cuda.memory_allocated(device))


def peak_since(device: torch.device, baseline: int | None) -> int | None:
    """Peak bytes allocated above ``baseline`` since ``start_peak``."""
    if device.type != "cuda" or baseline is None:
        return None
    return max(0, int(torch.cuda.max_memory_allocated(device)) - baseline)


def fit_batch(per_item_bytes: float, free_bytes: int, current: int, maximum: int, headroom: float = 0.6) -> int:
    """The largest power-of-two batch (>= ``current``, <= ``maximum``) whose activations fit in ``headroom`` of the
    free memory, given the measured peak bytes per item. Never shrinks: shrinking is the OOM handler's job."""
    if per_item_bytes <= 0:
        return min(maximum, max(current, 1))
    fits = int(free_bytes * headroom / per_item_bytes)
    batch = current
    while batch * 2 <= min(fits, maximum):
        batch *= 2
    return max(1, min(batch, maximum))
