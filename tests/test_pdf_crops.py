"""The PDF word-crop cutter on a PDF generated here: 32x128 RGB crops with the text layer's labels."""

import os
import random
import shutil

import numpy as np
import pytest

from ocrapp.training.data import pdf_crops as pc
from ocrapp.training.data.shards import list_shards, load_shard

pytestmark = pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                                reason="poppler-utils not installed")

LINES = [["Invoice", "number", "2024-17", "Total:", "€12.50"],
         ["Straße", "naïve", "café", "(draft)", "x"],
         ["averyveryveryverylongwordthatexceedslimits"]]


def _make_pdf(path, pages=1):
    fpdf = pytest.importorskip("fpdf")
    pdf = fpdf.FPDF(unit="pt", format=(420, 300))
    font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if os.path.exists(font):
        pdf.add_font("DejaVu", fname=font)
        family = "DejaVu"
    else:  # core font: Latin-1 only, no €
        family = "Helvetica"
    for _ in range(pages):
        pdf.add_page()
        pdf.set_font(family, size=16)
        y = 30
        for words in LINES:
            pdf.set_xy(20, y)
            pdf.cell(text=" ".join(w for w in words if family == "DejaVu" or w != "€12.50"))
            y += 40
    pdf.output(str(path))
    return path


def test_clean_label():
    assert pc.clean_label("word") == "word"
    assert pc.clean_label("ﬁnd") == "find"  # ligature folded
    assert pc.clean_label("a" * 26) is None
    assert pc.clean_label("漢字") is None
    assert pc.clean_label("x\x08y") is None
    assert pc.clean_label("€12") == "€12"


def test_crops_from_page(tmp_path):
    pdf = _make_pdf(tmp_path / "doc.pdf")
    crops = pc.crops_from_page(pdf, 0, random.Random(0), dpi_range=(100, 100), max_words=None, degrade_p=0.0)
    labels = [label for _, label in crops]
    expected = {w for line in LINES for w in line if len(w) <= pc.MAX_LABEL_LENGTH}
    assert set(labels) <= expected
    assert {"Invoice", "number", "2024-17", "Total:", "Straße", "naïve", "café", "(draft)"} <= set(labels)
    assert not any(len(label) > pc.MAX_LABEL_LENGTH for label in labels)
    for image, label in crops:
        assert image.shape == (32, 128, 3) and image.dtype == np.uint8
        assert image.min() < 128 and image.max() > 200, label  # ink on paper


def test_crop_matches_its_word(tmp_path):
    """A wide word gives a crop whose ink spans most of the width, a 1-letter word is stretched: boxes align."""
    pdf = _make_pdf(tmp_path / "doc.pdf")
    crops = dict((label, img) for img, label in
                 pc.crops_from_page(pdf, 0, random.Random(1), dpi_range=(150, 150), max_words=None, degrade_p=0.0))
    ink = crops["Invoice"].min(axis=2) < 128
    cols = np.flatnonzero(ink.any(axis=0))
    assert cols[0] < 30 and cols[-1] > 98  # text fills the crop horizontally (tight-ish padding)
    rows = np.flatnonzero(ink.any(axis=1))
    assert rows[0] < 14 and rows[-1] > 18


def test_phrase_crops_hold_neighbouring_words_of_a_line(tmp_path):
    """phrase_share=1 gives crops of 2-3 words that follow each other on one line, labelled with their spaces;
    words of two lines, or across a dropped word, never join."""
    pdf = _make_pdf(tmp_path / "doc.pdf")
    crops = pc.crops_from_page(pdf, 0, random.Random(3), dpi_range=(120, 120), max_words=None, degrade_p=0.0,
                               phrase_share=1.0)
    lines = [" ".join(words) for words in LINES]
    assert crops
    for image, label in crops:
        assert " " in label and 2 <= len(label.split()) <= 3
        assert any(label in line for line in lines), label
        assert image.shape == (32, 128, 3)
    # a phrase crop shows all of its words: its ink spans most of the crop's width
    image, label = crops[0]
    cols = np.flatnonzero((image.min(axis=2) < 128).any(axis=0))
    assert cols[0] < 20 and cols[-1] > 108, label


def test_phrase_at_refuses_gaps_and_other_lines():
    a = pc.WordBox("of", (10, 10, 20, 20), line=0)
    b = pc.WordBox("the", (24, 10, 40, 20), line=0)
    far = pc.WordBox("far", (80, 10, 100, 20), line=0)
    below = pc.WordBox("next", (42, 30, 60, 40), line=1)
    phrase = pc.phrase_at([(0, a, "of"), (1, b, "the")], 0, 2)
    assert phrase.label == "of the" and phrase.box == (10, 10, 40, 20) and phrase.boxes == (a.box, b.box)
    glued = pc.WordBox(".", (20.5, 10, 22, 20), line=0)  # the text layer splitting one printed word
    assert pc.phrase_at([(0, a, "of"), (1, glued, ".")], 0, 2) is None
    assert pc.phrase_at([(0, a, "of"), (2, b, "the")], 0, 2) is None  # a word was dropped between them
    assert pc.phrase_at([(0, b, "the"), (1, far, "far")], 0, 2) is None  # a column gap, not a space
    assert pc.phrase_at([(0, b, "the"), (1, below, "next")], 0, 2) is None
    assert pc.phrase_at([(0, a, "of")], 0, 2) is None


def test_spaces_are_blank_refuses_ink_across_a_gap():
    """A gap crossed by an underscore or a hyphen (glyphs the text layer may not hold) is no space."""
    page = np.full((40, 100), 235, np.uint8)
    page[12:28, 11:40:4] = 20  # word one: strokes on paper, as letters are
    page[12:28, 51:90:4] = 20  # word two
    boxes = [(10, 10, 40, 30), (50, 10, 90, 30)]
    assert pc.spaces_are_blank(page, boxes)
    underscored = page.copy()
    underscored[28:30, 38:52] = 20
    assert not pc.spaces_are_blank(underscored, boxes)
    inverted = 255 - page  # light text on a dark slide: still a blank gap
    assert pc.spaces_are_blank(inverted, boxes)
    assert not pc.spaces_are_blank(page, [(10, 10, 40, 30), (39, 10, 90, 30)])  # no gap at all


def test_build_is_resumable(tmp_path):
    pdfs = [_make_pdf(tmp_path / f"doc{i}.pdf", pages=3) for i in range(2)]
    out = tmp_path / "crops"
    n1 = pc.build_pdf_crops(out, max_crops=30, pdfs=pdfs, pdf_root=tmp_path, shard_size=10, pages_per_pdf=2,
                            log_every_s=1e9)
    assert n1 == 30
    shards = list_shards(out)
    assert [p.stem for p in shards][:1] == ["pdf_00000"]
    total = sum(len(load_shard(p).labels) for p in shards)
    assert total == 30
    for p in shards:
        shard = load_shard(p)
        assert shard.images.shape[1:] == (32, 128, 3) and len(shard.labels) == len(shard.images)
    # same target: nothing to do; larger target: continues numbering, skips visited pages
    assert pc.build_pdf_crops(out, max_crops=30, pdfs=pdfs, pdf_root=tmp_path, shard_size=10, log_every_s=1e9) == 0
    n2 = pc.build_pdf_crops(out, max_crops=50, pdfs=pdfs, pdf_root=tmp_path, shard_size=10, pages_per_pdf=2,
                            log_every_s=1e9)
    assert n2 > 0
    names = [p.stem for p in list_shards(out)]
    assert len(names) == len(set(names)) and len(names) > len(shards)
    visited = (out / pc.VISITED).read_text().splitlines()
    assert len(visited) == len(set(visited))
    assert not list(out.glob(".*.tmp"))


def test_validation_documents_never_reach_training(tmp_path):
    """doc8.pdf and doc21.pdf hash into the validation split, doc0..doc2 into training; a validation build also
    skips documents another cache already used."""
    names = ["doc0.pdf", "doc1.pdf", "doc2.pdf", "doc8.pdf", "doc21.pdf"]
    assert [pc.document_split(n) for n in names] == ["train"] * 3 + ["val"] * 2
    pdfs = [_make_pdf(tmp_path / n, pages=2) for n in names]
    kw = dict(max_crops=1000, pdfs=pdfs, pdf_root=tmp_path, shard_size=10, pages_per_pdf=2, log_every_s=1e9)
    pc.build_pdf_crops(tmp_path / "train", split="train", **kw)
    assert pc.visited_documents(tmp_path / "train") == {"doc0.pdf", "doc1.pdf", "doc2.pdf"}
    pc.build_pdf_crops(tmp_path / "val", split="val", exclude_documents=frozenset({"doc21.pdf"}), **kw)
    assert pc.visited_documents(tmp_path / "val") == {"doc8.pdf"}
    with pytest.raises(ValueError):
        pc.build_pdf_crops(tmp_path / "x", split="test", **kw)


def test_held_out_packages_refused(tmp_path):
    with pytest.raises(ValueError):
        pc.build_pdf_crops(tmp_path, 10, packages=("r-doc-pdf",), pdfs=[])


def test_covers_other_words():
    boxes = [(0, 0, 100, 100), (10, 10, 30, 20), (40, 40, 60, 50), (200, 0, 220, 10)]
    assert pc.covers_other_words(boxes).tolist() == [True, False, False, False]
    assert pc.covers_other_words([(0, 0, 1, 1)]).tolist() == [False]
