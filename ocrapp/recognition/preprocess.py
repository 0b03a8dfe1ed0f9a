"""Crop preprocessing shared by inference and the data engine, so both see identical pixels."""

from __future__ import annotations

import cv2
import numpy as np

# CLIP's normalisation constants (open_clip.constants.OPENAI_DATASET_MEAN/STD).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resize_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an RGB uint8 word crop to the recognizer's fixed input size (aspect not kept, as in PARSeq)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"empty crop of shape {image.shape}")
    shrinking = h * w > height * width
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def widen_margin(image: np.ndarray, share: float) -> np.ndarray:
    """``image`` with ``share`` of its height added on every side, the border pixels repeated (a looser crop)."""
    pad = max(1, round(share * image.shape[0]))
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def images_to_tensor(images: np.ndarray, cfg, device: "torch.device | str" = "cpu") -> "torch.Tensor":
    """(N, H, W, 3) uint8 crops already at the input size -> normalised float tensor (N, 3, H, W) on ``device``.

    The uint8 batch travels (from pinned memory on CUDA: 4x fewer bytes than float32) and is normalised there."""
    import torch

    device = torch.device(device)
    u8 = torch.from_numpy(np.ascontiguousarray(images))
    if device.type == "cuda":
        u8 = u8.pin_memory()
    u8 = u8.to(device, non_blocking=True)
    mean = torch.tensor(cfg.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, device=device).view(1, 3, 1, 1)
    return (u8.permute(0, 3, 1, 2).float().div_(255.0) - mean) / std
