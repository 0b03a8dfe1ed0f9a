"""A box read as several words is reported as one word box each (recognition.word_boxes, pipeline.split_words)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from shapely.geometry import Polygon as ShapelyPolygon

from ocrapp.document import BBox, Polygon, Word
from ocrapp.pipeline import ReadBox, split_words
from ocrapp.recognition.word_boxes import WordSpanConfig, word_spans
from ocrapp.rectify import RectifyConfig, crop_quads, crop_spans_on_page, to_quad, warp_crops

SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


def _iou(a: Polygon, b: Polygon) -> float:
    pa, pb = ShapelyPolygon(a.points), ShapelyPolygon(b.points)
    return pa.intersection(pb).area / pa.union(pb).area


def _ink_blocks(height: int, blocks: list[tuple[int, int]], width: int) -> np.ndarray:
    crop = np.full((height, width, 3), 250, np.uint8)
    for start, end in blocks:
        crop[height // 4: 3 * height // 4, start:end] = 20
    return crop


def _letters(start: int, count: int, width: int = 6, gap: int = 1) -> list[tuple[int, int]]:
    return [(start + i * (width + gap), start + i * (width + gap) + width) for i in range(count)]


def test_each_space_is_placed_at_one_of_the_widest_gaps() -> None:
    # "of the capital": letters 6 px wide, 1 px apart; word gaps of 6 px
    blocks = _letters(4, 2) + _letters(23, 3) + _letters(50, 7)
    crop = _ink_blocks(24, blocks, 104)
    spans = word_spans(crop, "of the capital")
    assert [s.text for s in spans] == ["of", "the", "capital"]
    assert [(s.start, s.end) for s in spans] == [(0, 17), (23, 43), (50, 104)]


@pytest.mark.parametrize("text", ["reportlab", "/opt/local"])
def test_a_space_read_between_evenly_spaced_letters_is_not_placed(text: str) -> None:
    """A monospaced path: the recognizer reads a space into it, but no gap stands out from the letter gaps."""
    font = ImageFont.truetype(MONO, 28)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (right + 16, bottom + 16), "white")
    ImageDraw.Draw(image).text((8, 8), text, font=font, fill="black")
    read = text[:4] + " " + text[4:]
    assert word_spans(np.asarray(image), read) is None


def test_a_cut_that_leaves_words_of_unlike_widths_is_refused() -> None:
    # one 6 px gap, after the first letter of seven; the reading puts its space after the sixth
    blocks = _letters(4, 1) + _letters(16, 6)
    crop = _ink_blocks(24, blocks, 64)
    assert word_spans(crop, "abcdef g") is None
    assert [s.text for s in word_spans(crop, "a bcdefg")] == ["a", "bcdefg"]


def test_one_word_or_no_gap_gives_nothing() -> None:
    crop = _ink_blocks(24, _letters(4, 8), 64)
    assert word_spans(crop, "abcdefgh") is None
    assert word_spans(crop, "abcd efgh") is None  # every gap is 1 px: below min_gap of the text height


def test_spans_of_a_tilted_crop_map_back_onto_the_words_quad() -> None:
    angle = np.deg2rad(8)
    along, across = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    origin = np.array([100.0, 200.0])
    corners = [origin, origin + 200 * along, origin + 200 * along + 40 * across, origin + 40 * across]
    word = Polygon(tuple((float(x), float(y)) for x, y in corners))
    (crop_quad,) = crop_quads([word], RectifyConfig(pad=0.2))
    crop_width = 216  # 200 + two margins of 0.2 x 40 px (the crop's scale does not matter, only fractions)
    parts = crop_spans_on_page(word, crop_quad, crop_width, [(0, 80), (100, 216)])
    quad = to_quad(word)
    first, second = (to_quad(p) for p in parts)
    np.testing.assert_allclose(first[0], quad[0], atol=1e-3)  # the first word starts where the box starts
    np.testing.assert_allclose(second[1], quad[1], atol=1e-3)  # the last ends where it ends
    # column 80 of 216 lies 80 - 8 = 72 px along the word, column 100 at 92 px
    np.testing.assert_allclose(first[1], quad[0] + 72 * along, atol=1e-3)
    np.testing.assert_allclose(second[3], quad[3] + 92 * along, atol=1e-3)


def test_a_box_read_as_two_words_is_reported_as_two_word_boxes() -> None:
    """A rendered line whose two words the detector merged: each reported box covers its own word."""
    font = ImageFont.truetype(SANS, 32)
    image = Image.new("RGB", (600, 120), "white")
    draw = ImageDraw.Draw(image)
    draw.text((40, 40), "established in", font=font, fill="black")
    truth = [BBox(*draw.textbbox((40, 40), "established", font=font)),
             BBox(*draw.textbbox((40 + font.getlength("established "), 40), "in", font=font))]
    merged = Polygon.from_bbox(BBox.enclosing(truth))
    (crop_quad,) = crop_quads([merged])
    (crop,) = warp_crops(np.asarray(image), [merged], [crop_quad])
    box = ReadBox(Word("established in", 0.8, merged, 0.9), crop, crop_quad)
    words = split_words(box, WordSpanConfig())
    assert [w.text for w in words] == ["established", "in"]
    assert all(w.confidence == 0.8 and w.detection_score == 0.9 for w in words)
    ious = [_iou(w.polygon, Polygon.from_bbox(t)) for w, t in zip(words, truth)]
    assert min(ious) > 0.85, ious
    assert split_words(box, None) == [box.word]  # the rule off: one word, as read
