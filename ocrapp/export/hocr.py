"""hOCR 1.2 (XHTML) as Tesseract writes it: ocr_page > ocr_carea > ocr_par > ocr_line > ocrx_word."""

from __future__ import annotations

from html import escape
from pathlib import Path

from ocrapp.document import Document, Page
from ocrapp.export.common import IntBox, layout_boxes, software_version

_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{title}</title>
  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
  <meta name="ocr-system" content="ocrapp {version}"/>
  <meta name="ocr-capabilities" content="ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"/>
 </head>
 <body>
"""
_TAIL = """ </body>
</html>
"""


def _bbox(box: IntBox) -> str:
    return "bbox {} {} {} {}".format(*box)


def _page(page: Page, number: int) -> list[str]:
    n = number + 1
    title = [f'image "{Path(page.source).name}"' if page.source else None, _bbox((0, 0, page.width, page.height))]
    title.append(f"ppageno {page.index}")
    if page.dpi:
        title.append(f"scan_res {round(page.dpi)} {round(page.dpi)}")
    out = [f'  <div class="ocr_page" id="page_{n}" title="{escape("; ".join(t for t in title if t))}">']
    for b, block in enumerate(layout_boxes(page), 1):
        out.append(f'   <div class="ocr_carea" id="block_{n}_{b}" title="{_bbox(block.box)}">')
        out.append(f'    <p class="ocr_par" id="par_{n}_{b}" title="{_bbox(block.box)}">')
        for ln, line in enumerate(block.lines, 1):
            out.append(f'     <span class="ocr_line" id="line_{n}_{b}_{ln}" title="{_bbox(line.box)}">')
            for w, word in enumerate(line.words, 1):
                title_w = f"{_bbox(word.box)}; x_wconf {round(word.confidence * 100)}"
                out.append(
                    f'      <span class="ocrx_word" id="word_{n}_{b}_{ln}_{w}" title="{title_w}">{escape(word.text)}</span>'
                )
            out.append("     </span>")
        out.append("    </p>")
        out.append("   </div>")
    out.append("  </div>")
    return out


def to_hocr(doc: Document) -> str:
    title = escape(Path(doc.source).name) if doc.source else ""
    body = [line for number, page in enumerate(doc.pages) for line in _page(page, number)]
    return _HEAD.format(title=title, version=software_version()) + "\n".join(body) + "\n" + _TAIL
