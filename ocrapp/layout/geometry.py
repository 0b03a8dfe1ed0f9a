"""Page skew from word polygons, and word boxes in the deskewed frame."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ocrapp.document import Word


@dataclass(frozen=True)
class Boxes:
    """Axis-aligned word boxes (N x 4: x0, y0, x1, y1) in the deskewed frame."""

    xyxy: np.ndarray

    @property
    def x0(self) -> np.ndarray:
        return self.xyxy[:, 0]

    @property
    def y0(self) -> np.ndarray:
        return self.xyxy[:, 1]

    @property
    def x1(self) -> np.ndarray:
        return self.xyxy[:, 2]

    @property
    def y1(self) -> np.ndarray:
        return self.xyxy[:, 3]

    @property
    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def cy(self) -> np.ndarray:
        return (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def word_quads(words: Sequence[Word]) -> tuple[np.ndarray, np.ndarray]:
    """(N x 4 x 2 corners, N mask of real quadrilaterals); other polygons get their bbox corners."""
    quads = np.zeros((len(words), 4, 2))
    is_quad = np.zeros(len(words), dtype=bool)
    for i, word in enumerate(words):
        if len(word.polygon.points) == 4:
            quads[i] = word.polygon.points
            is_quad[i] = True
        else:
            b = word.bbox
            quads[i] = ((b.x0, b.y0), (b.x1, b.y0), (b.x1, b.y1), (b.x0, b.y1))
    return quads, is_quad


def _edge_angles(quads: np.ndarray, max_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Angles of the top and bottom edges of quads wider than tall, with the edge lengths."""
    tl, tr, br, bl = quads[:, 0], quads[:, 1], quads[:, 2], quads[:, 3]
    side = np.hypot(*(bl - tl).T)
    angles, lengths = [], []
    for a, b in ((tl, tr), (bl, br)):
        dx, dy = (b - a).T
        length = np.hypot(dx, dy)
        angle = np.arctan2(dy, dx)
        ok = (dx > 0) & (length > side) & (np.abs(angle) <= max_rad)
        angles.append(angle[ok])
        lengths.append(length[ok])
    return np.concatenate(angles), np.concatenate(lengths)


class VerticalIndex:
    """Finds the boxes whose vertical extent can overlap a band, without scanning all of them:
    boxes sorted by top edge, window bounded by the tallest box."""

    def __init__(self, xyxy: np.ndarray) -> None:
        self.order = np.argsort(xyxy[:, 1], kind="stable")
        self.tops = xyxy[self.order, 1]
        self.max_height = float((xyxy[:, 3] - xyxy[:, 1]).max(initial=0.0))

    def near(self, top: float, bottom: float) -> np.ndarray:
        lo = np.searchsorted(self.tops, top - self.max_height, side="left")
        hi = np.searchsorted(self.tops, bottom, side="right")
        return self.order[lo:hi]


def _neighbour_angles(boxes: np.ndarray, max_rad: float) -> np.ndarray:
    """Angles between the centres of horizontally adjacent words: works for axis-aligned boxes, whose
    edges carry no angle but whose centres still sit on the (skewed) text line."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    h = boxes[:, 3] - boxes[:, 1]
    index = VerticalIndex(boxes)
    angles = []
    for i in range(len(boxes)):
        cand = index.near(boxes[i, 1], boxes[i, 3])
        gap = boxes[cand, 0] - boxes[i, 2]
        ok = (cx[cand] > cx[i]) & (gap > -0.5 * h[i]) & (gap < 3 * h[i])
        ok &= np.abs(cy[cand] - cy[i]) < 0.6 * np.maximum(h[cand], h[i])
        ok &= np.abs(np.arctan2(cy[cand] - cy[i], np.maximum(cx[cand] - cx[i], 1e-6))) <= max_rad
        if ok.any():
            j = cand[ok][np.argmin(gap[ok])]
            angles.append(math.atan2(cy[j] - cy[i], cx[j] - cx[i]))
    return np.asarray(angles)


def estimate_skew(words: Sequence[Word], max_skew_deg: float = 15.0) -> float:
    """Page skew in degrees (positive: text lines descend to the right, i.e. clockwise on screen).
    The weighted median of word edge angles, or of neighbour-centre angles when all boxes are
    axis-aligned; 0 when there is nothing to measure."""
    max_rad = math.radians(max_skew_deg)
    quads, is_quad = word_quads(words)
    angles, lengths = _edge_angles(quads[is_quad], max_rad)
    if len(angles) and np.abs(angles).max() > 1e-4:
        return math.degrees(_weighted_median(angles, lengths))
    boxes = np.concatenate([quads.min(axis=1), quads.max(axis=1)], axis=1)
    neighbour = _neighbour_angles(boxes, max_rad)
    return math.degrees(float(np.median(neighbour))) if len(neighbour) else 0.0


def deskewed_boxes(words: Sequence[Word], skew_deg: float) -> Boxes:
    """Each word's box in the frame rotated by -skew (around the origin). A tilted polygon is rotated and
    boxed; an axis-aligned box of tilted text (what a straight-box detector gives) is first shrunk back to
    the tilted word it encloses, so that skewed lines do not swell into their neighbours."""
    theta = math.radians(skew_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    out = np.zeros((len(words), 4))
    for i, word in enumerate(words):  # any polygon, exact
        pts = np.asarray(word.polygon.points, dtype=float)
        xs = pts[:, 0] * cos + pts[:, 1] * sin
        ys = -pts[:, 0] * sin + pts[:, 1] * cos
        out[i] = (xs.min(), ys.min(), xs.max(), ys.max())
    if not 0.3 < abs(skew_deg) < 30 or not len(words):
        return Boxes(out)
    quads, is_quad = word_quads(words)
    x, y = quads[..., 0], quads[..., 1]
    aligned = is_quad & (x[:, 0] == x[:, 3]) & (x[:, 1] == x[:, 2]) & (y[:, 0] == y[:, 1]) & (y[:, 2] == y[:, 3])
    big_w, big_h = np.ptp(x, axis=1), np.ptp(y, axis=1)
    c, s = math.cos(abs(theta)), math.sin(abs(theta))
    det = c * c - s * s
    w, h = (big_w * c - big_h * s) / det, (big_h * c - big_w * s) / det
    use = aligned & (w > 0) & (h > 0)
    cx, cy = (out[:, 0] + out[:, 2]) / 2, (out[:, 1] + out[:, 3]) / 2
    shrunk = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    out[use] = shrunk[use]
    return Boxes(out)
