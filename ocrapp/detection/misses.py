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

from ocrapp.detection.fragments import LineBoxes
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
    lines = LineBoxes.of(np.stack([_as_quad(a) for a in gt_arrays])) if gt_arrays else None
    kinds: Counter = Counter()
    for i, shape in enumerate(gt_shapes):
        if i in matched_gt or shape.area <= 0:
            continue
        kinds[_miss_kind(i, lines, gt_shapes, pred_shapes, cfg)] += 1
    return kinds


def _miss_kind(i: int, lines: LineBoxes, gt_shapes: list, pred_shapes: list, cfg: MissConfig) -> str:
    word = gt_shapes[i]
    overlaps = [(word.intersection(p).area, p) for p in pred_shapes if p.area > 0 and word.intersects(p)]
    holders = [p for inter, p in overlaps if inter >= cfg.holds * word.area]
    for box in holders:
        neighbours = [k for k, other in enumerate(gt_shapes) if k != i and other.area > 0
                      and other.intersection(box).area >= cfg.holds * other.area]
        if neighbours:
            tight = any(on_one_line(lines, i, k) and line_gap(lines, i, k) < cfg.tight_gap for k in neighbours)
            return "tight_merge" if tight else "merge"
    if sum(inter >= cfg.holds * p.area for inter, p in overlaps) >= 2:
        return "split"
    if sum(inter for inter, _ in overlaps) < cfg.found * word.area:
        return "missed"
    return "misfit"


def line_gap(lines: LineBoxes, i: int, k: int) -> float:
    """Blank space between words i and k along word i's line, in text heights (negative where they overlap)."""
    return lines.gap_along(i, k) / max(float(lines.heights[i]), float(lines.heights[k]), 1.0)


def on_one_line(lines: LineBoxes, i: int, k: int, max_offset: float = 0.5) -> bool:
    """Whether word k's centre lies within ``max_offset`` of word i's height from word i's centre line."""
    return lines.offset_across(i, k) <= max_offset * max(float(lines.heights[i]), 1.0)


def _as_quad(points: np.ndarray) -> np.ndarray:
    """A word's quad (TL, TR, BR, BL); a polygon of another length is taken as its upright bounding box."""
    if len(points) == 4:
        return points
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def recall_ceiling(gt_count: int, kinds: Counter) -> float:
    """The recall word boxes could reach on this ground truth: every word found but the tight merges."""
    return (gt_count - kinds["tight_merge"]) / gt_count if gt_count else 0.0
