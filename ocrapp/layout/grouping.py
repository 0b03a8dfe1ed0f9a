"""Words -> lines -> blocks -> reading order, all in the deskewed frame (see geometry.py).

Lines: words are chained to their nearest right neighbour that overlaps them vertically (greedy
matching by gap, so two lines never share a word), then cut at gaps far wider than the line's usual word
gap (column gutters). Blocks: each line is linked to the nearest line just below it that overlaps it
horizontally and has a similar height. Block order: Breuel's partial order (2003) -- a before b if they
overlap horizontally and a is above b, or a is left of b and no third block spanning both lies between
them vertically -- then a topological sort; this reads column by column and handles full-width titles.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ocrapp.disjoint_sets import DisjointSets
from ocrapp.document import Block, Line, Word
from ocrapp.layout.geometry import Boxes, VerticalIndex, deskewed_boxes, estimate_skew


@dataclass(frozen=True)
class LayoutConfig:
    max_skew_deg: float = 15.0
    line_overlap: float = 0.5  # vertical overlap / smaller height for two words to share a line
    link_gap: float = 3.0  # max gap (x line height) between chained words
    split_gap: float = 1.5  # a gap over this (x line height) always splits a line
    min_split_gap: float = 0.6  # ... over this splits it when also rel_split_gap x the median word gap
    rel_split_gap: float = 2.5
    para_gap: float = 0.8  # max vertical gap (x line height) between lines of one block ...
    para_gap_rel: float = 1.6  # ... or up to this times the page's usual line gap (double spacing) ...
    max_para_gap: float = 2.5  # ... but never more than this (x line height)
    max_height_ratio: float = 1.6  # lines of very different heights (title / body) go to separate blocks


def _median(values: np.ndarray) -> float:
    """Median without np.median's overhead (it dominates on thousands of tiny arrays)."""
    ordered = np.sort(values)
    n = len(ordered)
    return float(ordered[n // 2]) if n % 2 else float((ordered[n // 2 - 1] + ordered[n // 2]) / 2)


def _overlap(a0: np.ndarray | float, a1: np.ndarray | float, b0: np.ndarray | float, b1: np.ndarray | float):
    return np.minimum(a1, b1) - np.maximum(a0, b0)


def _chain_lines(boxes: Boxes, cfg: LayoutConfig) -> list[list[int]]:
    xy, h = boxes.xyxy, np.maximum(boxes.heights, 1e-6)
    cx = (xy[:, 0] + xy[:, 2]) / 2
    widths = xy[:, 2] - xy[:, 0]
    index = VerticalIndex(xy)
    pairs: list[tuple[float, int, int]] = []
    for i in range(len(xy)):
        c = index.near(xy[i, 1], xy[i, 3])
        gap = xy[c, 0] - xy[i, 2]
        v_ratio = _overlap(xy[i, 1], xy[i, 3], xy[c, 1], xy[c, 3]) / np.minimum(h[c], h[i])
        ok = (cx[c] > cx[i]) & (v_ratio >= cfg.line_overlap) & (gap <= cfg.link_gap * np.maximum(h[c], h[i]))
        ok &= gap > -0.5 * np.minimum(widths[c], widths[i])
        pairs.extend((float(g), i, int(j)) for g, j in zip(gap[ok], c[ok]))
    right = np.full(len(xy), -1)
    has_left = np.zeros(len(xy), dtype=bool)
    for _, i, j in sorted(pairs):
        if right[i] < 0 and not has_left[j]:
            right[i], has_left[j] = j, True
    lines = []
    for start in np.flatnonzero(~has_left):
        chain, k = [int(start)], right[start]
        while k >= 0:
            chain.append(int(k))
            k = right[k]
        lines.append(chain)
    return lines


def _split_line(chain: list[int], boxes: Boxes, cfg: LayoutConfig) -> list[list[int]]:
    if len(chain) < 2:
        return [chain]
    xy = boxes.xyxy
    height = _median(boxes.heights[chain])
    gaps = xy[chain[1:], 0] - xy[chain[:-1], 2]
    usual = max(_median(gaps), 0.2 * height)
    out, current = [], [chain[0]]
    for gap, word in zip(gaps, chain[1:]):
        if gap > cfg.split_gap * height or (gap > cfg.min_split_gap * height and gap > cfg.rel_split_gap * usual):
            out.append(current)
            current = []
        current.append(word)
    out.append(current)
    return out


def _line_boxes(lines: list[list[int]], boxes: Boxes) -> tuple[np.ndarray, np.ndarray]:
    xy = boxes.xyxy
    box = np.array([[xy[l, 0].min(), xy[l, 1].min(), xy[l, 2].max(), xy[l, 3].max()] for l in lines]).reshape(-1, 4)
    heights = np.array([_median(boxes.heights[l]) for l in lines])
    return box, np.maximum(heights, 1e-6)


def _group_blocks(lbox: np.ndarray, lh: np.ndarray, cfg: LayoutConfig) -> list[list[int]]:
    """Union lines into blocks: each line links to its nearest line below (greedy, one-to-one) when the
    gap is not a paragraph break. A break is a gap over ``para_gap`` line heights or, on loosely spaced
    pages, over ``para_gap_rel`` times the page's usual line gap (so double spacing stays one block)."""
    candidates: list[tuple[float, int, int, float]] = []
    widths = lbox[:, 2] - lbox[:, 0]
    for i in range(len(lbox)):
        gap = lbox[:, 1] - lbox[i, 3]
        min_h = np.minimum(lh, lh[i])
        x_ratio = _overlap(lbox[i, 0], lbox[i, 2], lbox[:, 0], lbox[:, 2]) / np.maximum(
            np.minimum(widths, widths[i]), 1e-6
        )
        ratio = np.maximum(lh, lh[i]) / min_h
        ok = (lbox[:, 1] > lbox[i, 1]) & (gap <= cfg.max_para_gap * min_h) & (gap > -0.5 * lh[i])
        ok &= (x_ratio > 0.3) & (ratio <= cfg.max_height_ratio)
        candidates.extend((float(gap[j]), i, int(j), float(min_h[j])) for j in np.flatnonzero(ok))
    nearest: dict[int, float] = {}
    for gap, i, _, _ in candidates:
        nearest[i] = min(gap, nearest.get(i, gap))
    usual = _median(np.array(list(nearest.values()))) if nearest else 0.0
    pairs = [
        (gap, i, j)
        for gap, i, j, min_h in candidates
        if gap <= min(max(cfg.para_gap * min_h, cfg.para_gap_rel * usual), cfg.max_para_gap * min_h)
    ]
    blocks = DisjointSets(len(lbox))
    below, above = np.zeros(len(lbox), bool), np.zeros(len(lbox), bool)
    for _, i, j in sorted(pairs):
        if not below[i] and not above[j]:
            below[i] = above[j] = True
            blocks.union(i, j)
    return blocks.groups()


def _rows(members: list[int], lbox: np.ndarray, lh: np.ndarray) -> list[int]:
    """Lines of one block top to bottom; lines side by side on one row left to right."""
    members = sorted(members, key=lambda i: (lbox[i, 1] + lbox[i, 3]) / 2)
    rows: list[list[int]] = []
    for i in members:
        if rows:
            last = rows[-1][-1]
            if _overlap(lbox[i, 1], lbox[i, 3], lbox[last, 1], lbox[last, 3]) >= 0.5 * min(lh[i], lh[last]):
                rows[-1].append(i)
                continue
        rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda k: lbox[k, 0])]


def reading_order(boxes: np.ndarray) -> list[int]:
    """Order regions (N x 4 xyxy, deskewed) by Breuel's partial order + topological sort."""
    n = len(boxes)
    x0, y0, x1, y1 = boxes.T
    before = np.zeros((n, n), dtype=bool)
    for i in range(n):
        x_overlap = _overlap(x0[i], x1[i], x0, x1) > 0
        before[i] |= x_overlap & (y0[i] < y0) | x_overlap & (y0[i] == y0) & (np.arange(n) > i)
        for j in np.flatnonzero(~x_overlap & (x1[i] <= x0)):
            # i is left of j: precedes it unless some block bridging them lies vertically between them
            top, bottom = min(y0[i], y0[j]), max(y1[i], y1[j])
            bridges = (x0 < x1[i]) & (x1 > x0[j]) & (y1 >= top) & (y0 <= bottom)
            if not bridges.any():
                before[i, j] = True
    np.fill_diagonal(before, False)
    indegree = before.sum(axis=0)
    ready = [(y0[i], x0[i], i) for i in range(n) if indegree[i] == 0]
    heapq.heapify(ready)
    done = np.zeros(n, dtype=bool)
    order: list[int] = []
    while len(order) < n:
        if not ready:  # a cycle from near-ties: take the top-left remaining region
            i = min(np.flatnonzero(~done), key=lambda k: (y0[k], x0[k]))
            ready.append((y0[i], x0[i], int(i)))
        _, _, i = heapq.heappop(ready)
        if done[i]:
            continue
        done[i] = True
        order.append(int(i))
        for j in np.flatnonzero(before[i] & ~done):
            indegree[j] -= 1
            if indegree[j] == 0:
                heapq.heappush(ready, (y0[j], x0[j], int(j)))
    return order


def analyze_layout(words: Sequence[Word], config: LayoutConfig = LayoutConfig()) -> list[Block]:
    """Group one page's words into lines and blocks, in reading order."""
    words = list(words)
    if not words:
        return []
    boxes = deskewed_boxes(words, estimate_skew(words, config.max_skew_deg))
    lines = [part for chain in _chain_lines(boxes, config) for part in _split_line(chain, boxes, config)]
    lbox, lh = _line_boxes(lines, boxes)
    groups = _group_blocks(lbox, lh, config)
    gbox = np.array([[lbox[g, 0].min(), lbox[g, 1].min(), lbox[g, 2].max(), lbox[g, 3].max()] for g in groups])
    blocks = []
    for g in reading_order(gbox):
        ordered = _rows(groups[g], lbox, lh)
        blocks.append(Block([Line([words[k] for k in lines[i]]) for i in ordered]))
    return blocks
