"""Born-digital PDFs as training data: page images from poppler and word boxes from the text layer.

One source of truth for both data engines: the recognizer cuts word crops from these pages, the detector
trains on the pages and their word boxes. Synthetic documents are written as PDFs and go through here too,
so their boxes come from the same text layer as the real ones.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Packages behind ../shared/data/dev/C: never used for training.
HELD_OUT_PACKAGES = frozenset(
    {
        "texlive-publishers-doc",
        "texlive-humanities-doc",
        "texlive-latex-recommended-doc",
        "r-doc-pdf",
        "python-reportlab-doc",
        "auto-multiple-choice-doc-pdf",
    }
)

DEFAULT_PACKAGES = (
    "texlive-latex-extra-doc",
    "texlive-pictures-doc",
    "texlive-science-doc",
    "texlive-fonts-extra-doc",
    "texlive-latex-base-doc",
)

_XHTML = "{http://www.w3.org/1999/xhtml}"
_XML_INVALID = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class WordBox:
    """A word of the text layer; box = (x0, y0, x1, y1) in PDF points, origin top-left; ``line`` numbers the
    text layer's lines of the page (words of one line share it, in reading order; -1 when unknown)."""

    text: str
    box: tuple[float, float, float, float]
    line: int = -1

    def scaled(self, factor: float) -> "WordBox":
        x0, y0, x1, y1 = self.box
        return WordBox(self.text, (x0 * factor, y0 * factor, x1 * factor, y1 * factor), self.line)


@dataclass(frozen=True)
class PdfPageWords:
    width_pt: float
    height_pt: float
    words: list[WordBox]


def is_reliable_text(text: str) -> bool:
    """False for words whose text layer is unreliable: control chars, replacement chars, private use."""
    if not text or len(text) > 64:
        return False
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] == "C" or ch == "\ufffd" or cat in ("Zl", "Zp"):
            return False
    return True


def read_word_boxes(pdf: Path, first_page: int | None = None, last_page: int | None = None) -> list[PdfPageWords]:
    """All words with boxes, page by page, via ``pdftotext -bbox-layout`` (poppler)."""
    cmd = ["pdftotext", "-enc", "UTF-8", "-bbox-layout"]
    if first_page is not None:
        cmd += ["-f", str(first_page + 1)]
    if last_page is not None:
        cmd += ["-l", str(last_page + 1)]
    cmd += [str(pdf), "-"]
    out = subprocess.run(cmd, capture_output=True, timeout=300, check=True).stdout
    # Broken font maps put control characters into the XML; mark them U+FFFD so the page still parses
    # and is_reliable_text drops exactly the words that held them.
    root = ET.fromstring(_XML_INVALID.sub("\ufffd".encode(), out))
    pages = []
    for page in root.iter(f"{_XHTML}page"):
        width, height = float(page.get("width", 0)), float(page.get("height", 0))
        words = []
        for line_index, line in enumerate(page.iter(f"{_XHTML}line")):
            for word in line.iter(f"{_XHTML}word"):
                text = (word.text or "").strip()
                box = tuple(float(word.get(k, "nan")) for k in ("xMin", "yMin", "xMax", "yMax"))
                x0, y0, x1, y1 = box
                if not is_reliable_text(text):
                    continue
                if not (0 <= x0 < x1 <= width + 1 and 0 <= y0 < y1 <= height + 1):
                    continue  # off the page or degenerate
                words.append(WordBox(text, box, line_index))  # type: ignore[arg-type]
        pages.append(PdfPageWords(width, height, words))
    return pages


def render_page(pdf: Path, page_index: int, dpi: float, gray: bool = False) -> np.ndarray:
    """Render one page with pdftoppm; returns an RGB (or L) uint8 array."""
    with tempfile.TemporaryDirectory() as tmp:
        stem = Path(tmp) / "page"
        cmd = ["pdftoppm", "-r", f"{dpi:.2f}", "-f", str(page_index + 1), "-l", str(page_index + 1),
               "-singlefile", "-png"]
        if gray:
            cmd.append("-gray")
        subprocess.run(cmd + [str(pdf), str(stem)], capture_output=True, timeout=300, check=True)
        with Image.open(f"{stem}.png") as img:
            return np.asarray(img.convert("L" if gray else "RGB"))


def pdf_page_count(pdf: Path) -> int:
    out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, timeout=60, check=True).stdout
    for line in out.splitlines():
        if line.startswith("Pages:"):
            return int(line.split()[1])
    raise ValueError(f"pdfinfo reported no page count for {pdf}")


def fetch_debian_pdfs(packages: tuple[str, ...], dest: Path) -> list[Path]:
    """Download Debian documentation packages (no install) and unpack them; return their PDFs.

    Refuses the packages that the dev set comes from. Idempotent: an unpacked package is not fetched again.
    """
    dest.mkdir(parents=True, exist_ok=True)
    pdfs: list[Path] = []
    for package in packages:
        if package in HELD_OUT_PACKAGES:
            raise ValueError(f"{package} is held out for evaluation and must not be used for training")
        root = dest / package
        if not (root / ".unpacked").exists():
            debs = dest / "debs"
            debs.mkdir(exist_ok=True)
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True, timeout=1800)
            for deb in sorted(debs.glob(f"{package}_*.deb")):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=1800)
                deb.unlink()
            (root / ".unpacked").touch()
        pdfs.extend(sorted(root.rglob("*.pdf")))
    return pdfs
