"""Giving a short word box its line's height. The DB map covers a word's ink, so a word without ascenders or
descenders ("on", "a", "-") comes out about half as tall as the other words of its line, while word boxes (a
PDF's text layer, annotated pages) and the recognizer's training crops span the line from ascender to descender.
A box clearly shorter than its neighbours on the same line, and lying within their height, takes their top and
bottom (the median of those neighbours')."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ocrapp.detection.fragments import LineBoxes
from ocrapp.document import Polygon


@dataclass(frozen=True)
class LineHeightRule:
    # A neighbour counts when it is min_ratio to max_ratio times the box's height, at most `reach` of its own
    # heights away along the line, and the box lies within its height (give or take `within` of it).
    min_ratio: float = 1.2
    max_ratio: float = 2.5
    reach: float = 2.0
    within: float = 0.1
    min_cos: float = 0.985  # the two reading directions within about 10 degrees


def extend_to_line_height(words: list[tuple[Polygon, float]], rule: LineHeightRule = LineHeightRule()
                          ) -> list[tuple[Polygon, float]]:
    """Each box shorter than its line's neighbours (``rule``) grown across the line to their median top and
    bottom; its length along the line, its direction and its score stay. Other boxes come back unchanged."""
    if len(words) < 2 or any(len(p.points) != 4 for p, _ in words):
        return words
    boxes = LineBoxes.of(np.array([p.points for p, _ in words], dtype=np.float64))
    out = list(words)
    for first in range(0, len(words), _ROWS):
        for i, quad in _grown(boxes, np.arange(first, min(first + _ROWS, len(words))), rule):
            out[i] = (Polygon(tuple((float(x), float(y)) for x, y in quad)), words[i][1])
    return out


_ROWS = 256  # boxes looked at per step: a few arrays of rows x all boxes


def _grown(boxes: LineBoxes, rows: np.ndarray, rule: LineHeightRule) -> list[tuple[int, np.ndarray]]:
    """Boxes ``rows`` that grow, with their new corners. Every box is seen in each row box's own frame (along,
    across its line) as its centre and its own length and height (the boxes are rectangles), since a long word
    tilted by a degree would otherwise look taller than it is."""
    along_dirs = boxes.directions[rows]  # (R, 2)
    across_dirs = np.stack([-along_dirs[:, 1], along_dirs[:, 0]], axis=1)
    centre_along, centre_across = along_dirs @ boxes.centres.T, across_dirs @ boxes.centres.T  # (R, N)
    quads = boxes.quads
    lengths = (np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1) + np.linalg.norm(quads[:, 2] - quads[:, 3], axis=1))
    lengths = lengths / 2
    start, end = centre_along - lengths / 2, centre_along + lengths / 2
    heights = np.broadcast_to(boxes.heights, centre_across.shape)
    top, bottom = centre_across - heights / 2, centre_across + heights / 2
    own = (np.arange(len(rows)), rows)
    height = heights[own][:, None]
    gap = np.maximum(start - end[own][:, None], start[own][:, None] - end)
    neighbour = ((along_dirs @ boxes.directions.T >= rule.min_cos)
                 & (heights >= rule.min_ratio * height) & (heights <= rule.max_ratio * height)
                 & (top - rule.within * heights <= top[own][:, None])
                 & (bottom[own][:, None] <= bottom + rule.within * heights)
                 & (gap <= rule.reach * heights) & (height > 0))
    neighbour[own] = False
    grown = []
    for r in np.nonzero(neighbour.any(1))[0]:
        new_top = min(top[r, rows[r]], float(np.median(top[r, neighbour[r]])))
        new_bottom = max(bottom[r, rows[r]], float(np.median(bottom[r, neighbour[r]])))
        a0, a1 = start[r, rows[r]], end[r, rows[r]]
        corners = [(a0, new_top), (a1, new_top), (a1, new_bottom), (a0, new_bottom)]
        grown.append((int(rows[r]), np.array([a * along_dirs[r] + c * across_dirs[r] for a, c in corners])))
    return grown
