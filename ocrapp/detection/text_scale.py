"""How large the text of a page is, before detection, so that a close-up is not magnified past what the detector
learnt.

The detector reads every page resized to a fixed longer side. For a full page that puts letters at the sizes it
was trained on (held-out pages of the training cache, 1280 px: median character height 6.9 to 15 px for 90% of
pages); a photo of a few receipt lines, or a small image, comes out with letters 3 to 5 times larger, where it
finds fragments or nothing. The character height is estimated from the ink's connected components, and the input
size shrinks until it is back in range.

Measured on held-out cache pages cut to close-ups (windows of 20% / 35% / 60% / 100% of the page, 16 pages each),
detection hmean without -> with the shrink: 0.000 -> 0.518, 0.284 -> 0.575, 0.707 -> 0.737, 0.888 -> 0.888.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class TextScaleConfig:
    max_char_height: float = 24.0  # px at the input size; above it the page is read smaller ...
    target_char_height: float = 11.0  # ... so that its characters come out this tall (the training median: ~10)
    min_input_size: int = 256
    analysis_side: int = 1600  # the estimate runs on the page scaled down to at most this longer side


def estimate_char_height(image: np.ndarray, analysis_side: int = TextScaleConfig.analysis_side) -> float | None:
    """Median height in pixels of the character-like connected components of the page's ink (locally
    thresholded, so uneven light is no obstacle); None when fewer than 20 are found (a blank or pictorial page)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    scale = min(1.0, analysis_side / max(gray.shape))
    if scale < 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ink = cv2.adaptiveThreshold(gray, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 12)
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    width, height, area = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
    letters = (height >= 4) & (width >= 2) & (height <= 0.25 * gray.shape[0]) & (width <= 3 * height) \
        & (area >= 0.1 * width * height)
    if letters.sum() < 20:
        return None
    return float(np.median(height[letters])) / scale


def fitting_input_size(image: np.ndarray, input_size: int, cfg: TextScaleConfig = TextScaleConfig()) -> int:
    """``input_size``, or a smaller multiple of 32 when the page's characters would come out taller than
    ``cfg.max_char_height`` at it."""
    char_height = estimate_char_height(image, cfg.analysis_side)
    if char_height is None:
        return input_size
    at_input = char_height * input_size / max(image.shape[:2])
    if at_input <= cfg.max_char_height:
        return input_size
    size = int(round(input_size * cfg.target_char_height / at_input / 32)) * 32
    return max(cfg.min_input_size, min(input_size, size))
