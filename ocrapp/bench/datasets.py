"""Readers for the development benchmark data (``../shared/data/dev``). EVALUATION ONLY: never train on it.

Two kinds of sets:

* crop sets (recognition): ``iter_dev_crops(name)`` yields ``DevCrop(name, image, text)`` with an RGB uint8 crop;
* page sets (detection / end-to-end): ``iter_dev_pages(name)`` yields ``DevPage(name, image, words)`` with an RGB
  uint8 page and its ground-truth units ``(text, Polygon)`` in page pixels. Units are words, except for
  ``calamari-avicanon-pagexml`` whose ground truth is text lines.

The root is ``$OCRAPP_DEV_DATA`` if set, else ``<repo>/../shared/data/dev``. Each folder's README documents the
source, licence and format; the readers follow them.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from ocrapp.document import Polygon

DEV_CROP_SETS = ("funsd-train-word-crops", "sroie-line-crops", "calamari-uw3-lines", "c-pdf-word-crops")
DEV_PAGE_SETS = ("docbank", "mmocr-wildreceipt-toy", "calamari-avicanon-pagexml", "c-pdf-pages")
# Page sets whose ground-truth units are text fields of one or more words, written without spaces
# (WildReceipt: "THANKYOUFORSHOPPINGWITHUS!"): scores regroup predicted words to these units.
FIELD_UNIT_SETS = frozenset({"mmocr-wildreceipt-toy"})

PDF_DPI = 150.0
_XHTML = "{http://www.w3.org/1999/xhtml}"
_PAGE_NS = "{http://schema.primaresearch.org/PAGE/gts/pagecontent/2017-07-15}"
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DOCBANK_PSEUDO = frozenset({"##LTLine##", "##LTFigure##"})


@dataclass
class DevCrop:
    name: str  # "<set>/<item id>"
    image: np.ndarray  # RGB uint8 (H, W, 3)
    text: str


@dataclass
class DevPage:
    name: str  # "<set>/<page id>"
    image: np.ndarray  # RGB uint8 (H, W, 3)
    words: list[tuple[str, Polygon]] = field(default_factory=list)
    # Text regions without a usable transcription ("Ignore" receipt boxes, text-layer words with control
    # characters): a detection there is neither a hit nor a false positive.
    ignore: list[Polygon] = field(default_factory=list)


def dev_root() -> Path:
    env = os.environ.get("OCRAPP_DEV_DATA")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "dev").resolve()


def load_rgb(path: Path) -> np.ndarray:
    """Any image file -> RGB uint8; transparency is composited on white."""
    with Image.open(path) as img:
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
        return np.asarray(img.convert("RGB"))


def _box_polygon(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return Polygon(((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def order_quad(points: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Reorder a polygon clockwise on screen (y down), starting at the top-left-most point."""
    area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]))
    if area2 < 0:  # counter-clockwise on screen
        points = points[::-1]
    start = min(range(len(points)), key=lambda i: (points[i][0] + points[i][1], points[i][1]))
    return tuple(points[start:] + points[:start])


# ----------------------------------------------------------------------------------------------- crop sets


def _tsv_crops(folder: str, set_name: str, root: Path) -> Iterator[DevCrop]:
    base = root / "B" / folder
    with open(base / "labels.tsv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            yield DevCrop(f"{set_name}/{row['filename']}", load_rgb(base / "images" / row["filename"]), row["text"])


def _uw3_crops(root: Path) -> Iterator[DevCrop]:
    base = root / "B" / "calamari-uw3-lines"
    for split in ("test", "train"):  # train/ and test/ reuse numeric names: the split is part of the id
        for png in sorted((base / split).glob("*.bin.png")):
            gt = png.with_name(png.name[: -len(".bin.png")] + ".gt.txt")
            text = gt.read_text(encoding="utf-8").strip("\n").strip()
            yield DevCrop(f"calamari-uw3-lines/{split}/{png.name}", load_rgb(png), text)


def _c_pdfs(root: Path) -> list[Path]:
    return sorted((root / "C").glob("*/*.pdf"))


@lru_cache(maxsize=4)
def read_bbox_html(path: Path) -> list[tuple[float, float, list[tuple[str, tuple[float, float, float, float]]]]]:
    """``pdftotext -bbox-layout`` XHTML -> per page (width_pt, height_pt, [(word, (x0, y0, x1, y1) pt)])."""
    # TeX math fonts map some glyphs to control characters, which XML 1.0 forbids: mark them unreadable
    # (U+FFFD) so that the parse succeeds and ``is_reliable_text`` drops those words.
    text = _XML_INVALID.sub("\ufffd", path.read_text(encoding="utf-8", errors="replace"))
    root = ET.fromstring(text)
    pages = []
    for page in root.iter(f"{_XHTML}page"):
        words = []
        for word in page.iter(f"{_XHTML}word"):
            text = (word.text or "").strip()
            box = tuple(float(word.get(k, "nan")) for k in ("xMin", "yMin", "xMax", "yMax"))
            if text and box[0] < box[2] and box[1] < box[3]:
                words.append((text, box))
        pages.append((float(page.get("width", 0)), float(page.get("height", 0)), words))
    return pages


def _page_indices(n_pages: int, max_pages: int | None) -> list[int]:
    """Up to ``max_pages`` page indices spread evenly over the document (first and last included)."""
    if max_pages is None or n_pages <= max_pages:
        return list(range(n_pages))
    if max_pages <= 1:
        return [0][:max_pages]
    return sorted({round(i * (n_pages - 1) / (max_pages - 1)) for i in range(max_pages)})


def _render_pdf_page(pdf: Path, index: int, dpi: float) -> np.ndarray:
    from ocrapp.training.data.pdf_words import render_page  # poppler; the training module only for this helper

    return render_page(pdf, index, dpi)


def _pdf_dpi(width_pt: float, height_pt: float) -> float:
    """150 dpi, except that very large pages (the A0 poster) are capped at ~2500 px on the long side."""
    return min(PDF_DPI, 2500 * 72 / max(width_pt, height_pt, 1.0))


def _covers_other_words(boxes):
    from ocrapp.training.data.pdf_crops import covers_other_words as covers

    return covers(boxes)


def _word_ok(text: str) -> bool:
    from ocrapp.recognition.charset import DOCUMENT_CHARSET, normalize_label
    from ocrapp.training.data.pdf_words import is_reliable_text

    return is_reliable_text(text) and all(ch in DOCUMENT_CHARSET for ch in normalize_label(text))


def _pdf_word_crops(root: Path, max_pages_per_pdf: int = 2, max_words_per_page: int = 60, pad: int = 2,
                    seed: int = 0) -> Iterator[DevCrop]:
    """Word crops from C's PDFs at 150 dpi: the text-layer box (pt * 150/72) + ``pad`` px.

    A deterministic sample (evenly spread pages, random words per page with ``seed``) keeps the set to ~2k
    crops. Words that the text layer gets wrong (control/private-use chars) or that fall outside the document
    charset (CJK of the Japanese manual) are skipped: no system in the comparison is meant to read them; so are
    boxes that contain another word's centre (the rotated "DRAFT" watermark of sample-amc).
    """
    for pdf in _c_pdfs(root):
        pages = read_bbox_html(pdf.with_name(pdf.stem + ".bbox.html"))
        for index in _page_indices(len(pages), max_pages_per_pdf):
            width_pt, height_pt, words = pages[index]
            covering = _covers_other_words([box for _, box in words])
            words = [w for w, covers in zip(words, covering) if not covers and _word_ok(w[0])]
            if not words:
                continue
            rng = random.Random(f"{seed}/{pdf.name}/{index}")
            chosen = sorted(rng.sample(range(len(words)), min(max_words_per_page, len(words))))
            dpi = _pdf_dpi(width_pt, height_pt)
            image = _render_pdf_page(pdf, index, dpi)
            h, w = image.shape[:2]
            s = dpi / 72.0
            for k in chosen:
                text, (x0, y0, x1, y1) = words[k]
                a0, b0 = max(0, int(x0 * s) - pad), max(0, int(y0 * s) - pad)
                a1, b1 = min(w, int(np.ceil(x1 * s)) + pad), min(h, int(np.ceil(y1 * s)) + pad)
                if a1 - a0 < 2 or b1 - b0 < 4:
                    continue
                crop = np.ascontiguousarray(image[b0:b1, a0:a1])
                yield DevCrop(f"c-pdf-word-crops/{pdf.parent.name}/{pdf.stem}/p{index}/w{k}", crop, text)


def iter_dev_crops(name: str, root: Path | None = None, **kwargs) -> Iterator[DevCrop]:
    """Crops of one dev crop set (see ``DEV_CROP_SETS``). kwargs go to the C PDF sampler."""
    root = Path(root) if root is not None else dev_root()
    readers: dict[str, Callable[[], Iterator[DevCrop]]] = {
        "funsd-train-word-crops": lambda: _tsv_crops("funsd-train-word-crops", name, root),
        "sroie-line-crops": lambda: _tsv_crops("sroie-line-crops", name, root),
        "calamari-uw3-lines": lambda: _uw3_crops(root),
        "c-pdf-word-crops": lambda: _pdf_word_crops(root, **kwargs),
    }
    if name not in readers:
        raise KeyError(f"unknown dev crop set {name!r}; known: {', '.join(DEV_CROP_SETS)}")
    return readers[name]()


# ----------------------------------------------------------------------------------------------- page sets


def _docbank_pages(root: Path) -> Iterator[DevPage]:
    base = root / "A" / "docbank"
    for tokens in sorted((base / "tokens").glob("*.txt")):
        image = load_rgb(base / "images" / (tokens.stem + ".jpg"))
        h, w = image.shape[:2]
        sx, sy = w / 1000.0, h / 1000.0
        words = []
        for line in tokens.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) < 5:
                continue
            text = parts[0].strip()
            if not text or text in _DOCBANK_PSEUDO:
                continue
            x0, y0, x1, y1 = (float(v) for v in parts[1:5])
            words.append((text, _box_polygon(x0 * sx, y0 * sy, x1 * sx, y1 * sy)))
        yield DevPage(f"docbank/{tokens.stem}", image, words)


def _wildreceipt_pages(root: Path) -> Iterator[DevPage]:
    base = root / "A" / "mmocr-wildreceipt-toy"
    for line in (base / "data.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        file_name = Path(record["file_name"]).name
        image = load_rgb(base / file_name)
        words, ignore = [], []
        for ann in record["annotations"]:
            text = str(ann.get("text", "")).strip()
            box = [float(v) for v in ann["box"]]
            if len(box) < 6:
                continue
            polygon = Polygon(order_quad(list(zip(box[0::2], box[1::2]))))
            if text and ann.get("label") != 0:  # label 0 = "Ignore" in class_list.txt
                words.append((text, polygon))
            else:
                ignore.append(polygon)
        yield DevPage(f"mmocr-wildreceipt-toy/{file_name}", image, words, ignore)


def _pagexml_lines(xml_path: Path) -> list[tuple[str, Polygon]]:
    root = ET.parse(xml_path).getroot()
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else _PAGE_NS
    lines = []
    for text_line in root.iter(f"{ns}TextLine"):
        coords = text_line.find(f"{ns}Coords")
        text = None
        for equiv in text_line.findall(f"{ns}TextEquiv"):
            if equiv.get("index") == "0":
                unicode_el = equiv.find(f"{ns}Unicode")
                text = (unicode_el.text or "") if unicode_el is not None else ""
                break
        if coords is None or text is None or not text.strip():
            continue
        points = [tuple(float(v) for v in p.split(",")) for p in coords.get("points", "").split()]
        if len(points) < 3:
            continue
        lines.append((text.strip(), Polygon(tuple(points))))  # type: ignore[arg-type]
    return lines


def _avicanon_pages(root: Path) -> Iterator[DevPage]:
    base = root / "A" / "calamari-avicanon-pagexml"
    for xml_path in sorted(base.glob("*.xml")):
        image = load_rgb(xml_path.with_name(xml_path.stem + ".mono.png"))
        yield DevPage(f"calamari-avicanon-pagexml/{xml_path.stem}", image, _pagexml_lines(xml_path))


def _pdf_pages(root: Path, max_pages_per_pdf: int | None) -> Iterator[DevPage]:
    from ocrapp.training.data.pdf_words import is_reliable_text

    for pdf in _c_pdfs(root):
        pages = read_bbox_html(pdf.with_name(pdf.stem + ".bbox.html"))
        for index in _page_indices(len(pages), max_pages_per_pdf):
            width_pt, height_pt, words = pages[index]
            dpi = _pdf_dpi(width_pt, height_pt)
            s = dpi / 72.0
            image = _render_pdf_page(pdf, index, dpi)
            units, ignore = [], []
            for text, (x0, y0, x1, y1) in words:
                polygon = _box_polygon(x0 * s, y0 * s, x1 * s, y1 * s)
                if is_reliable_text(text):
                    units.append((text, polygon))
                else:
                    ignore.append(polygon)
            yield DevPage(f"c-pdf-pages/{pdf.parent.name}/{pdf.stem}/p{index}", image, units, ignore)


def iter_dev_pages(name: str, max_pages_per_pdf: int | None = 3, root: Path | None = None) -> Iterator[DevPage]:
    """Pages of one dev page set (see ``DEV_PAGE_SETS``); ``max_pages_per_pdf`` limits C's PDFs (None = all),
    taking pages spread evenly through each document. C pages are rendered at 150 dpi (the A0 poster lower)."""
    root = Path(root) if root is not None else dev_root()
    readers: dict[str, Callable[[], Iterator[DevPage]]] = {
        "docbank": lambda: _docbank_pages(root),
        "mmocr-wildreceipt-toy": lambda: _wildreceipt_pages(root),
        "calamari-avicanon-pagexml": lambda: _avicanon_pages(root),
        "c-pdf-pages": lambda: _pdf_pages(root, max_pages_per_pdf),
    }
    if name not in readers:
        raise KeyError(f"unknown dev page set {name!r}; known: {', '.join(DEV_PAGE_SETS)}")
    return readers[name]()
