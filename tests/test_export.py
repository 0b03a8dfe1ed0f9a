"""Exporters: text, hOCR, ALTO, JSON, searchable PDF (read back with pdftotext / pypdfium2)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocrapp.document import BBox, Block, Document, Line, Page, Polygon, Word
from ocrapp.errors import OutputFileError
from ocrapp.export import FORMATS, export_document, write_document
from ocrapp.export.alto import ALTO_NS
from ocrapp.export.json_export import document_from_dict, document_to_dict
from ocrapp.export.pdf import PdfOptions, SearchablePdfWriter, encode_page_image, page_dpi, to_pdf

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
XHTML = "{http://www.w3.org/1999/xhtml}"
ROOT = Path(__file__).resolve().parents[1]


def _word(text: str, x0: float, y0: float, x1: float, y1: float, conf: float = 0.9) -> Word:
    return Word(text, conf, Polygon.from_bbox(BBox(x0, y0, x1, y1)))


def _sample_document() -> Document:
    page1 = Page(
        0,
        800,
        600,
        [
            Block([Line([_word("Hello", 50, 40, 150, 70, 0.97), _word("<world>", 160, 40, 300, 70, 0.5)])]),
            Block(
                [
                    Line([_word('Tom & "Jerry\'s"', 50, 120, 330, 150)]),
                    Line([_word("edge", 700, 150, 812.4, 181.2), _word("naïve", 40.6, 155.5, 90.2, 180.9, 1.3)]),
                ]
            ),
        ],
        dpi=300,
        source="/scans/in put.png",
    )
    page2 = Page(
        1, 400, 300, [Block([Line([_word("Second", 10, 10, 120, 40, 0.0)])])], dpi=None, source="/scans/in put.png"
    )
    return Document([page1, page2], source="/scans/in put.png")


def _boxes_nest(inner: tuple[int, ...], outer: tuple[int, ...]) -> bool:
    return outer[0] <= inner[0] < inner[2] <= outer[2] and outer[1] <= inner[1] < inner[3] <= outer[3]


# ---------------------------------------------------------------- text / dispatch


def test_text_export_pages_separated_by_form_feed() -> None:
    text = export_document(_sample_document(), "text")
    assert isinstance(text, str)
    pages = text.split("\f")
    assert len(pages) == 2
    assert pages[0] == 'Hello <world>\n\nTom & "Jerry\'s"\nedge naïve\n'
    assert pages[1] == "Second\n"


def test_document_export_and_unknown_format() -> None:
    doc = _sample_document()
    assert doc.export("text") == export_document(doc, "text")
    with pytest.raises(ValueError, match="unknown export format"):
        export_document(doc, "docx")
    assert set(FORMATS) == {"text", "hocr", "alto", "json", "pdf"}


def test_write_document_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "doc.json"
    write_document(_sample_document(), "json", out)
    assert json.loads(out.read_text())["version"] == "1.0"
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]
    with pytest.raises(OutputFileError):
        write_document(_sample_document(), "json", tmp_path / "missing" / "doc.json")


# ---------------------------------------------------------------- hOCR


def _title_bbox(title: str) -> tuple[int, ...]:
    match = re.search(r"bbox (-?\d+) (-?\d+) (-?\d+) (-?\d+)", title)
    assert match, title
    return tuple(int(v) for v in match.groups())


def test_hocr_is_valid_xhtml_with_nested_boxes() -> None:
    doc = _sample_document()
    root = ET.fromstring(export_document(doc, "hocr"))
    metas = {m.get("name"): m.get("content") for m in root.iter(f"{XHTML}meta")}
    assert {"ocr_page", "ocr_carea", "ocr_par", "ocr_line", "ocrx_word"} <= set(metas["ocr-capabilities"].split())
    pages = [e for e in root.iter(f"{XHTML}div") if e.get("class") == "ocr_page"]
    assert len(pages) == 2
    assert 'image "in put.png"' in pages[0].get("title") and "ppageno 0" in pages[0].get("title")
    assert "ppageno 1" in pages[1].get("title") and "scan_res 300 300" in pages[0].get("title")
    texts = []
    for page_el, page in zip(pages, doc.pages):
        page_box = _title_bbox(page_el.get("title"))
        assert page_box == (0, 0, page.width, page.height)
        for carea in page_el.iter(f"{XHTML}div"):
            if carea.get("class") != "ocr_carea":
                continue
            block_box = _title_bbox(carea.get("title"))
            assert _boxes_nest(block_box, page_box)
            for line in carea.iter(f"{XHTML}span"):
                if line.get("class") != "ocr_line":
                    continue
                line_box = _title_bbox(line.get("title"))
                assert _boxes_nest(line_box, block_box)
                for word in line:
                    assert word.get("class") == "ocrx_word"
                    assert _boxes_nest(_title_bbox(word.get("title")), line_box)
                    conf = int(re.search(r"x_wconf (\d+)", word.get("title")).group(1))
                    assert 0 <= conf <= 100
                    texts.append((word.text, conf))
    assert texts == [
        ("Hello", 97),
        ("<world>", 50),
        ('Tom & "Jerry\'s"', 90),
        ("edge", 90),
        ("naïve", 100),
        ("Second", 0),
    ]
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------- ALTO


def _geometry(el: ET.Element) -> tuple[int, int, int, int]:
    x, y, w, h = (int(el.get(k)) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
    return (x, y, x + w, y + h)


def test_alto_v4_structure_and_nested_boxes() -> None:
    doc = _sample_document()
    root = ET.fromstring(export_document(doc, "alto"))
    ns = {"a": ALTO_NS}
    assert root.tag == f"{{{ALTO_NS}}}alto"
    assert root.find("a:Description/a:MeasurementUnit", ns).text == "pixel"
    pages = root.findall("a:Layout/a:Page", ns)
    assert [(p.get("WIDTH"), p.get("HEIGHT")) for p in pages] == [("800", "600"), ("400", "300")]
    strings = []
    for page_el in pages:
        space = page_el.find("a:PrintSpace", ns)
        page_box = _geometry(space)
        for block in space.findall("a:TextBlock", ns):
            block_box = _geometry(block)
            assert _boxes_nest(block_box, page_box)
            for line in block.findall("a:TextLine", ns):
                line_box = _geometry(line)
                assert _boxes_nest(line_box, block_box)
                children = [c.tag.split("}")[1] for c in line]
                assert children[0] == "String" and all(t in ("String", "SP") for t in children)
                for string in line.findall("a:String", ns):
                    assert _boxes_nest(_geometry(string), line_box)
                    assert 0.0 <= float(string.get("WC")) <= 1.0
                    strings.append(string.get("CONTENT"))
    assert strings == ["Hello", "<world>", 'Tom & "Jerry\'s"', "edge", "naïve", "Second"]


# ---------------------------------------------------------------- JSON


def test_json_round_trip_and_schema_doc() -> None:
    doc = _sample_document()
    data = json.loads(export_document(doc, "json"))
    assert data["version"] == "1.0" and len(data["pages"]) == 2
    page = data["pages"][0]
    assert {"index", "width", "height", "dpi", "blocks"} <= page.keys()
    word = page["blocks"][0]["lines"][0]["words"][0]
    assert word == {
        "text": "Hello",
        "confidence": 0.97,
        "polygon": [[50, 40], [150, 40], [150, 70], [50, 70]],
        "bbox": [50, 40, 150, 70],
    }
    back = document_from_dict(data)
    assert back.text == doc.text and document_to_dict(back) == data
    schema_doc = (ROOT / "docs" / "json-schema.md").read_text()
    for key in (
        "version",
        "pages",
        "index",
        "width",
        "height",
        "dpi",
        "blocks",
        "lines",
        "words",
        "text",
        "confidence",
        "polygon",
        "bbox",
    ):
        assert f"`{key}`" in schema_doc


# ---------------------------------------------------------------- searchable PDF

WORDS = [("Searchable", 80, 100), ("PDF", 420, 100), ("layer", 80, 300), ("Ünïcode", 400, 300), ("x", 700, 500)]


def _rendered_page(dpi: float | None = 150.0, index: int = 0) -> tuple[Page, np.ndarray]:
    """A 900x700 page image with WORDS drawn at known places, and the Page whose words are their boxes."""
    img = Image.new("RGB", (900, 700), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 48)
    words = []
    for text, x, y in WORDS:
        draw.text((x, y), text, font=font, fill="black")
        words.append(_word(text, *draw.textbbox((x, y), text, font=font)))
    page = Page(index, 900, 700, [Block([Line(words[:2]), Line(words[2:4])]), Block([Line(words[4:])])], dpi=dpi)
    return page, np.asarray(img)


def _pdftotext_words(pdf_path: Path) -> list[list[tuple[str, tuple[float, float, float, float]]]]:
    out = subprocess.run(["pdftotext", "-bbox", str(pdf_path), "-"], capture_output=True, text=True, check=True).stdout
    root = ET.fromstring(out)
    pages = []
    for page in root.iter(f"{XHTML}page"):
        pages.append(
            [
                (w.text, tuple(float(w.get(k)) for k in ("xMin", "yMin", "xMax", "yMax")))
                for w in page.iter(f"{XHTML}word")
            ]
        )
    return pages


needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")


@needs_pdftotext
def test_searchable_pdf_words_found_in_place(tmp_path: Path) -> None:
    page, image = _rendered_page(dpi=150.0)
    path = tmp_path / "out.pdf"
    with SearchablePdfWriter(path) as writer:
        writer.add_page(page, image)
        assert not path.exists()  # nothing appears before the writer closes
    found = _pdftotext_words(path)
    assert len(found) == 1
    scale = 72.0 / 150.0
    by_text = dict(found[0])
    assert sorted(by_text) == sorted(t for t, _, _ in WORDS)
    for word in page.words:
        x0, y0, x1, y1 = by_text[word.text]
        b = word.bbox
        assert x0 == pytest.approx(b.x0 * scale, abs=1.5) and x1 == pytest.approx(b.x1 * scale, abs=1.5), word.text
        assert y0 == pytest.approx(b.y0 * scale, abs=1.5) and y1 == pytest.approx(b.y1 * scale, abs=1.5), word.text
    # reading order of the text layer follows the document
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert text.split() == [t for t, _, _ in WORDS]


def test_searchable_pdf_page_size_image_and_text_with_pdfium(tmp_path: Path) -> None:
    pdfium = pytest.importorskip("pypdfium2")
    first, image = _rendered_page(dpi=150.0)
    second, _ = _rendered_page(dpi=None, index=1)
    second.image_data = encode_page_image(image)
    first.image_data = encode_page_image(image)
    data = export_document(Document([first, second]), "pdf")
    assert isinstance(data, bytes) and data.startswith(b"%PDF-")
    pdf = pdfium.PdfDocument(io.BytesIO(data))
    assert len(pdf) == 2
    assert pdf[0].get_size() == pytest.approx((900 * 72 / 150, 700 * 72 / 150), abs=0.01)
    unknown_dpi = page_dpi(second)
    assert unknown_dpi == pytest.approx(max(72.0, 900 / 11.69))
    assert pdf[1].get_size() == pytest.approx((900 * 72 / unknown_dpi, 700 * 72 / unknown_dpi), abs=0.01)
    for index in range(2):
        text = pdf[index].get_textpage().get_text_range()
        assert text.split() == [t for t, _, _ in WORDS]
        # the image is drawn (ink where a word is) and the text is invisible (nothing drawn elsewhere)
        rendered = np.asarray(
            pdf[index]
            .render(scale=150 / 72 if index == 0 else unknown_dpi / 72)
            .to_pil()
            .convert("L")
            .resize((900, 700))
        )
        b = first.blocks[0].lines[0].words[0].bbox
        assert rendered[int(b.y0) : int(b.y1), int(b.x0) : int(b.x1)].min() < 80
    # the text layer itself draws nothing: over a blank image the page renders blank
    writer = SearchablePdfWriter()
    writer.add_page(first, np.full((700, 900, 3), 255, np.uint8))
    blank = pdfium.PdfDocument(io.BytesIO(writer.to_bytes()))
    assert blank[0].get_textpage().get_text_range().split() == [t for t, _, _ in WORDS]
    assert np.asarray(blank[0].render(scale=150 / 72).to_pil().convert("L")).min() > 250


@needs_pdftotext
def test_searchable_pdf_rotated_word(tmp_path: Path) -> None:
    """A word on a 20-degree slant is written along its slant. pdftotext splits diagonal text into
    characters with upright boxes around the baseline: each must sit inside the word's polygon and
    together they must span the word's width."""
    import math

    from shapely.geometry import Point
    from shapely.geometry import Polygon as ShapelyPolygon

    angle = math.radians(20)
    c, s = math.cos(angle), math.sin(angle)
    w, h = 300.0, 50.0
    tl = (100.0, 100.0)
    pts = (
        tl,
        (tl[0] + w * c, tl[1] + w * s),
        (tl[0] + w * c - h * s, tl[1] + w * s + h * c),
        (tl[0] - h * s, tl[1] + h * c),
    )
    page = Page(0, 600, 600, [Block([Line([Word("slanted", 0.9, Polygon(pts))])])], dpi=72)
    path = tmp_path / "rot.pdf"
    with SearchablePdfWriter(path) as writer:
        writer.add_page(page, np.full((600, 600, 3), 255, np.uint8))
    found = _pdftotext_words(path)[0]
    assert "".join(t for t, _ in found) == "slanted"
    shape = ShapelyPolygon(pts).buffer(2.0)
    for _, (x0, y0, x1, y1) in found:
        assert shape.contains(Point((x0 + x1) / 2, (y0 + y1) / 2))
    xs = [b[0] for _, b in found] + [b[2] for _, b in found]
    assert max(xs) - min(xs) == pytest.approx(w * c, abs=3.0)


def test_pdf_writer_leaves_nothing_on_error(tmp_path: Path) -> None:
    page, image = _rendered_page()
    path = tmp_path / "out.pdf"
    with pytest.raises(RuntimeError):
        with SearchablePdfWriter(path) as writer:
            writer.add_page(page, image)
            raise RuntimeError("recognizer crashed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no image"):
        to_pdf(Document([page]))


def test_pdf_without_unicode_font_falls_back_to_latin1(tmp_path: Path) -> None:
    pdfium = pytest.importorskip("pypdfium2")
    page, image = _rendered_page()
    writer = SearchablePdfWriter(None, PdfOptions(core_font=True))  # as on a system without DejaVu
    writer.add_page(page, image)
    text = pdfium.PdfDocument(io.BytesIO(writer.to_bytes()))[0].get_textpage().get_text_range()
    assert text.split() == [t for t, _, _ in WORDS]  # Latin-1 survives (Ünïcode) ...
    cyrillic = Page(0, 200, 100, [Block([Line([_word("Привет", 10, 10, 150, 50)])])], dpi=72)
    writer = SearchablePdfWriter(None, PdfOptions(core_font=True))
    writer.add_page(cyrillic, np.full((100, 200, 3), 255, np.uint8))
    text = pdfium.PdfDocument(io.BytesIO(writer.to_bytes()))[0].get_textpage().get_text_range()
    assert text.strip() == "??????"  # ... the rest is replaced, not dropped
