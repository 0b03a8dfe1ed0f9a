"""The typed document model that every pipeline stage speaks.

Page -> Block -> Line -> Word. Every geometry is in page pixels (origin top-left, x right, y down)
of the page image the OCR ran on; ``Page.dpi`` relates pixels to physical size where known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

Point = tuple[float, float]


@dataclass(frozen=True)
class BBox:
    """Axis-aligned box in page pixels: (x0, y0) top-left, (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> Point:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def union(self, other: "BBox") -> "BBox":
        return BBox(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))

    def as_ints(self) -> tuple[int, int, int, int]:
        return (int(round(self.x0)), int(round(self.y0)), int(round(self.x1)), int(round(self.y1)))

    @staticmethod
    def enclosing(boxes: Iterable["BBox"]) -> "BBox":
        boxes = list(boxes)
        if not boxes:
            raise ValueError("cannot enclose an empty set of boxes")
        out = boxes[0]
        for box in boxes[1:]:
            out = out.union(box)
        return out


@dataclass(frozen=True)
class Polygon:
    """A closed polygon in page pixels. Word polygons are quadrilaterals in reading order:
    top-left, top-right, bottom-right, bottom-left (of the upright word)."""

    points: tuple[Point, ...]

    def __post_init__(self) -> None:
        if len(self.points) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(self.points)}")

    @staticmethod
    def from_bbox(box: BBox) -> "Polygon":
        return Polygon(((box.x0, box.y0), (box.x1, box.y0), (box.x1, box.y1), (box.x0, box.y1)))

    @property
    def bbox(self) -> BBox:
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return BBox(min(xs), min(ys), max(xs), max(ys))


@dataclass
class Word:
    text: str
    confidence: float
    polygon: Polygon
    detection_score: float = 1.0

    @property
    def bbox(self) -> BBox:
        return self.polygon.bbox


@dataclass
class Line:
    words: list[Word]

    @property
    def bbox(self) -> BBox:
        return BBox.enclosing(w.bbox for w in self.words)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def confidence(self) -> float:
        return min((w.confidence for w in self.words), default=0.0)


@dataclass
class Block:
    lines: list[Line]

    @property
    def bbox(self) -> BBox:
        return BBox.enclosing(line.bbox for line in self.lines)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def words(self) -> Iterator[Word]:
        for line in self.lines:
            yield from line.words


@dataclass
class Page:
    """One page. ``index`` is 0-based within its source; width/height are the pixel size of the image."""

    index: int
    width: int
    height: int
    blocks: list[Block] = field(default_factory=list)
    dpi: float | None = None
    source: str | None = None
    # Encoded page image (JPEG/PNG bytes), kept only when an exporter needs it (searchable PDF).
    image_data: bytes | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks)

    @property
    def lines(self) -> Iterator[Line]:
        for block in self.blocks:
            yield from block.lines

    @property
    def words(self) -> Iterator[Word]:
        for block in self.blocks:
            yield from block.words


@dataclass
class Document:
    pages: list[Page] = field(default_factory=list)
    source: str | None = None

    @property
    def text(self) -> str:
        return "\f".join(p.text for p in self.pages)

    @property
    def words(self) -> Iterator[Word]:
        for page in self.pages:
            yield from page.words

    def export(self, fmt: str) -> str | bytes:
        """Render the document as 'text', 'hocr', 'alto', 'json' (str) or 'pdf' (bytes; needs page images,
        see ``ocrapp.export.pdf``)."""
        from ocrapp.export import export_document

        return export_document(self, fmt)


def words_to_text(words: Sequence[Word]) -> str:
    return " ".join(w.text for w in words)
