"""Each dev-set reader on a tiny fixture in the same format (never on the shared data itself)."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from ocrapp.bench import datasets as ds
from ocrapp.document import Polygon


def _png(path, w, h, mode="RGB", colour=(255, 255, 255)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (w, h), colour if mode != "L" else 255).save(path)


def test_dev_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("OCRAPP_DEV_DATA", str(tmp_path))
    assert ds.dev_root() == tmp_path
    monkeypatch.delenv("OCRAPP_DEV_DATA")
    assert ds.dev_root().parts[-3:] == ("shared", "data", "dev")


def test_tsv_crop_sets(tmp_path):
    base = tmp_path / "B" / "funsd-train-word-crops"
    _png(base / "images" / "funsd_0000.png", 20, 12)
    _png(base / "images" / "funsd_0001.png", 30, 14, mode="L")
    (base / "labels.tsv").write_text(
        "filename\ttext\tsource_image\tsource_box_x0y0x1y1\tfunsd_entity_label\n"
        "funsd_0000.png\t84\ta.png\t1,2,3,4\tanswer\n"
        'funsd_0001.png\t"quoted\ta.png\t1,2,3,4\theader\n', encoding="utf-8")
    crops = list(ds.iter_dev_crops("funsd-train-word-crops", root=tmp_path))
    assert [c.text for c in crops] == ["84", '"quoted']
    assert crops[0].image.shape == (12, 20, 3) and crops[0].image.dtype == np.uint8
    assert crops[1].image.shape == (14, 30, 3)  # grayscale -> RGB
    assert crops[0].name == "funsd-train-word-crops/funsd_0000.png"

    base = tmp_path / "B" / "sroie-line-crops"
    Image.new("L", (40, 16), 200).save((base / "images").mkdir(parents=True) or base / "images" / "s.jpg")
    (base / "labels.tsv").write_text("filename\ttext\tsource_image_in_zzzDavid_repo\tsource_box_x0y0x1y1\n"
                                     "s.jpg\tINDAH GIFT & HOME\tdata/img/1.jpg\t1,2,3,4\n", encoding="utf-8")
    (crop,) = ds.iter_dev_crops("sroie-line-crops", root=tmp_path)
    assert crop.text == "INDAH GIFT & HOME" and crop.image.shape == (16, 40, 3)


def test_uw3_lines_rgba_on_white(tmp_path):
    base = tmp_path / "B" / "calamari-uw3-lines"
    for split, text in (("test", "a line"), ("train", "other line")):
        (base / split).mkdir(parents=True)
        Image.new("RGBA", (50, 10), (0, 0, 0, 0)).save(base / split / "010001.bin.png")  # transparent
        (base / split / "010001.gt.txt").write_text(text + "\n", encoding="utf-8")
    crops = list(ds.iter_dev_crops("calamari-uw3-lines", root=tmp_path))
    assert [c.text for c in crops] == ["a line", "other line"]
    assert len({c.name for c in crops}) == 2  # same file name in both splits, distinct ids
    assert crops[0].image.shape == (10, 50, 3) and crops[0].image.min() == 255


def test_docbank_pages(tmp_path):
    base = tmp_path / "A" / "docbank"
    _png(base / "images" / "doc_0.jpg", 200, 100)
    (base / "tokens").mkdir(parents=True)
    (base / "tokens" / "doc_0.txt").write_text(
        "Hello\t100\t100\t300\t200\t0\t0\t0\tCMR10\tparagraph\n"
        "##LTLine##\t0\t0\t1000\t10\t0\t0\t0\tx\tparagraph\n"
        "##LTFigure##\t0\t0\t1000\t10\t0\t0\t0\tx\tfigure\n", encoding="utf-8")
    (page,) = ds.iter_dev_pages("docbank", root=tmp_path)
    assert page.image.shape == (100, 200, 3)
    assert len(page.words) == 1
    text, poly = page.words[0]
    assert text == "Hello" and isinstance(poly, Polygon)
    assert poly.bbox.as_ints() == (20, 10, 60, 20)  # 0..1000 of width 200 / height 100


def test_wildreceipt_pages(tmp_path):
    base = tmp_path / "A" / "mmocr-wildreceipt-toy"
    base.mkdir(parents=True)
    _png(base / "1.jpeg", 64, 48)
    record = {"file_name": "tests/data/kie_toy_dataset/wildreceipt/1.jpeg", "height": 48, "width": 64,
              "annotations": [{"box": [10.0, 30.0, 50.0, 30.0, 50.0, 20.0, 10.0, 20.0], "text": "SAFEWAY", "label": 1},
                              {"box": [1, 40, 9, 40, 9, 45, 1, 45], "text": "", "label": 0}]}
    (base / "data.txt").write_text(json.dumps(record) + "\n", encoding="utf-8")
    (page,) = ds.iter_dev_pages("mmocr-wildreceipt-toy", root=tmp_path)
    assert page.name.endswith("1.jpeg")
    assert [t for t, _ in page.words] == ["SAFEWAY"]
    # the quad is reordered to TL, TR, BR, BL
    assert page.words[0][1].points == ((10.0, 20.0), (50.0, 20.0), (50.0, 30.0), (10.0, 30.0))
    assert len(page.ignore) == 1


def test_order_quad():
    assert ds.order_quad([(0, 10), (10, 10), (10, 0), (0, 0)]) == ((0, 0), (10, 0), (10, 10), (0, 10))
    assert ds.order_quad([(10, 0), (10, 10), (0, 10), (0, 0)]) == ((0, 0), (10, 0), (10, 10), (0, 10))


def test_pagexml_pages(tmp_path):
    base = tmp_path / "A" / "calamari-avicanon-pagexml"
    base.mkdir(parents=True)
    Image.new("1", (100, 80), 1).save(base / "006.mono.png")
    (base / "006.xml").write_text("""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2017-07-15">
 <Page imageFilename="006.nrm.png" imageHeight="80" imageWidth="100">
  <TextRegion id="r0"><Coords points="0,0 100,0 100,80 0,80"/>
   <TextLine id="l1"><Coords points="10,10 90,10 90,30 10,30"/>
    <TextEquiv index="1"><Unicode>wrong</Unicode></TextEquiv>
    <TextEquiv index="0"><Unicode>quòd medi-</Unicode></TextEquiv>
   </TextLine>
   <TextLine id="l2"><Coords points="10,40 90,40 90,60 10,60"/>
    <TextEquiv index="1"><Unicode>no ground truth</Unicode></TextEquiv>
   </TextLine>
   <TextEquiv index="0"><Unicode>region text is not a line</Unicode></TextEquiv>
  </TextRegion>
 </Page>
</PcGts>""", encoding="utf-8")
    (page,) = ds.iter_dev_pages("calamari-avicanon-pagexml", root=tmp_path)
    assert page.image.shape == (80, 100, 3) and page.image.dtype == np.uint8
    assert [t for t, _ in page.words] == ["quòd medi-"]
    assert page.words[0][1].bbox.as_ints() == (10, 10, 90, 30)


@pytest.fixture
def c_pdf(tmp_path):
    if shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils not installed")
    fpdf = pytest.importorskip("fpdf")
    folder = tmp_path / "C" / "debian-some-doc"
    folder.mkdir(parents=True)
    pdf = fpdf.FPDF(unit="pt", format=(300, 200))
    pdf.set_font("Helvetica", size=20)
    for words in (["Alpha", "Beta"], ["Gamma"]):
        pdf.add_page()
        pdf.set_xy(30, 40)
        pdf.cell(text=" ".join(words))
    path = folder / "doc.pdf"
    pdf.output(str(path))
    html = subprocess.run(["pdftotext", "-enc", "UTF-8", "-bbox-layout", str(path), "-"], capture_output=True,
                          check=True).stdout.decode("utf-8")
    html = html.replace(">Beta<", ">Be\x08ta<")  # a control char, as TeX math fonts produce: must still parse
    (folder / "doc.bbox.html").write_text(html, encoding="utf-8")
    return tmp_path


def test_c_pdf_word_crops(c_pdf):
    crops = list(ds.iter_dev_crops("c-pdf-word-crops", root=c_pdf))
    assert sorted(c.text for c in crops) == ["Alpha", "Gamma"]  # "Be\x08ta" dropped as unreliable
    for c in crops:
        h, w = c.image.shape[:2]
        assert c.image.ndim == 3 and 30 < h < 60 and w > 2 * h  # 20 pt at 150 dpi ~ 42 px per em
        assert c.image.min() < 100  # ink inside


def test_c_pdf_pages(c_pdf):
    pages = list(ds.iter_dev_pages("c-pdf-pages", root=c_pdf))
    assert len(pages) == 2
    assert pages[0].image.shape[:2] == (round(200 * 150 / 72), round(300 * 150 / 72))
    assert [t for t, _ in pages[0].words] == ["Alpha"] and len(pages[0].ignore) == 1
    assert [t for t, _ in pages[1].words] == ["Gamma"]
    x0, y0, x1, y1 = pages[1].words[0][1].bbox.as_ints()
    assert 30 * 150 / 72 <= x0 <= 36 * 150 / 72  # x=30 pt plus fpdf's cell margin
    assert len(list(ds.iter_dev_pages("c-pdf-pages", max_pages_per_pdf=1, root=c_pdf))) == 1


def test_unknown_set():
    with pytest.raises(KeyError):
        ds.iter_dev_crops("nope")
    with pytest.raises(KeyError):
        ds.iter_dev_pages("nope")
