"""ocrapp: document OCR with a docTR DBNet detector and a CLIP4STR recognizer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocrapp.document import Block, BBox, Document, Line, Page, Polygon, Word

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ocrapp.pipeline import OCR, OcrConfig


def __getattr__(name: str) -> Any:
    # The pipeline imports torch, docTR and open_clip: load it only when asked for.
    if name in ("OCR", "OcrConfig"):
        from ocrapp import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)


__all__ = ["BBox", "Block", "Document", "Line", "OCR", "OcrConfig", "Page", "Polygon", "Word", "__version__"]
