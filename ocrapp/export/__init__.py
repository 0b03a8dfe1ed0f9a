"""Exporters: functions of the document model. ``export_document(doc, fmt)`` is what
``Document.export`` calls; ``write_document`` writes atomically."""

from __future__ import annotations

from pathlib import Path

from ocrapp.document import Document

FORMATS = ("text", "hocr", "alto", "json", "pdf")
EXTENSIONS = {"text": ".txt", "hocr": ".hocr", "alto": ".xml", "json": ".json", "pdf": ".pdf"}


def export_document(doc: Document, fmt: str) -> str | bytes:
    """'text' | 'hocr' | 'alto' | 'json' -> str; 'pdf' -> bytes (pages need ``image_data``)."""
    if fmt == "text":
        from ocrapp.export.text import to_text

        return to_text(doc)
    if fmt == "hocr":
        from ocrapp.export.hocr import to_hocr

        return to_hocr(doc)
    if fmt == "alto":
        from ocrapp.export.alto import to_alto

        return to_alto(doc)
    if fmt == "json":
        from ocrapp.export.json_export import to_json

        return to_json(doc)
    if fmt == "pdf":
        from ocrapp.export.pdf import to_pdf

        return to_pdf(doc)
    raise ValueError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")


def write_document(doc: Document, fmt: str, path: str | Path) -> None:
    """Export and write atomically (OutputFileError if the file cannot be written)."""
    from ocrapp.io.atomic import atomic_write

    atomic_write(path, export_document(doc, fmt))


__all__ = ["EXTENSIONS", "FORMATS", "export_document", "write_document"]
