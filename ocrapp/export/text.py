"""Plain text: blocks separated by a blank line, pages by a form feed."""

from __future__ import annotations

from ocrapp.document import Document, Page


def page_text(page: Page) -> str:
    return "\n\n".join(b.text for b in page.blocks if b.text.strip())


def to_text(doc: Document) -> str:
    """Each page's text followed by a newline; pages separated by form feed (as pdftotext does)."""
    return "\f".join(page_text(p) + "\n" for p in doc.pages)
