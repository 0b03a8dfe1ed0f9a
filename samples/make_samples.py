"""Rebuild the samples: a photo-like image of a letter and a multi-page PDF report, with their expected text.

python samples/make_samples.py   (deterministic: the same files every time)
The photo is rendered from a PDF, then "photographed": perspective, background, uneven light, blur, JPEG.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from ocrapp.training.data.page_augment import blur, lighting, perspective_photo
from ocrapp.training.data.pdf_words import render_page

HERE = Path(__file__).resolve().parent

LETTER = [
    ("Helvetica-Bold", 16, "Northwind Supplies Ltd"),
    ("Helvetica", 11, "12 Harbour Road, Bristol BS1 4QA"),
    ("Helvetica", 11, "Invoice No. 2026-0417"),
    ("Helvetica", 11, "Date: 14 March 2026"),
    ("Helvetica", 11, ""),
    ("Helvetica", 11, "Dear Ms Carter,"),
    ("Helvetica", 11, "Thank you for your order of office paper and toner."),
    ("Helvetica", 11, "Please find the details of your invoice below."),
    ("Helvetica", 11, ""),
    ("Courier", 11, "Paper A4 80g    10 boxes    149.50"),
    ("Courier", 11, "Toner cartridge  2 units     96.00"),
    ("Courier-Bold", 11, "Total due                  245.50 EUR"),
    ("Helvetica", 11, ""),
    ("Helvetica", 11, "Payment is due within 30 days."),
    ("Helvetica", 11, "Kind regards,"),
    ("Helvetica-Oblique", 11, "Daniel Moore, Accounts"),
]

REPORT_PAGES = [
    [
        ("Times-Bold", 18, "Annual Report 2025"),
        ("Times-Roman", 12, ""),
        ("Times-Bold", 13, "1. Summary"),
        ("Times-Roman", 12, "Revenue grew by 12 percent to 4.2 million euros."),
        ("Times-Roman", 12, "The company opened two new offices in Lyon and Porto."),
        ("Times-Roman", 12, "Staff numbers rose from 48 to 61 during the year."),
        ("Times-Roman", 12, ""),
        ("Times-Bold", 13, "2. Operations"),
        ("Times-Roman", 12, "Delivery times fell to an average of 2.5 days."),
        ("Times-Roman", 12, "Customer satisfaction reached 91 percent in December."),
    ],
    [
        ("Times-Bold", 13, "3. Outlook"),
        ("Times-Roman", 12, "We expect steady growth in the coming year."),
        ("Times-Roman", 12, "Investment will focus on software and training."),
        ("Times-Roman", 12, ""),
        ("Times-Bold", 13, "4. Contact"),
        ("Times-Roman", 12, "Questions may be sent to info@example.com"),
        ("Times-Roman", 12, "or by phone on +44 117 496 0123."),
    ],
]


def write_pdf(path: Path, pages: list[list[tuple[str, int, str]]]) -> None:
    canvas = Canvas(str(path), pagesize=A4)
    _, height = A4
    for lines in pages:
        y = height - 90
        for font, size, text in lines:
            canvas.setFont(font, size)
            canvas.drawString(72, y, text)
            y -= size * 1.7
        canvas.showPage()
    canvas.save()


def expected_text(pages: list[list[tuple[str, int, str]]]) -> str:
    return "\f".join("\n".join(" ".join(t.split()) for _, _, t in lines if t.strip()) for lines in pages) + "\n"


def make_photo(out: Path) -> None:
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "letter.pdf"
        write_pdf(pdf, [LETTER])
        page = render_page(pdf, 0, 150)
    quads = np.zeros((0, 4, 2), np.float32)
    image, _ = perspective_photo(page, quads, rng)
    image = blur(lighting(image, rng), rng)
    Image.fromarray(image).save(out, quality=82)


def main() -> None:
    make_photo(HERE / "letter-photo.jpg")
    (HERE / "letter-photo.txt").write_text(expected_text([LETTER]), encoding="utf-8")
    write_pdf(HERE / "annual-report.pdf", REPORT_PAGES)
    (HERE / "annual-report.txt").write_text(expected_text(REPORT_PAGES), encoding="utf-8")


if __name__ == "__main__":
    main()
