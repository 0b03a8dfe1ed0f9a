"""Word rectification: rotated / perspective / vertical words come out upright; polygon hygiene."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocrapp.document import BBox, Polygon
from ocrapp.rectify import (
    RectifyConfig,
    is_valid_polygon,
    pad_quad,
    quad_size,
    rectify_word,
    rectify_words,
    select_polygons,
    suppress_duplicates,
    to_quad,
)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
NO_PAD = RectifyConfig(pad=0.0)  # geometry checks compare against the exact box


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default(size)


def _page_with_word(text: str = "Rectify", size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A white 600x600 page with ``text`` in the middle; returns (page, 4x2 box corners TL,TR,BR,BL)."""
    img = Image.new("RGB", (600, 600), "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = draw.textbbox((150, 270), text, font=_font(size))
    draw.text((150, 270), text, font=_font(size), fill="black")
    x0, y0, x1, y1 = x0 - 4, y0 - 4, x1 + 4, y1 + 4
    return np.asarray(img), np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _ink(img: np.ndarray) -> np.ndarray:
    gray = img.mean(axis=2) if img.ndim == 3 else img
    return 255.0 - gray


def _similarity(crop: np.ndarray, reference: np.ndarray) -> float:
    """Normalized correlation of the ink of ``crop`` (resized) and ``reference``."""
    resized = cv2.resize(crop, (reference.shape[1], reference.shape[0]), interpolation=cv2.INTER_AREA)
    a, b = _ink(resized).ravel(), _ink(reference).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def _polygon(points: np.ndarray) -> Polygon:
    return Polygon(tuple((float(x), float(y)) for x, y in points))


def _upright(page: np.ndarray, corners: np.ndarray) -> np.ndarray:
    x0, y0 = corners[0].astype(int)
    x1, y1 = corners[2].astype(int)
    return page[y0:y1, x0:x1]


@pytest.mark.parametrize("angle", [-35.0, -8.0, 12.0, 30.0, 170.0])
def test_rotated_word_comes_out_upright(angle: float) -> None:
    page, corners = _page_with_word()
    reference = _upright(page, corners)
    matrix = cv2.getRotationMatrix2D((300, 300), angle, 1.0)
    rotated = cv2.warpAffine(page, matrix, (600, 600), borderValue=(255, 255, 255))
    moved = cv2.transform(corners[None].astype(np.float32), matrix)[0]
    crop = rectify_words(rotated, [_polygon(moved)], NO_PAD)[0]
    assert abs(crop.shape[1] - reference.shape[1]) <= 2 and abs(crop.shape[0] - reference.shape[0]) <= 2
    upright = _similarity(crop, reference)
    flipped = _similarity(crop[::-1, ::-1], reference)
    assert upright > 0.85, upright
    assert upright > flipped + 0.3
    # doing nothing (the axis-aligned box of the rotated word) is clearly worse
    xs, ys = moved[:, 0], moved[:, 1]
    naive = rotated[int(ys.min()) : int(ys.max()), int(xs.min()) : int(xs.max())]
    assert _similarity(naive, reference) < upright - 0.2


def test_perspective_word_comes_out_upright() -> None:
    page, corners = _page_with_word()
    reference = _upright(page, corners)
    src = np.float32([[0, 0], [600, 0], [600, 600], [0, 600]])
    dst = np.float32([[40, 10], [560, 60], [590, 520], [0, 590]])
    homography = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(page, homography, (600, 600), borderValue=(255, 255, 255))
    moved = cv2.perspectiveTransform(corners[None].astype(np.float32), homography)[0]
    crop = rectify_word(warped, _polygon(moved), NO_PAD)
    assert _similarity(crop, reference) > 0.85


def test_vertical_word_is_turned_horizontal() -> None:
    page, corners = _page_with_word("VERTICAL")
    reference = _upright(page, corners)
    spine = cv2.rotate(reference, cv2.ROTATE_90_CLOCKWISE)  # reads top to bottom, as on a book spine
    canvas = np.full((600, 600, 3), 255, np.uint8)
    h, w = spine.shape[:2]
    canvas[50 : 50 + h, 100 : 100 + w] = spine
    tall_box = Polygon.from_bbox(BBox(100, 50, 100 + w, 50 + h))
    letter_box = Polygon.from_bbox(BBox(300, 50, 312, 50 + w))  # a lone narrow letter as tall as the text
    horizontal = [Polygon.from_bbox(BBox(350, 50 + 60 * i, 350 + 3 * w, 50 + 60 * i + w)) for i in range(3)]
    crops = rectify_words(canvas, [tall_box, letter_box, *horizontal], NO_PAD)
    assert crops[0].shape[1] > crops[0].shape[0]
    assert _similarity(crops[0], reference) > 0.9
    assert crops[1].shape[0] > crops[1].shape[1]  # not rotated: it is as tall as the text, no taller


def test_a_lone_digit_keeps_its_orientation_with_the_default_margins() -> None:
    """A one-glyph box a little taller than the line's words (a photo's "2" in "2 units") is not vertical text,
    although its margins make the crop half again as tall as the words' boxes."""
    page = np.full((200, 400, 3), 255, np.uint8)
    words = [Polygon.from_bbox(BBox(20 + 70 * i, 50, 80 + 70 * i, 70)) for i in range(4)]  # 20 px high
    digit = Polygon.from_bbox(BBox(320, 46, 333, 74))  # 13 x 28 px: 1.4 times the words' height
    spine = Polygon.from_bbox(BBox(350, 20, 370, 120))  # 5 times the words' height: read top to bottom
    crops = rectify_words(page, [*words, digit, spine], RectifyConfig())
    assert crops[4].shape[0] > crops[4].shape[1]  # upright, as it stands
    assert crops[5].shape[1] > crops[5].shape[0]  # turned


def test_crop_size_from_side_lengths() -> None:
    quad = to_quad(Polygon(((10, 10), (110, 10), (110, 40), (10, 40))))
    assert quad_size(quad) == (100.0, 30.0)
    crop = rectify_word(np.zeros((100, 200, 3), np.uint8), Polygon(((10, 10), (110, 10), (110, 40), (10, 40))), NO_PAD)
    assert crop.shape == (30, 100, 3)


def test_default_crop_keeps_a_margin_around_the_word() -> None:
    page = np.full((100, 200, 3), 255, np.uint8)
    page[10:40, 10:110] = 0  # the word's box, all ink
    box = Polygon(((10, 10), (110, 10), (110, 40), (10, 40)))
    crop = rectify_word(page, box, RectifyConfig(pad=0.2))
    assert crop.shape == (42, 112, 3)  # 0.2 x height (6 px) on every side
    assert crop[:5].min() == 255 and crop[-5:].min() == 255 and crop[:, :5].min() == 255 and crop[:, -5:].min() == 255
    assert crop[7:35, 7:105].max() == 0
    # rotated boxes grow along their own axes
    tilted = pad_quad(to_quad(Polygon(((0, 0), (100, 100), (80, 120), (-20, 20)))), 0.2)
    width, height = quad_size(tilted)
    assert abs(width - (np.hypot(100, 100) + 2 * 0.2 * np.hypot(20, 20))) < 1e-3
    assert abs(height - 1.4 * np.hypot(20, 20)) < 1e-3


def test_margin_stops_halfway_to_the_neighbouring_word() -> None:
    page = np.full((100, 300, 3), 255, np.uint8)
    page[10:40, 10:110] = 0  # "Thank", its box 100 x 30
    page[10:40, 112:200] = 0  # "you", 2 px to the right: a 0.2 margin (6 px) would take 4 columns of "Thank"
    first = Polygon(((10, 10), (110, 10), (110, 40), (10, 40)))
    second = Polygon(((112, 10), (200, 10), (200, 40), (112, 40)))
    kept = rectify_words(page, [first, second], RectifyConfig(pad=0.2, neighbours="keep"))[1]
    assert kept[8:35, :4].max() == 0 and kept[8:35, 4:6].min() == 255  # 4 columns of "Thank", then the gap
    half = rectify_words(page, [first, second], RectifyConfig(pad=0.2, neighbours="half"))[1]
    assert half.shape[1] == 88 + 1 + 6  # 1 px (half the gap) on the left, the full 6 px on the free right side
    assert half[8:35, 0].min() == 255 and half[8:35, 1:].min() == 0  # no column of "Thank" in the crop
    # overlapping boxes: each crop stops at the middle of the overlap
    third = Polygon(((104, 10), (200, 10), (200, 40), (104, 40)))
    split = rectify_words(page, [first, third], RectifyConfig(pad=0.2, neighbours="split"))
    assert split[0].shape[1] == 6 + 100 - 3 and split[1].shape[1] == 96 - 3 + 6
    # a word alone on its line keeps its whole margin
    lone = rectify_words(page, [first], RectifyConfig(pad=0.2, neighbours="half"))[0]
    assert lone.shape == (42, 112, 3)
    with pytest.raises(ValueError, match="neighbours"):
        rectify_words(page, [first], RectifyConfig(neighbours="shrink"))


def test_point_order_is_normalized() -> None:
    clockwise = ((10, 10), (110, 10), (110, 40), (10, 40))
    counter = ((10, 10), (10, 40), (110, 40), (110, 10))
    assert np.allclose(to_quad(Polygon(counter)), np.array(clockwise))
    # a many-point (curved detector) polygon becomes its rotated rectangle, long side on top, left to right
    many = Polygon(((10, 10), (60, 8), (110, 10), (110, 40), (60, 42), (10, 40)))
    quad = to_quad(many)
    width, height = quad_size(quad)
    assert width > 95 and 28 < height < 40
    assert quad[0][0] < quad[1][0] and quad[0][1] < quad[3][1]


def test_select_polygons_drops_degenerate_offpage_and_duplicates() -> None:
    good = Polygon.from_bbox(BBox(10, 10, 100, 40))
    near_duplicate = Polygon.from_bbox(BBox(12, 11, 101, 41))
    line = Polygon(((10, 50), (100, 50), (200, 50)))  # zero area
    bowtie = Polygon(((200, 10), (300, 40), (300, 10), (200, 40)))  # self-intersecting but real
    sliver = Polygon.from_bbox(BBox(10, 60, 200, 61))
    off_page = Polygon.from_bbox(BBox(1000, 1000, 1100, 1030))
    other = Polygon.from_bbox(BBox(120, 10, 180, 40))
    polygons = [good, near_duplicate, line, bowtie, sliver, off_page, other]
    scores = [0.6, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5]
    kept = select_polygons(polygons, page_size=(500, 500), scores=scores)
    assert kept == [1, 3, 6]
    assert not is_valid_polygon(sliver) and is_valid_polygon(good, RectifyConfig(), (500, 500))
    crops = rectify_words(np.zeros((500, 500, 3), np.uint8), [polygons[i] for i in kept])
    assert len(crops) == 3 and all(c.size > 0 for c in crops)


def test_suppress_duplicates_keeps_distinct_overlaps() -> None:
    a = Polygon.from_bbox(BBox(0, 0, 100, 30))
    b = Polygon.from_bbox(BBox(60, 0, 160, 30))  # IoU 0.25: a neighbour, not a duplicate
    assert suppress_duplicates([a, b]) == [0, 1]
    assert suppress_duplicates([a, b], iou_threshold=0.2) == [1] or suppress_duplicates([a, b], iou_threshold=0.2) == [
        0
    ]
    assert suppress_duplicates([]) == []


def test_shortcut_for_convex_quads_agrees_with_shapely() -> None:
    """Convex quads on the page skip shapely in is_valid_polygon and to_quad; the answer must be shapely's for
    convex, concave, self-intersecting, degenerate and partly off-page quads alike."""
    import shapely
    from shapely.geometry import Polygon as ShapelyPolygon
    from shapely.geometry import box

    from ocrapp.rectify import convex_signed_area

    def shapely_valid(points, page, cfg=RectifyConfig()):
        shape = shapely.make_valid(ShapelyPolygon(points))
        if shape.is_empty or shape.area < cfg.min_area:
            return False
        width, height = quad_size(to_quad(Polygon(points)))
        return min(width, height) >= cfg.min_side and shape.intersection(box(0, 0, *page)).area >= cfg.min_area

    rng = np.random.default_rng(0)
    kinds = {"convex": 0, "other": 0}
    for _ in range(400):
        points = tuple((float(x), float(y)) for x, y in rng.uniform(-20, 120, (4, 2)).round(1))
        if rng.random() < 0.2:
            points = (points[0], points[0], points[2], points[3])  # degenerate
        kinds["convex" if convex_signed_area(points) is not None else "other"] += 1
        assert is_valid_polygon(Polygon(points), page_size=(100, 100)) == shapely_valid(points, (100, 100)), points
        if convex_signed_area(points) is not None:
            assert ShapelyPolygon(points).is_valid
            assert abs(abs(convex_signed_area(points)) - ShapelyPolygon(points).area) < 1e-6
    assert min(kinds.values()) > 50
