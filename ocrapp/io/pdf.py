"""PDF input through poppler (pdf2image), rendered one page at a time so memory stays flat."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from pdf2image import convert_from_path, pdfinfo_from_path
from pdf2image.exceptions import PDFInfoNotInstalledError, PDFPageCountError, PDFPopplerTimeoutError

from ocrapp.errors import EncryptedPdfError, InputFileError
from ocrapp.io.images import DEFAULT_MAX_PIXELS, to_rgb_array

_PAGE_SIZE = re.compile(r"^Page\s+(\d+)\s+size$")
_POINTS = re.compile(r"([\d.]+)\s*x\s*([\d.]+)\s*pts")


@dataclass(frozen=True)
class PdfInfo:
    page_count: int
    # Page sizes in PDF points (1/72 inch), rotation not applied; empty when poppler did not report them.
    page_sizes: tuple[tuple[float, float], ...] = ()


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.lower().startswith("unable to get page count")]
    return (lines[0] if lines else "unknown poppler error")[:200]


def _pdfinfo(path: Path, timeout_s: int, first: int | None = None, last: int | None = None) -> dict:
    try:
        return pdfinfo_from_path(str(path), timeout=timeout_s, first_page=first, last_page=last)
    except PDFInfoNotInstalledError as exc:
        raise InputFileError(
            "cannot read PDFs: poppler's pdfinfo is not installed (apt install poppler-utils)"
        ) from exc
    except PDFPopplerTimeoutError as exc:
        raise InputFileError(f"{path}: poppler timed out reading the PDF") from exc
    except PDFPageCountError as exc:
        message = str(exc)
        if "password" in message.lower() or "encrypt" in message.lower():
            raise EncryptedPdfError(f"{path}: the PDF is encrypted and needs a password") from exc
        if "page count 0" in message.lower():
            raise InputFileError(f"{path}: the PDF has no pages") from exc
        raise InputFileError(f"{path}: not a readable PDF: {_first_line(message)}") from exc


def probe_pdf(path: Path, timeout_s: int = 60) -> PdfInfo:
    """Page count and page sizes, without rendering. Raises EncryptedPdfError / InputFileError."""
    info = _pdfinfo(path, timeout_s)
    count = int(info.get("Pages", 0))
    if count <= 0:
        raise InputFileError(f"{path}: the PDF has no pages")
    sizes: dict[int, tuple[float, float]] = {}
    for key, value in _pdfinfo(path, timeout_s, 1, count).items():
        key_match, size_match = _PAGE_SIZE.match(key), _POINTS.search(str(value))
        if key_match and size_match:
            sizes[int(key_match.group(1))] = (float(size_match.group(1)), float(size_match.group(2)))
    if len(sizes) != count:
        single = _POINTS.search(str(info.get("Page size", "")))
        fallback = (float(single.group(1)), float(single.group(2))) if single else None
        ordered = tuple(sizes.get(i + 1, fallback) for i in range(count))
        return PdfInfo(count, () if None in ordered else ordered)  # type: ignore[arg-type]
    return PdfInfo(count, tuple(sizes[i + 1] for i in range(count)))


def check_render_size(path: Path, info: PdfInfo, indices: Sequence[int], dpi: int, max_pixels: int) -> None:
    """Refuse pages that would render over the pixel limit at this dpi, before rendering anything."""
    for index in indices:
        if index >= len(info.page_sizes):
            continue
        w_pt, h_pt = info.page_sizes[index]
        w_px, h_px = round(w_pt * dpi / 72), round(h_pt * dpi / 72)
        if w_px * h_px > max_pixels:
            raise InputFileError(
                f"{path}: page {index + 1} would render to {w_px}x{h_px} = {w_px * h_px / 1e6:.0f} MP at "
                f"{dpi} dpi, over the limit of {max_pixels / 1e6:.0f} MP (lower the dpi)"
            )


def iter_pdf_pages(
    path: Path, indices: Sequence[int], dpi: int = 300, timeout_s: int = 600
) -> Iterator[tuple[int, np.ndarray]]:
    """Render the given 0-based pages one at a time (one poppler call each) as RGB uint8."""
    for index in indices:
        try:
            images = convert_from_path(str(path), dpi=dpi, first_page=index + 1, last_page=index + 1, timeout=timeout_s)
        except PDFPopplerTimeoutError as exc:
            raise InputFileError(f"{path}: poppler timed out rendering page {index + 1}") from exc
        except Exception as exc:  # pdf2image raises bare exceptions for poppler failures
            raise InputFileError(f"{path}: cannot render page {index + 1}: {_first_line(str(exc))}") from exc
        if not images:
            raise InputFileError(f"{path}: poppler rendered nothing for page {index + 1}")
        with images[0] as image:
            yield index, to_rgb_array(image)


def render_pdf_page(path: str | Path, index: int, dpi: int = 300, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One page (0-based) as RGB uint8; convenience for tests and tools."""
    path = Path(path)
    check_render_size(path, probe_pdf(path), [index], dpi, max_pixels)
    return next(iter_pdf_pages(path, [index], dpi))[1]
