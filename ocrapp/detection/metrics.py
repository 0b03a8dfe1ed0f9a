"""Detection recall / precision at IoU >= 0.5 (one-to-one greedy matching on polygon IoU)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shapely.geometry import Polygon as ShapelyPolygon
from shapely.ops import unary_union

from ocrapp.document import Polygon


@dataclass
class DetCounts:
    gt: int = 0
    pred: int = 0
    matched: int = 0
    iou_sum: float = 0.0  # over the matched pairs: how tight the matched boxes are

    def add(self, other: "DetCounts") -> "DetCounts":
        return DetCounts(self.gt + other.gt, self.pred + other.pred, self.matched + other.matched,
                         self.iou_sum + other.iou_sum)

    @property
    def mean_iou(self) -> float:
        return self.iou_sum / self.matched if self.matched else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.gt if self.gt else 0.0

    @property
    def precision(self) -> float:
        return self.matched / self.pred if self.pred else 0.0

    @property
    def hmean(self) -> float:
        r, p = self.recall, self.precision
        return 2 * r * p / (r + p) if r + p else 0.0

    def as_dict(self) -> dict:
        return {"gt": self.gt, "pred": self.pred, "matched": self.matched, "recall": round(self.recall, 4),
                "precision": round(self.precision, 4), "hmean": round(self.hmean, 4), "mean_iou": round(self.mean_iou, 4)}


def as_points(poly) -> np.ndarray:
    """An ocrapp Polygon or an array-like of points as a (K, 2) float array."""
    if isinstance(poly, Polygon):
        return np.asarray(poly.points, dtype=np.float64)
    return np.asarray(poly, dtype=np.float64).reshape(-1, 2)


def matched_pairs(gt: list, pred: list, iou_thresh: float = 0.5) -> list[tuple[int, int, float]]:
    """gt, pred: polygons (ocrapp Polygon or (K,2) arrays). Greedy one-to-one matching by IoU:
    (gt index, pred index, IoU) per match, best IoU first."""
    g = [as_points(p) for p in gt]
    p = [as_points(q) for q in pred]
    if not g or not p:
        return []
    gb = np.array([[a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max()] for a in g])
    pb = np.array([[a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max()] for a in p])
    ix0 = np.maximum(gb[:, None, 0], pb[None, :, 0])
    iy0 = np.maximum(gb[:, None, 1], pb[None, :, 1])
    ix1 = np.minimum(gb[:, None, 2], pb[None, :, 2])
    iy1 = np.minimum(gb[:, None, 3], pb[None, :, 3])
    overlap = (ix1 > ix0) & (iy1 > iy0)
    gs = [ShapelyPolygon(a).buffer(0) for a in g]
    ps = [ShapelyPolygon(a).buffer(0) for a in p]
    candidates = []
    for i, j in zip(*np.nonzero(overlap)):
        inter = gs[i].intersection(ps[j]).area
        union = gs[i].area + ps[j].area - inter
        iou = inter / union if union > 0 else 0.0
        if iou >= iou_thresh:
            candidates.append((iou, int(i), int(j)))
    candidates.sort(reverse=True)
    used_g, used_p = set(), set()
    matches = []
    for iou, i, j in candidates:
        if i in used_g or j in used_p:
            continue
        used_g.add(i)
        used_p.add(j)
        matches.append((i, j, iou))
    return matches


def match_counts(gt: list, pred: list, iou_thresh: float = 0.5) -> DetCounts:
    """Counts of ``matched_pairs``: ground truth, predictions, matches and the matches' summed IoU."""
    return counts_of(gt, pred, matched_pairs(gt, pred, iou_thresh))


def counts_of(gt: list, pred: list, matches: list[tuple[int, int, float]]) -> DetCounts:
    """``DetCounts`` of ``matched_pairs(gt, pred)``'s matches."""
    return DetCounts(len(gt), len(pred), len(matches), sum(iou for _, _, iou in matches))


def group_to_units(units: list, pred: list, min_coverage: float = 0.5) -> list[np.ndarray]:
    """Predicted word polygons -> the ground truth's granularity, for sets whose units are multi-word fields
    (WildReceipt). Each prediction goes to the unit that covers most of its area (at least ``min_coverage``); a
    unit's predictions become one polygon, the minimum rotated rectangle around them. Others stay as they are."""
    unit_shapes = [ShapelyPolygon(as_points(u)).buffer(0) for u in units]
    groups: dict[int, list[ShapelyPolygon]] = {}
    rest: list[np.ndarray] = []
    for poly in pred:
        shape = ShapelyPolygon(as_points(poly)).buffer(0)
        coverage = [shape.intersection(u).area / shape.area if shape.area > 0 else 0.0 for u in unit_shapes]
        best = int(np.argmax(coverage)) if coverage else -1
        if best >= 0 and coverage[best] >= min_coverage:
            groups.setdefault(best, []).append(shape)
        else:
            rest.append(as_points(poly))
    merged = []
    for k in sorted(groups):
        hull = unary_union(groups[k]).minimum_rotated_rectangle
        merged.append(np.asarray(hull.exterior.coords, dtype=np.float64)[:4])
    return merged + rest
