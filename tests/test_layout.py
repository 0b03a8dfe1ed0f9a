"""Layout: skew estimate, lines, blocks and reading order on synthetic pages."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from ocrapp.document import Polygon, Word
from ocrapp.layout import LayoutConfig, analyze_layout, estimate_skew, reading_order


class PageBuilder:
    """Places words on an upright page, then rotates the page by ``skew_deg`` around its centre.
    ``straight`` gives the axis-aligned box of each rotated word, as a straight-box detector does."""

    def __init__(self, skew_deg: float = 0.0, straight: bool = False) -> None:
        self.theta = math.radians(skew_deg)
        self.straight = straight
        self.words: list[Word] = []

    def _rot(self, x: float, y: float) -> tuple[float, float]:
        cx, cy = 600.0, 800.0
        dx, dy = x - cx, y - cy
        c, s = math.cos(self.theta), math.sin(self.theta)
        return (cx + dx * c - dy * s, cy + dx * s + dy * c)

    def word(self, text: str, x: float, y: float, w: float, h: float = 28.0) -> None:
        pts = [self._rot(x, y), self._rot(x + w, y), self._rot(x + w, y + h), self._rot(x, y + h)]
        if self.straight:
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            pts = [(min(xs), min(ys)), (max(xs), min(ys)), (max(xs), max(ys)), (min(xs), max(ys))]
        self.words.append(Word(text, 0.9, Polygon(tuple(pts))))

    def line(
        self, prefix: str, x: float, y: float, n: int, word_w: float = 70.0, gap: float = 12.0, h: float = 28.0
    ) -> list[str]:
        names = [f"{prefix}w{k}" for k in range(n)]
        for k, name in enumerate(names):
            self.word(name, x + k * (word_w + gap), y, word_w, h)
        return names

    def column(
        self, prefix: str, x: float, y: float, lines: int, n: int = 4, pitch: float = 38.0, para_every: int = 0
    ) -> list[str]:
        names: list[str] = []
        for i in range(lines):
            extra = (i // para_every) * 30.0 if para_every else 0.0  # paragraph spacing
            names += self.line(f"{prefix}l{i:02d}", x, y + i * pitch + extra, n)
        return names

    def shuffled(self, seed: int = 0) -> list[Word]:
        words = list(self.words)
        np.random.default_rng(seed).shuffle(words)
        return words


def _texts(blocks) -> list[str]:
    return [w.text for b in blocks for w in b.words]


@pytest.mark.parametrize("skew", [0.0, 3.0, -3.0])
@pytest.mark.parametrize("straight", [False, True])
def test_two_columns_with_title_read_column_by_column(skew: float, straight: bool) -> None:
    page = PageBuilder(skew, straight)
    page.word("Title", 400, 60, 400, 50)
    # a narrow gutter (36 px, about 1.3 x the text height) and paragraph breaks aligned across
    # the columns: the classic trap for a plain XY-cut
    left = page.column("L", 100, 200, 14, para_every=5)
    right = page.column("R", 100 + 4 * 82 + 24, 200, 14, para_every=5)
    blocks = analyze_layout(page.shuffled())
    assert _texts(blocks) == ["Title", *left, *right]
    lines = [line for b in blocks for line in b.lines]
    assert len(lines) == 1 + 14 + 14 and all(len(line.words) in (1, 4) for line in lines)
    assert blocks[0].text == "Title"


def test_full_width_paragraph_between_column_sections() -> None:
    page = PageBuilder()
    a = page.column("A", 100, 100, 5)
    b = page.column("B", 500, 100, 5)
    wide = page.column("W", 100, 330, 2, n=9)
    c = page.column("C", 100, 450, 5)
    d = page.column("D", 500, 450, 5)
    assert _texts(analyze_layout(page.shuffled(1))) == a + b + wide + c + d


@pytest.mark.parametrize("skew", [3.0, -2.5, 0.8])
@pytest.mark.parametrize("straight", [False, True])
def test_skew_estimate(skew: float, straight: bool) -> None:
    page = PageBuilder(skew, straight)
    page.column("L", 100, 200, 10, n=6)
    page.word("noise", 300, 700, 60, 60)  # a square-ish blob must not throw it off
    assert estimate_skew(page.words) == pytest.approx(skew, abs=0.3)


def test_justified_line_is_not_split_but_gutter_is() -> None:
    page = PageBuilder()
    wide = page.line("J", 100, 100, 6, gap=30.0)  # every gap is wide: justified text
    cols = page.line("K", 100, 200, 3) + page.line("M", 100 + 3 * 82 + 40, 200, 3)  # one 52 px gutter gap
    blocks = analyze_layout(page.words)
    lines = sorted((line for b in blocks for line in b.lines), key=lambda ln: (ln.bbox.y0, ln.bbox.x0))
    assert [[w.text for w in ln.words] for ln in lines] == [wide, cols[:3], cols[3:]]


def test_title_and_body_are_separate_blocks_lines_top_to_bottom() -> None:
    page = PageBuilder()
    page.word("Heading", 100, 40, 300, 60)
    body = page.column("B", 100, 120, 3)
    blocks = analyze_layout(page.shuffled(2))
    assert [b.text for b in blocks][0] == "Heading"
    assert len(blocks) == 2 and [w.text for w in blocks[1].words] == body
    assert blocks[1].text.splitlines()[0] == " ".join(body[:4])


def test_paragraphs_become_blocks_and_double_spacing_does_not_split() -> None:
    page = PageBuilder()
    first = page.column("P", 100, 100, 3)  # single spaced: line gap 10 px
    second = page.column("Q", 100, 100 + 3 * 38 + 30, 3)  # after a 40 px paragraph gap
    blocks = analyze_layout(page.shuffled(4))
    assert [[w.text for w in b.words] for b in blocks] == [first, second]

    loose = PageBuilder()
    body = loose.column("D", 100, 100, 6, pitch=80)  # double spaced: every gap 52 px
    blocks = analyze_layout(loose.shuffled(5))
    assert len(blocks) == 1 and [w.text for w in blocks[0].words] == body


def test_reading_order_of_regions() -> None:
    boxes = np.array([[0, 100, 90, 200], [100, 0, 200, 50], [0, 0, 90, 50], [100, 100, 200, 200]], dtype=float)
    assert reading_order(boxes) == [2, 0, 1, 3]


def test_empty_and_single_word() -> None:
    assert analyze_layout([]) == []
    word = Word("one", 0.5, Polygon(((0, 0), (10, 0), (10, 5), (0, 5))))
    blocks = analyze_layout([word])
    assert len(blocks) == 1 and blocks[0].lines[0].words == [word]


def test_large_page_is_fast() -> None:
    page = PageBuilder(2.0)
    for col in range(3):
        page.column(f"C{col}", 50 + col * 400, 50, 60, n=4, pitch=36)
    assert len(page.words) == 720
    start = time.perf_counter()
    blocks = analyze_layout(page.shuffled(3), LayoutConfig())
    elapsed = time.perf_counter() - start
    assert sum(1 for _ in (w for b in blocks for w in b.words)) == 720
    assert elapsed < 3.0, elapsed
