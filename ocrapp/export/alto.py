"""ALTO v4 XML (pixel units): Page > PrintSpace > TextBlock > TextLine > String / SP."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ocrapp.document import Document, Page
from ocrapp.export.common import IntBox, layout_boxes, software_version

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_SCHEMA = f"{ALTO_NS} http://www.loc.gov/alto/v4/alto-4-2.xsd"


def _geometry(box: IntBox) -> dict[str, str]:
    x0, y0, x1, y1 = box
    return {"HPOS": str(x0), "VPOS": str(y0), "WIDTH": str(x1 - x0), "HEIGHT": str(y1 - y0)}


def _page(layout: ET.Element, page: Page, number: int) -> None:
    n = number + 1
    attrs = {
        "ID": f"page_{n}",
        "PHYSICAL_IMG_NR": str(page.index + 1),
        "WIDTH": str(page.width),
        "HEIGHT": str(page.height),
    }
    page_el = ET.SubElement(layout, "Page", attrs)
    space = ET.SubElement(page_el, "PrintSpace", _geometry((0, 0, page.width, page.height)))
    for b, block in enumerate(layout_boxes(page), 1):
        block_el = ET.SubElement(space, "TextBlock", {"ID": f"block_{n}_{b}", **_geometry(block.box)})
        for ln, line in enumerate(block.lines, 1):
            line_el = ET.SubElement(block_el, "TextLine", {"ID": f"line_{n}_{b}_{ln}", **_geometry(line.box)})
            for w, word in enumerate(line.words, 1):
                if w > 1:
                    prev = line.words[w - 2].box
                    gap = max(word.box[0] - prev[2], 0)
                    ET.SubElement(line_el, "SP", {"WIDTH": str(gap), "HPOS": str(prev[2]), "VPOS": str(line.box[1])})
                ET.SubElement(
                    line_el,
                    "String",
                    {
                        "ID": f"string_{n}_{b}_{ln}_{w}",
                        **_geometry(word.box),
                        "CONTENT": word.text,
                        "WC": f"{word.confidence:.4f}",
                    },
                )


def to_alto(doc: Document) -> str:
    root = ET.Element("alto", {"xmlns": ALTO_NS, "xmlns:xsi": _XSI, "xsi:schemaLocation": _SCHEMA})
    description = ET.SubElement(root, "Description")
    ET.SubElement(description, "MeasurementUnit").text = "pixel"
    if doc.source or (doc.pages and doc.pages[0].source):
        info = ET.SubElement(description, "sourceImageInformation")
        ET.SubElement(info, "fileName").text = Path(doc.source or doc.pages[0].source or "").name
    processing = ET.SubElement(description, "OCRProcessing", {"ID": "ocr_0"})
    step = ET.SubElement(processing, "ocrProcessingStep")
    software = ET.SubElement(step, "processingSoftware")
    ET.SubElement(software, "softwareName").text = "ocrapp"
    ET.SubElement(software, "softwareVersion").text = software_version()
    layout = ET.SubElement(root, "Layout")
    for number, page in enumerate(doc.pages):
        _page(layout, page, number)
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
