"""Shared helpers: integer boxes that nest (word inside line inside block inside page)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ocrapp.document import BBox, Page

IntBox = tuple[int, int, int, int]

SOFTWARE = "ocrapp"


def software_version() -> str:
    try:
        from importlib.metadata import version

        return version("ocrapp")
    except Exception:  # not installed (running from a checkout)
        return "0.1.0"


def word_box(box: BBox, page: Page) -> IntBox:
    """Outward-rounded box clamped to the page, at least 1 pixel wide and high."""
    x0 = min(max(math.floor(box.x0), 0), max(page.width - 1, 0))
    y0 = min(max(math.floor(box.y0), 0), max(page.height - 1, 0))
    x1 = max(min(math.ceil(box.x1), page.width), x0 + 1)
    y1 = max(min(math.ceil(box.y1), page.height), y0 + 1)
    return (x0, y0, x1, y1)


def union(boxes: list[IntBox]) -> IntBox:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


@dataclass(frozen=True)
class LaidOutWord:
    text: str
    confidence: float
    box: IntBox


@dataclass(frozen=True)
class LaidOutLine:
    box: IntBox
    words: list[LaidOutWord]


@dataclass(frozen=True)
class LaidOutBlock:
    box: IntBox
    lines: list[LaidOutLine]


def layout_boxes(page: Page) -> list[LaidOutBlock]:
    """The page's non-empty blocks/lines/words with nested integer boxes (hOCR and ALTO need them)."""
    blocks = []
    for block in page.blocks:
        lines = []
        for line in block.lines:
            words = [
                LaidOutWord(w.text, min(max(float(w.confidence), 0.0), 1.0), word_box(w.bbox, page))
                for w in line.words
                if w.text.strip()
            ]
            if words:
                lines.append(LaidOutLine(union([w.box for w in words]), words))
        if lines:
            blocks.append(LaidOutBlock(union([ln.box for ln in lines]), lines))
    return blocks
