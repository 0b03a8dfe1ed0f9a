"""Searchable PDF, as OCRmyPDF's sandwich renderer builds it: each page is the page image drawn full-size
plus an invisible text layer (text render mode 3) with every word placed on its box -- baseline and font
size from the box height, horizontal scaling (Tz) to the box width, rotated with the word -- so that text
extraction finds every word and a viewer highlights it in place.

Pages can be added one by one (``SearchablePdfWriter``) so the pipeline never holds more than one page
image uncompressed; fpdf2 keeps only the compressed images until ``close()`` writes the file atomically.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
from fpdf import FPDF
from fpdf.enums import TextMode
from PIL import Image

from ocrapp.document import Document, Page, Word
from ocrapp.export.common import software_version
from ocrapp.io.atomic import atomic_write

A4_LONG_SIDE_IN = 11.69
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
    "C:/Windows/Fonts/arial.ttf",
)


@dataclass(frozen=True)
class PdfOptions:
    # dpi for pages that do not know theirs; None: fit the longer side to A4 (at least 72 dpi)
    default_dpi: float | None = None
    jpeg_quality: int = 85
    # TrueType font for the invisible text (Unicode); None: DejaVuSans if installed, else Helvetica (Latin-1 only)
    font_path: str | None = None
    core_font: bool = False  # force Helvetica: smaller files, but non-Latin-1 characters become "?"


def page_dpi(page: Page, options: PdfOptions = PdfOptions()) -> float:
    """The dpi that sizes the PDF page: the page's own, else the configured default, else A4-fit."""
    if page.dpi and page.dpi > 0:
        return float(page.dpi)
    if options.default_dpi:
        return float(options.default_dpi)
    return max(72.0, max(page.width, page.height) / A4_LONG_SIDE_IN)


def encode_page_image(image: np.ndarray, quality: int = 85) -> bytes:
    """RGB (or gray) uint8 array -> JPEG bytes, e.g. for ``Page.image_data``."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).convert("RGB").save(
        buffer, format="JPEG", quality=quality, optimize=True
    )
    return buffer.getvalue()


def _find_font(options: PdfOptions) -> str | None:
    if options.font_path:
        if not Path(options.font_path).is_file():
            raise ValueError(f"font file not found: {options.font_path}")
        return options.font_path
    return next((p for p in _FONT_CANDIDATES if Path(p).is_file()), None)


class SearchablePdfWriter:
    """``with SearchablePdfWriter(path) as w: w.add_page(page, image)`` -- the file appears (atomically)
    only when the block ends without an exception. Without ``path`` use ``to_bytes()``."""

    def __init__(self, path: str | Path | None = None, options: PdfOptions = PdfOptions()) -> None:
        self.path = Path(path) if path is not None else None
        self.options = options
        self._pdf = FPDF(unit="pt")
        self._pdf.set_auto_page_break(False)
        self._pdf.set_margins(0, 0, 0)
        self._pdf.set_creator(f"ocrapp {software_version()}")
        self._pdf.set_producer(f"ocrapp {software_version()} (fpdf2)")
        font = None if options.core_font else _find_font(options)
        if font:
            self._pdf.add_font("ocrtext", fname=font)
            self._family, self._unicode = "ocrtext", True
        else:
            self._family, self._unicode = "helvetica", False
        self._metrics: tuple[float, float] | None = None
        self.page_count = 0
        self._closed = False

    def _font_metrics(self) -> tuple[float, float]:
        """(ascent, descent) in em; descent is negative."""
        if self._metrics is None:
            desc = getattr(self._pdf.current_font, "desc", None)
            if desc is not None and desc.ascent and desc.descent:
                self._metrics = (desc.ascent / 1000.0, desc.descent / 1000.0)
            else:
                self._metrics = (0.718, -0.207)  # Helvetica's cap height / descender
        return self._metrics

    def add_page(self, page: Page, image: np.ndarray | bytes | None = None) -> None:
        """Append one page. ``image``: the page image as an RGB array or encoded JPEG/PNG bytes, drawn
        over the whole page whatever its pixel size; defaults to ``page.image_data``."""
        if self._closed:
            raise ValueError("the PDF writer is closed")
        data = image if image is not None else page.image_data
        if data is None:
            raise ValueError(f"page {page.index + 1} has no image for the searchable PDF")
        if isinstance(data, np.ndarray):
            data = encode_page_image(data, self.options.jpeg_quality)
        scale = 72.0 / page_dpi(page, self.options)
        width_pt, height_pt = page.width * scale, page.height * scale
        pdf = self._pdf
        pdf.add_page(format=(width_pt, height_pt))
        pdf.image(io.BytesIO(data), x=0, y=0, w=width_pt, h=height_pt)
        pdf.text_mode = TextMode.INVISIBLE
        for word in page.words:
            self._place_word(word, scale)
        pdf.text_mode = TextMode.FILL
        self.page_count += 1

    def _place_word(self, word: Word, scale: float) -> None:
        text = word.text.strip()
        if not text:
            return
        if not self._unicode:
            text = text.encode("latin-1", "replace").decode("latin-1")
        pts = np.asarray(word.polygon.points, dtype=float) * scale
        if len(pts) != 4:
            box = word.bbox
            pts = np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]]) * scale
        tl, tr, _, bl = pts
        width, height = float(np.hypot(*(tr - tl))), float(np.hypot(*(bl - tl)))
        if width < 0.1 or height < 0.1:
            return
        pdf = self._pdf
        pdf.set_stretching(100)
        pdf.set_font(self._family, size=1)
        ascent, descent = self._font_metrics()
        size = height / (ascent - descent)
        pdf.set_font(self._family, size=size)
        natural = pdf.get_string_width(text)
        if natural <= 0:
            return
        pdf.set_stretching(100.0 * width / natural)
        down = (bl - tl) / height
        x, y = tl + down * ascent * size  # baseline origin
        angle = math.degrees(math.atan2(tr[1] - tl[1], tr[0] - tl[0]))
        if abs(angle) < 0.5:
            pdf.text(x, y, text)
        else:
            with pdf.rotation(-angle, x=x, y=y):
                pdf.text(x, y, text)

    def to_bytes(self) -> bytes:
        if self.page_count == 0:
            raise ValueError("a PDF needs at least one page")
        self._closed = True
        return bytes(self._pdf.output())

    def close(self) -> None:
        """Write the file (atomically) to ``path``."""
        if self.path is None:
            raise ValueError("no output path: use to_bytes()")
        atomic_write(self.path, self.to_bytes())

    def __enter__(self) -> SearchablePdfWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and self.path is not None:
            self.close()
        self._closed = True


def to_pdf(doc: Document, options: PdfOptions = PdfOptions()) -> bytes:
    """The whole document as a searchable PDF; every page needs ``image_data``."""
    writer = SearchablePdfWriter(None, options)
    for page in doc.pages:
        writer.add_page(page)
    return writer.to_bytes()
