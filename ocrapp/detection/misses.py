"""Why a ground-truth word went unmatched: the causes behind a detection recall.

A PDF text layer splits what print sets as one word ("Fusce." and ".", the LaTeX logo's raised "A", "mi" and "]"),
and no word box can separate pieces with no space between them. ``classify_misses`` sorts each unmatched word by
what the predicted boxes did with it, so a recall can be read as what a detector could still find and what the
ground truth's convention puts out of reach of any word detector:

* ``tight_merge``: a predicted box holds it and a neighbour on its line less than ``tight_gap`` text heights away;
* ``merge``: a predicted box holds it and other words, all farther apart or on other lines (what a detector could
  separate);
* ``split``: two or more predicted boxes lie inside it (the word cut in pieces);
* ``missed``: no predicted box covers ``found`` of its area;
* ``misfit``: a box is there but fits it below the matching IoU (too loose, too tight, shifted).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from shapely.geometry import Polygon as ShapelyPolygon

from ocrapp.detection.metrics import as_points

MISS_KINDS = ("tight_merge", "merge", "split", "missed", "misfit")


@dataclass(frozen=True)
class MissConfig:
    # Pieces of a line closer than this (in word-box heights) are set as one printed word: narrower than a thin
    # space (1/6 em, about 0.12 of a box's height).
    tight_gap: float = 0.12
    # A box holds a word when it covers this share of the word's area; a box lies inside a word alike.
    holds: float = 0.5
    # Below this covered share of its area, a word counts as not found at all.
    found: float = 0.3


def classify_misses(gt: list, pred: list, matched_gt: set[int], cfg: MissConfig = MissConfig()) -> Counter:
    """Counts of ``MISS_KINDS`` over the ground-truth words whose index is not in ``matched_gt``."""
    gt_arrays = [as_points(g) for g in gt]
    gt_shapes = [ShapelyPolygon(a).buffer(0) for a in gt_arrays]
    pred_shapes = [ShapelyPolygon(as_points(p)).buffer(0) for p in pred]
    kinds: Counter = Counter()
    for i, shape in enumerate(gt_shapes):
        if i in matched_gt or shape.area <= 0:
            continue
        kinds[_miss_kind(i, gt_arrays, gt_shapes, pred_shapes, cfg)] += 1
    return kinds


def _miss_kind(i: int, gt_arrays: list[np.ndarray], gt_shapes: list, pred_shapes: list, cfg: MissConfig) -> str:
    word = gt_shapes[i]
    overlaps = [(word.intersection(p).area, p) for p in pred_shapes if p.area > 0 and word.intersects(p)]
    holders = [p for inter, p in overlaps if inter >= cfg.holds * word.area]
    for box in holders:
        neighbours = [k for k, other in enumerate(gt_shapes) if k != i and other.area > 0
                      and other.intersection(box).area >= cfg.holds * other.area]
        if neighbours:
            word_quad = gt_arrays[i]
            tight = any(on_one_line(word_quad, gt_arrays[k]) and line_gap(word_quad, gt_arrays[k]) < cfg.tight_gap
                        for k in neighbours)
            return "tight_merge" if tight else "merge"
    if sum(inter >= cfg.holds * p.area for inter, p in overlaps) >= 2:
        return "split"
    if sum(inter for inter, _ in overlaps) < cfg.found * word.area:
        return "missed"
    return "misfit"


def line_gap(word: np.ndarray, other: np.ndarray) -> float:
    """Blank space between two word quads (TL, TR, BR, BL) along ``word``'s baseline, in text heights (negative
    when they overlap)."""
    direction = _reading_direction(word)
    a, b = word @ direction, other @ direction
    height = max(_height(word), _height(other), 1.0)
    return float(max(b.min() - a.max(), a.min() - b.max()) / height)


def on_one_line(word: np.ndarray, other: np.ndarray, max_offset: float = 0.5) -> bool:
    """Whether ``other``'s centre lies within ``max_offset`` of ``word``'s height from ``word``'s centre line."""
    direction = _reading_direction(word)
    across = np.array([-direction[1], direction[0]])
    offset = abs(float((other.mean(0) - word.mean(0)) @ across))
    return offset <= max_offset * max(_height(word), 1.0)


def _reading_direction(quad: np.ndarray) -> np.ndarray:
    along = quad[1] - quad[0]
    norm = float(np.linalg.norm(along))
    return along / norm if norm > 0 else np.array([1.0, 0.0])


def _height(quad: np.ndarray) -> float:
    return float(np.linalg.norm(quad[3] - quad[0])) if len(quad) == 4 else float(np.ptp(quad[:, 1]))


def recall_ceiling(gt_count: int, kinds: Counter) -> float:
    """The recall word boxes could reach on this ground truth: every word found but the tight merges."""
    return (gt_count - kinds["tight_merge"]) / gt_count if gt_count else 0.0
