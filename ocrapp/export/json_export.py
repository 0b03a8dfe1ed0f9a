"""JSON export and import; the schema is documented in docs/json-schema.md."""

from __future__ import annotations

import json
from typing import Any

from ocrapp.document import BBox, Block, Document, Line, Page, Polygon, Word

SCHEMA_VERSION = "1.0"


def _r(value: float) -> float:
    return round(float(value), 2)


def _bbox(box: BBox) -> list[float]:
    return [_r(box.x0), _r(box.y0), _r(box.x1), _r(box.y1)]


def _word(word: Word) -> dict[str, Any]:
    return {
        "text": word.text,
        "confidence": round(float(word.confidence), 4),
        "polygon": [[_r(x), _r(y)] for x, y in word.polygon.points],
        "bbox": _bbox(word.bbox),
    }


def _page(page: Page) -> dict[str, Any]:
    return {
        "index": page.index,
        "width": page.width,
        "height": page.height,
        "dpi": page.dpi,
        "source": page.source,
        "blocks": [
            {
                "bbox": _bbox(block.bbox),
                "lines": [
                    {"bbox": _bbox(line.bbox), "words": [_word(w) for w in line.words]}
                    for line in block.lines
                    if line.words
                ],
            }
            for block in page.blocks
            if block.lines
        ],
    }


def document_to_dict(doc: Document) -> dict[str, Any]:
    return {"version": SCHEMA_VERSION, "source": doc.source, "pages": [_page(p) for p in doc.pages]}


def to_json(doc: Document, indent: int | None = 2) -> str:
    return json.dumps(document_to_dict(doc), ensure_ascii=False, indent=indent) + "\n"


def document_from_dict(data: dict[str, Any]) -> Document:
    """Inverse of ``document_to_dict`` (line/block boxes are recomputed from the words)."""
    if str(data.get("version", "")).split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise ValueError(f"unsupported ocrapp JSON version {data.get('version')!r}")
    pages = []
    for p in data["pages"]:
        blocks = [
            Block(
                [
                    Line(
                        [
                            Word(
                                w["text"],
                                float(w["confidence"]),
                                Polygon(tuple((float(x), float(y)) for x, y in w["polygon"])),
                            )
                            for w in ln["words"]
                        ]
                    )
                    for ln in b["lines"]
                ]
            )
            for b in p["blocks"]
        ]
        pages.append(Page(p["index"], p["width"], p["height"], blocks, p.get("dpi"), p.get("source")))
    return Document(pages, data.get("source"))
