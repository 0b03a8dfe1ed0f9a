"""Word polygons -> upright word crops for the recognizer.

Each quadrilateral (TL, TR, BR, BL of the upright word) is perspective-warped to a rectangle whose size
comes from the polygon's side lengths, so rotated and sheared words come out upright. Crops much taller
than wide (and taller than the page's text height, so a lone "l" is left alone) are vertical text and
are turned to horizontal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import shapely
from shapely.geometry import Polygon as ShapelyPolygon
from shapely.geometry import box as shapely_box

from ocrapp.document import Polygon


NEIGHBOUR_RULES = ("keep", "split", "half")


@dataclass(frozen=True)
class RectifyConfig:
    vertical_ratio: float = 1.5  # box height / width (and / text height) above which a word is vertical text
    min_side: float = 2.0  # polygons thinner than this (pixels) are degenerate
    min_area: float = 4.0  # square pixels
    iou_threshold: float = 0.5  # duplicate suppression
    max_side: int = 4096  # crops are scaled down to at most this side (guards memory on absurd boxes)
    # Margin added on every side of a word, as a fraction of its height: the recognizer was trained on crops with
    # some background around the glyphs. 0.2 read the most words on held-out pages of the training page cache
    # (benchmarks/crop_padding.py: 0.0 -> 0.2 about doubled exact accuracy with the session-2 models).
    pad: float = 0.2
    # Towards a word on the same line: "half" keeps the margin within half the gap and stops the crop at the
    # middle of an overlap of the two boxes (a neighbour's edge was read as a letter: "Thank you" -> "Thank cyou"),
    # "split" only the latter, "keep" pads regardless. Exact accuracy on 16 + 16 held-out pages of the training
    # cache (benchmarks/crop_padding.py, pad 0.2): real PDFs keep 0.7721 / split 0.7701 / half 0.7718; synthetic
    # receipts, forms, invoices 0.7633 / 0.7686 / 0.7731.
    neighbours: str = "half"


def convex_signed_area(points: Sequence[tuple[float, float]]) -> float | None:
    """Shoelace area of a quadrilateral (positive: clockwise on screen, y down) when it is strictly convex, hence a
    valid polygon; None otherwise (concave, self-intersecting, degenerate, not 4 points). A cheap test that spares
    shapely the usual case of a detector's rectangle."""
    if len(points) != 4:
        return None
    turns = []
    for k in range(4):
        (ax, ay), (bx, by), (cx, cy) = points[k], points[(k + 1) % 4], points[(k + 2) % 4]
        turns.append((bx - ax) * (cy - by) - (by - ay) * (cx - bx))
    if not (all(t > 0 for t in turns) or all(t < 0 for t in turns)):
        return None
    return 0.5 * sum(points[k][0] * points[(k + 1) % 4][1] - points[(k + 1) % 4][0] * points[k][1] for k in range(4))


def to_quad(polygon: Polygon) -> np.ndarray:
    """A 4x2 float32 array TL, TR, BR, BL. Polygons with more points (curved text) or a self-intersecting
    order are replaced by their minimum rotated rectangle, ordered with the long side horizontal."""
    pts = np.asarray(polygon.points, dtype=np.float32)
    signed_area = convex_signed_area(polygon.points)
    if signed_area is None and len(pts) == 4 and ShapelyPolygon(pts).is_valid:  # a valid concave quad
        x, y = pts[:, 0], pts[:, 1]
        signed_area = float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
    if signed_area is not None:
        # clockwise on screen (y down) is a positive shoelace area; mirror a counter-clockwise order
        return pts if signed_area >= 0 else pts[[0, 3, 2, 1]]
    rect = cv2.boxPoints(cv2.minAreaRect(pts.reshape(-1, 1, 2)))
    return order_rect_points(rect)


def order_rect_points(rect: np.ndarray) -> np.ndarray:
    """Order 4 rectangle corners as TL, TR, BR, BL for text read left to right along the long side."""
    rect = np.asarray(rect, dtype=np.float32)
    center = rect.mean(axis=0)
    angles = np.arctan2(rect[:, 1] - center[1], rect[:, 0] - center[0])
    rect = rect[np.argsort(angles)]  # clockwise in image coordinates (y down), starting anywhere
    # start at the corner so that the first side (TL->TR) is the longer one and points rightwards
    best = None
    for start in range(4):
        r = np.roll(rect, -start, axis=0)
        top = r[1] - r[0]
        side = r[3] - r[0]
        score = (np.hypot(*top) >= np.hypot(*side) - 1e-3, top[0])
        if best is None or score > best[0]:
            best = (score, r)
    return best[1]


def quad_size(quad: np.ndarray) -> tuple[float, float]:
    """(width, height) of the upright word: the longer of each pair of opposite sides."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad.tolist()
    width = max(math.hypot(x1 - x0, y1 - y0), math.hypot(x2 - x3, y2 - y3))
    height = max(math.hypot(x3 - x0, y3 - y0), math.hypot(x2 - x1, y2 - y1))
    return width, height


def is_valid_polygon(
    polygon: Polygon, config: RectifyConfig = RectifyConfig(), page_size: tuple[int, int] | None = None
) -> bool:
    """Non-degenerate (area, thickness) and, given ``page_size`` (width, height), touching the page."""
    signed_area = convex_signed_area(polygon.points)
    if signed_area is not None and (page_size is None or all(
            0 <= x <= page_size[0] and 0 <= y <= page_size[1] for x, y in polygon.points)):
        # a convex quad on the page needs no shapely; its thinner side does not depend on the corners' order
        thinner = min(quad_size(np.asarray(polygon.points, dtype=np.float64)))
        return abs(signed_area) >= config.min_area and thinner >= config.min_side
    shape = shapely.make_valid(ShapelyPolygon(polygon.points))
    if shape.is_empty or shape.area < config.min_area:
        return False
    width, height = quad_size(to_quad(polygon))
    if min(width, height) < config.min_side:
        return False
    if page_size is not None:
        return shape.intersection(shapely_box(0, 0, page_size[0], page_size[1])).area >= config.min_area
    return True


def suppress_duplicates(
    polygons: Sequence[Polygon], scores: Sequence[float] | None = None, iou_threshold: float = 0.5
) -> list[int]:
    """Indices (ascending) of the polygons kept after greedy IoU suppression; the higher score (or,
    without scores, the larger area) wins."""
    if not polygons:
        return []
    if all(len(p.points) == 4 for p in polygons):  # one vectorised call builds them all
        shapes = shapely.make_valid(shapely.polygons(np.asarray([p.points for p in polygons], dtype=np.float64)))
    else:
        shapes = np.array([shapely.make_valid(ShapelyPolygon(p.points)) for p in polygons], dtype=object)
    areas = shapely.area(shapes)
    priority = np.asarray(scores, dtype=float) if scores is not None else areas
    tree = shapely.STRtree(shapes)
    suppressed = np.zeros(len(shapes), dtype=bool)
    kept: list[int] = []
    for i in np.argsort(-priority, kind="stable"):
        if suppressed[i]:
            continue
        kept.append(int(i))
        for j in tree.query(shapes[i]):
            if j == i or suppressed[j]:
                continue
            inter = shapes[i].intersection(shapes[j]).area
            union = areas[i] + areas[j] - inter
            if union > 0 and inter / union >= iou_threshold:
                suppressed[j] = True
    return sorted(kept)


def select_polygons(
    polygons: Sequence[Polygon],
    page_size: tuple[int, int] | None = None,
    scores: Sequence[float] | None = None,
    config: RectifyConfig = RectifyConfig(),
) -> list[int]:
    """Indices of the polygons worth recognizing: valid, on the page, not duplicates."""
    valid = [i for i, p in enumerate(polygons) if is_valid_polygon(p, config, page_size)]
    sub_scores = [scores[i] for i in valid] if scores is not None else None
    kept = suppress_duplicates([polygons[i] for i in valid], sub_scores, config.iou_threshold)
    return [valid[k] for k in kept]


def _reference_height(quads: Sequence[np.ndarray]) -> float:
    """Typical text height on the page: the median height of the words wider than tall, or, if there
    are none, the median of each word's thinner side."""
    sizes = [quad_size(q) for q in quads]
    horizontal = [h for w, h in sizes if w >= h]
    if horizontal:
        return float(np.median(horizontal))
    return float(np.median([min(s) for s in sizes])) if sizes else 0.0


def rectify_word(
    image: np.ndarray, polygon: Polygon, config: RectifyConfig = RectifyConfig(), text_height: float | None = None
) -> np.ndarray:
    """One upright crop (same dtype/channels as ``image``), at least 1x1."""
    quad = to_quad(polygon)
    height = text_height if text_height is not None else min(quad_size(quad))
    return _warp_padded(image, pad_quad(quad, config.pad), is_vertical(quad, height, config), config)


def pad_quad(quad: np.ndarray, fraction: float, left: float | None = None, right: float | None = None) -> np.ndarray:
    """Grow a TL, TR, BR, BL quad outward by ``fraction`` of its height on every side, along its own axes;
    ``left`` / ``right`` (pixels, may be negative) replace that margin at the start / end of the word."""
    if fraction == 0 and left is None and right is None:
        return quad
    tl, tr, br, bl = quad.astype(np.float64)
    _, height = quad_size(quad)
    along = (tr - tl) + (br - bl)
    down = (bl - tl) + (br - tr)
    along /= max(np.hypot(*along), 1e-6)
    down /= max(np.hypot(*down), 1e-6)
    d = fraction * height
    dl = d if left is None else left
    dr = d if right is None else right
    grown = [tl - dl * along - d * down, tr + dr * along - d * down, br + dr * along + d * down,
             bl - dl * along + d * down]
    return np.asarray(grown, dtype=np.float32)


def _margin(gap: float, reach: float, half_gap: bool) -> float:
    """The margin towards a neighbour ``gap`` pixels away (negative: the boxes overlap): the overlap is split in
    the middle, a gap is left alone (or, with ``half_gap``, shared); never more than ``reach`` either way (a box
    inside another is the duplicate suppression's job)."""
    if gap >= 0 and not half_gap:
        return reach
    return float(np.clip(gap / 2, -reach, reach))


def side_margins(quads: Sequence[np.ndarray], fraction: float, half_gap: bool = False,
                 max_tilt: float = 0.1) -> list[tuple[float | None, float | None]]:
    """Per quad, the (left, right) margin in pixels: ``fraction`` of its height, except towards a word on the same
    line whose box overlaps it, where the crop stops at the middle of the overlap (``half_gap``: also at most half
    of a gap). None: no neighbour in reach, or a quad tilted more than ``max_tilt`` (rise over run), whose
    neighbours are not side by side on the page's axes."""
    if not quads:
        return []
    q = np.asarray(quads, dtype=np.float64)
    x0, x1 = q[:, :, 0].min(1), q[:, :, 0].max(1)
    y0, y1 = q[:, :, 1].min(1), q[:, :, 1].max(1)
    top = q[:, 1] - q[:, 0]
    level = np.abs(top[:, 1]) <= max_tilt * np.maximum(np.abs(top[:, 0]), 1e-6)
    height = np.minimum(y1 - y0, np.array([quad_size(x)[1] for x in q]))
    reach = fraction * height
    centre = (x0 + x1) / 2
    margins: list[tuple[float | None, float | None]] = []
    for i in range(len(q)):  # one row at a time: memory stays linear in the number of words
        if not level[i]:
            margins.append((None, None))
            continue
        overlap_y = np.minimum(y1, y1[i]) - np.maximum(y0, y0[i])
        same_line = (overlap_y >= 0.5 * np.minimum(height, height[i])) & level
        same_line[i] = False
        left = same_line & (centre < centre[i]) & (x1 > x0[i] - reach[i])
        right = same_line & (centre > centre[i]) & (x0 < x1[i] + reach[i])
        lm = _margin(float((x0[i] - x1[left]).min()), reach[i], half_gap) if left.any() else None
        rm = _margin(float((x0[right] - x1[i]).min()), reach[i], half_gap) if right.any() else None
        margins.append((lm, rm))
    return margins


def is_vertical(word_quad: np.ndarray, text_height: float, config: RectifyConfig) -> bool:
    """Vertical text (e.g. a spine read top to bottom): the word's own box, margins left out, is taller than wide
    and taller than the page's text by ``vertical_ratio``. (Its margins grow a lone narrow glyph's crop taller than
    the text: "2" in "2 units" was read turned, as "cu".)"""
    width, height = quad_size(word_quad)
    return height > config.vertical_ratio * width and height > config.vertical_ratio * text_height


def _warp_padded(image: np.ndarray, quad: np.ndarray, vertical: bool, config: RectifyConfig) -> np.ndarray:
    width, height = quad_size(quad)
    scale = min(1.0, config.max_side / max(width, height, 1.0))
    out_w = max(1, int(math.ceil(width * scale)))
    out_h = max(1, int(math.ceil(height * scale)))
    dst = np.array([[0, 0], [out_w, 0], [out_w, out_h], [0, out_h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    crop = cv2.warpPerspective(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if vertical:  # read top to bottom: turn it to horizontal
        crop = cv2.rotate(crop, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return crop


def crop_quads(polygons: Sequence[Polygon], config: RectifyConfig = RectifyConfig()) -> list[np.ndarray]:
    """Per polygon, the page quad (TL, TR, BR, BL) its crop is warped from: the word's quad with its margins."""
    quads = [to_quad(p) for p in polygons]
    if config.neighbours not in NEIGHBOUR_RULES:
        raise ValueError(f"neighbours must be one of {NEIGHBOUR_RULES}, got {config.neighbours!r}")
    margins = (side_margins(quads, config.pad, half_gap=config.neighbours == "half") if config.neighbours != "keep"
               else [(None, None)] * len(quads))
    return [pad_quad(q, config.pad, *m) for q, m in zip(quads, margins)]


def rectify_words(
    image: np.ndarray, polygons: Sequence[Polygon], config: RectifyConfig = RectifyConfig()
) -> list[np.ndarray]:
    """One upright crop per polygon, in order. Filter with ``select_polygons`` first: degenerate
    polygons still get a (tiny) crop here so that indices stay aligned."""
    return warp_crops(image, polygons, crop_quads(polygons, config), config)


def warp_crops(image: np.ndarray, polygons: Sequence[Polygon], quads: Sequence[np.ndarray],
               config: RectifyConfig = RectifyConfig()) -> list[np.ndarray]:
    """The crops of ``polygons`` warped from their ``crop_quads``."""
    word_quads = [to_quad(p) for p in polygons]
    text_height = _reference_height(word_quads)
    return [_warp_padded(image, q, is_vertical(w, text_height, config), config) for w, q in zip(word_quads, quads)]


def crop_spans_on_page(word: Polygon, crop_quad: np.ndarray, crop_width: int,
                       spans: Sequence[tuple[float, float]]) -> list[Polygon]:
    """The parts of ``word`` under column spans [start, end) of its crop, warped from ``crop_quad`` (see
    ``crop_quads``): each span's ends are placed on the crop quad's midline, projected on the word's own axis, and
    the word's quad is cut there across its height."""
    quad = to_quad(word).astype(np.float64)
    tl, tr, br, bl = quad
    left_mid, right_mid = (tl + bl) / 2, (tr + br) / 2
    axis = right_mid - left_mid
    length2 = max(float(axis @ axis), 1e-9)
    c_tl, c_tr, c_br, c_bl = np.asarray(crop_quad, np.float64)

    def fraction(column: float) -> float:
        t = column / max(crop_width, 1)
        on_page = ((1 - t) * c_tl + t * c_tr + (1 - t) * c_bl + t * c_br) / 2
        return float(np.clip((on_page - left_mid) @ axis / length2, 0.0, 1.0))

    parts = []
    for start, end in spans:
        a, b = fraction(start), fraction(end)
        corners = (tl + a * (tr - tl), tl + b * (tr - tl), bl + b * (br - bl), bl + a * (br - bl))
        parts.append(Polygon(tuple((float(x), float(y)) for x, y in corners)))
    return parts
