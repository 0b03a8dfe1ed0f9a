"""Joining the pieces of one word: dot-matrix and worn thermal print break letters apart, and the DB map then
splits a word into boxes that touch or overlap along their text line (receipt photos). Word spaces stay apart:
two boxes join only when the gap between them along the line is at most ``max_gap`` times their height."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocrapp.document import Polygon


@dataclass(frozen=True)
class FragmentRule:
    max_gap: float = 0.0  # gap along the line / the smaller box height; <= 0: only touching or overlapping boxes
    max_offset: float = 0.3  # distance between the two centre lines / the smaller height
    max_height_ratio: float = 1.5
    min_cos: float = 0.985  # the two reading directions within about 10 degrees


@dataclass(frozen=True)
class _Box:
    centre: np.ndarray
    direction: np.ndarray  # unit vector along the text line
    height: float
    points: np.ndarray


def _box(quad: np.ndarray) -> _Box:
    tl, tr, br, bl = quad
    along = (tr - tl) + (br - bl)
    norm = float(np.linalg.norm(along))
    direction = along / norm if norm > 0 else np.array([1.0, 0.0])
    height = float(np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
    return _Box(quad.mean(0), direction, height, quad)


def _joins(a: _Box, b: _Box, rule: FragmentRule) -> bool:
    low, high = sorted((a.height, b.height))
    if low <= 0 or high / low > rule.max_height_ratio or float(a.direction @ b.direction) < rule.min_cos:
        return False
    across = np.array([-a.direction[1], a.direction[0]])
    if abs(float((b.centre - a.centre) @ across)) > rule.max_offset * low:
        return False
    a_along, b_along = a.points @ a.direction, b.points @ a.direction
    gap = max(b_along.min() - a_along.max(), a_along.min() - b_along.max())
    return gap <= rule.max_gap * low


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
    quads = [np.asarray(p.points, dtype=np.float64) for p, _ in words]
    if len(quads) < 2 or any(len(q) != 4 for q in quads):
        return words
    boxes = [_box(q) for q in quads]
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lo = np.array([q.min(0) for q in quads])
    hi = np.array([q.max(0) for q in quads])
    reach = np.array([b.height for b in boxes]) * max(rule.max_gap, 0.0)
    for i in range(len(boxes)):
        near = np.nonzero((lo[:, 0] <= hi[i, 0] + reach[i]) & (hi[:, 0] >= lo[i, 0] - reach[i])
                          & (lo[:, 1] <= hi[i, 1] + reach[i]) & (hi[:, 1] >= lo[i, 1] - reach[i]))[0]
        for j in near[near > i]:
            if root(i) != root(j) and _joins(boxes[i], boxes[j], rule):
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    merged = []
    for members in sorted(groups.values(), key=min):
        if len(members) == 1:
            merged.append(words[members[0]])
            continue
        areas = np.array([max(cv2.contourArea(quads[k].astype(np.float32)), 1e-6) for k in members])
        score = float(np.dot(areas, [words[k][1] for k in members]) / areas.sum())
        direction = boxes[members[0]].direction
        rect = _ordered_rectangle(np.concatenate([quads[k] for k in members]), direction)
        merged.append((Polygon(tuple((float(x), float(y)) for x, y in rect)), score))
    return merged
