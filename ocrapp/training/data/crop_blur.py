"""Blur applied while training to a share of the cached crops (already at the model's input size).

The cached crops of real PDF words are sharp (``pdf_crops`` blurs 8 % of them, lightly) and the synthetic words are
blurred by a Gaussian only, while pages photographed by a moving hand or out of focus smear their letters along a
line. Session 19's fine-tunes read such held-out pages worse than the file they started from (80 held-out pages:
the pages that lost most words were blurred ones), so the training loop blurs crops of every source at a chosen
share: a defocus (Gaussian) or a motion smear of a few pixels at any angle. It costs about 0.3 ms a crop at 32x128
(at a share of 0.25, ~7 ms per CPU step of 96 crops, which takes ~4 s) and needs no new render.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBlurConfig:
    share: float = 0.0  # of the crops in a batch; 0 leaves them as cached
    motion_share: float = 0.5  # of the blurred ones: a motion smear, else a defocus
    sigma: tuple[float, float] = (0.6, 1.8)  # defocus, in pixels of the 32 px tall input
    length: tuple[int, int] = (3, 9)  # motion smear, in pixels (odd lengths)


def motion_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A line of ``length`` pixels through the kernel's centre at ``angle_deg``, summing to 1."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    centre = ((length - 1) / 2, (length - 1) / 2)
    kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(centre, angle_deg, 1.0), (length, length))
    kernel[kernel < 1e-6] = 0.0  # OpenCV 5 leaves ~1e-16 of interpolation residue beside an upright line
    return kernel / max(float(kernel.sum()), 1e-6)


def blur_crop(crop: np.ndarray, rng: np.random.Generator, cfg: CropBlurConfig) -> np.ndarray:
    if rng.random() < cfg.motion_share:
        low, high = cfg.length
        length = int(rng.integers(low // 2, high // 2 + 1)) * 2 + 1
        return cv2.filter2D(crop, -1, motion_kernel(length, float(rng.uniform(0, 180))),
                            borderType=cv2.BORDER_REPLICATE)
    return cv2.GaussianBlur(crop, (0, 0), float(rng.uniform(*cfg.sigma)), borderType=cv2.BORDER_REPLICATE)


def blur_batch(images: np.ndarray, rng: np.random.Generator, cfg: CropBlurConfig) -> np.ndarray:
    """``images`` (N, H, W, C) uint8 with ``cfg.share`` of them blurred (a new array; the cache is not touched)."""
    if cfg.share <= 0:
        return images
    chosen = np.flatnonzero(rng.random(len(images)) < cfg.share)
    if not len(chosen):
        return images
    out = images.copy()
    for i in chosen:
        out[i] = blur_crop(images[i], rng, cfg)
    return out
