"""Joining the pieces of one word: dot-matrix and worn thermal print break letters apart, and the DB map then
splits a word into boxes that touch or overlap along their text line (receipt photos). Word spaces stay apart:
two boxes join only when the gap between them along the line is at most ``max_gap`` times their height."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocrapp.disjoint_sets import DisjointSets
from ocrapp.document import Polygon


@dataclass(frozen=True)
class FragmentRule:
    max_gap: float = 0.0  # gap along the line / the smaller box height; <= 0: only touching or overlapping boxes
    max_offset: float = 0.3  # distance between the two centre lines / the smaller height
    max_height_ratio: float = 1.5
    min_cos: float = 0.985  # the two reading directions within about 10 degrees


@dataclass(frozen=True)
class LineBoxes:
    """Per box: centre, unit vector along the text line, height (vectorised over all boxes of a page)."""

    quads: np.ndarray  # (N, 4, 2) TL, TR, BR, BL
    centres: np.ndarray
    directions: np.ndarray
    heights: np.ndarray

    @classmethod
    def of(cls, quads: np.ndarray) -> "LineBoxes":
        tl, tr, br, bl = (quads[:, k] for k in range(4))
        along = (tr - tl) + (br - bl)
        norm = np.linalg.norm(along, axis=1, keepdims=True)
        directions = np.where(norm > 0, along / np.maximum(norm, 1e-9), np.array([1.0, 0.0]))
        heights = (np.linalg.norm(bl - tl, axis=1) + np.linalg.norm(br - tr, axis=1)) / 2
        return cls(quads, quads.mean(1), directions, heights)

    def joins(self, i: int, j: int, rule: FragmentRule) -> bool:
        low, high = sorted((float(self.heights[i]), float(self.heights[j])))
        same_direction = float(self.directions[i] @ self.directions[j]) >= rule.min_cos
        if low <= 0 or high / low > rule.max_height_ratio or not same_direction:
            return False
        if self.offset_across(i, j) > rule.max_offset * low:
            return False
        return self.gap_along(i, j) <= rule.max_gap * low

    def gap_along(self, i: int, j: int) -> float:
        """Blank space between boxes i and j along box i's line, in pixels (negative where they overlap)."""
        direction = self.directions[i]
        a_along, b_along = self.quads[i] @ direction, self.quads[j] @ direction
        return float(max(b_along.min() - a_along.max(), a_along.min() - b_along.max()))

    def offset_across(self, i: int, j: int) -> float:
        """Distance of box j's centre from box i's centre line, in pixels."""
        direction = self.directions[i]
        across = np.array([-direction[1], direction[0]])
        return abs(float((self.centres[j] - self.centres[i]) @ across))


def _candidate_pairs(boxes: LineBoxes, rule: FragmentRule) -> np.ndarray:
    """Pairs (i < j) whose axis-aligned bounds come within the allowed gap: the only ones that can join."""
    reach = boxes.heights * max(rule.max_gap, 0.0)
    lo = boxes.quads.min(1) - reach[:, None]
    hi = boxes.quads.max(1) + reach[:, None]
    near = ((lo[:, None, 0] <= hi[None, :, 0]) & (hi[:, None, 0] >= lo[None, :, 0])
            & (lo[:, None, 1] <= hi[None, :, 1]) & (hi[:, None, 1] >= lo[None, :, 1]))
    return np.argwhere(np.triu(near, k=1))


def _ordered_rectangle(points: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The minimum-area rectangle around ``points``, corners from top-left clockwise in reading direction."""
    rect = cv2.boxPoints(cv2.minAreaRect(points.astype(np.float32))).astype(np.float64)
    centre = rect.mean(0)
    across = np.array([-direction[1], direction[0]])
    along_s, across_s = (rect - centre) @ direction, (rect - centre) @ across
    top_left = int(np.argmin(along_s + across_s))
    start = np.roll(rect, -top_left, axis=0)
    if float((start[1] - start[0]) @ direction) < float((start[3] - start[0]) @ direction):
        start = start[[0, 3, 2, 1]]  # counter-clockwise from cv2: flip to clockwise
    return start


def merge_fragments(words: list[tuple[Polygon, float]], rule: FragmentRule = FragmentRule()
                    ) -> list[tuple[Polygon, float]]:
    """Join word boxes that ``rule`` says are pieces of one word (transitively); a joined box's score is the
    area-weighted mean of its pieces'. Boxes that join nothing come back unchanged, in their order."""
    if len(words) < 2 or any(len(p.points) != 4 for p, _ in words):
        return words
    quads = np.array([p.points for p, _ in words], dtype=np.float64)
    boxes = LineBoxes.of(quads)
    pieces = DisjointSets(len(words))
    for i, j in _candidate_pairs(boxes, rule):
        if pieces.find(i) != pieces.find(j) and boxes.joins(i, j, rule):
            pieces.union(i, j)
    merged = []
    for members in pieces.groups():
        if len(members) == 1:
            merged.append(words[members[0]])
            continue
        areas = np.array([max(cv2.contourArea(quads[k].astype(np.float32)), 1e-6) for k in members])
        score = float(np.dot(areas, [words[k][1] for k in members]) / areas.sum())
        direction = boxes.directions[members[0]]
        rect = _ordered_rectangle(np.concatenate([quads[k] for k in members]), direction)
        merged.append((Polygon(tuple((float(x), float(y)) for x, y in rect)), score))
    return merged
