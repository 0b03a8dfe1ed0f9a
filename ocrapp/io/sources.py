"""One entry point for every input file: validate first (``probe_input``), then stream pages
(``iter_pages``). The file type comes from its content (magic bytes), not its name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import numpy as np

from ocrapp.errors import InputFileError
from ocrapp.io.images import DEFAULT_MAX_PIXELS, iter_image_frames, probe_image
from ocrapp.io.pages import PageSelection, as_selection
from ocrapp.io.pdf import PdfInfo, check_render_size, iter_pdf_pages, probe_pdf

Kind = Literal["pdf", "image"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp"})
INPUT_SUFFIXES = IMAGE_SUFFIXES | {".pdf"}
DEFAULT_DPI = 300

_IMAGE_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
    b"II+\x00",  # BigTIFF
    b"MM\x00+",
    b"BM",
)


@dataclass
class PageImage:
    """One page ready for OCR. ``index`` is 0-based within its source file."""

    index: int
    image: np.ndarray  # HxWx3 uint8 RGB
    dpi: float | None
    source: Path


@dataclass(frozen=True)
class InputInfo:
    """The result of validation: what will be read, and which pages."""

    path: Path
    kind: Kind
    page_count: int
    indices: tuple[int, ...]  # 0-based pages that iter_pages will yield


def sniff_kind(path: Path) -> Kind:
    """'pdf' or 'image' from the first bytes; raises InputFileError for anything else."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not head:
        raise InputFileError(f"{path}: the file is empty")
    if b"%PDF-" in head:  # the spec tolerates junk before the header
        return "pdf"
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    claimed = "a PDF" if path.suffix.lower() == ".pdf" else "a supported image or PDF"
    raise InputFileError(f"{path}: not {claimed} (unrecognized file content)")


def check_file(path: Path) -> None:
    """Exists, is a regular file, is readable."""
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, expected a file")
    if not path.is_file():
        raise InputFileError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise InputFileError(f"{path}: permission denied")


def probe_input(
    path: str | Path,
    dpi: int = DEFAULT_DPI,
    pages: str | PageSelection | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> InputInfo:
    """Validate a file without decoding pixels: type, encryption, page count, page selection, size limit.
    Call this for every input before creating any output."""
    path = Path(path)
    check_file(path)
    kind = sniff_kind(path)
    selection = as_selection(pages)
    if kind == "pdf":
        info: PdfInfo = probe_pdf(path)
        count = info.page_count
        indices = selection.indices(count) if selection else list(range(count))
        check_render_size(path, info, indices, dpi, max_pixels)
    else:
        count = probe_image(path, max_pixels).frame_count
        indices = selection.indices(count) if selection else list(range(count))
    return InputInfo(path, kind, count, tuple(indices))


def iter_pages(
    path: str | Path,
    dpi: int = DEFAULT_DPI,
    pages: str | PageSelection | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    info: InputInfo | None = None,
) -> Iterator[PageImage]:
    """Yield the selected pages one at a time (a PDF is rendered page by page at ``dpi``; images keep
    their own resolution and report their stored dpi, or None). Pass ``info`` from ``probe_input`` to
    skip validating twice; validation errors otherwise surface on the first ``next()``."""
    info = info or probe_input(path, dpi, pages, max_pixels)
    if info.kind == "pdf":
        for index, image in iter_pdf_pages(info.path, info.indices, dpi):
            yield PageImage(index, image, float(dpi), info.path)
    else:
        for index, image, image_dpi in iter_image_frames(info.path, info.indices, max_pixels):
            yield PageImage(index, image, image_dpi, info.path)


def discover_inputs(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Images and PDFs (by extension) under ``folder``, hidden files and folders skipped, sorted by
    relative path. Content is validated later by ``probe_input``."""
    folder = Path(folder)
    if not folder.exists():
        raise InputFileError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputFileError(f"{folder}: not a folder")
    pattern = "**/*" if recursive else "*"
    found = [
        p
        for p in folder.glob(pattern)
        if p.suffix.lower() in INPUT_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    if not found:
        raise InputFileError(f"{folder}: no images or PDFs found")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
