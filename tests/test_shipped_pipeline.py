"""The whole pipeline with the embedded models on the project's samples (a photographed letter, a PDF)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrapp.bench.metrics import bag_of_words_f1
from ocrapp.models_registry import default_detector_path, default_recognizer_path
from ocrapp.detection.model import DEFAULT_ARCH

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
# Relaxed bag-of-words recall measured with the weights in models/ when they were exported (see the README's
# sample output); bounds a few points lower so that a regression anywhere in the pipeline fails.
MIN_RECALL = {"letter-photo.jpg": 0.85, "annual-report.pdf": 0.9}  # measured 1.0 and 1.0 (session 26)

needs_models = pytest.mark.skipif(
    not (default_detector_path(DEFAULT_ARCH).exists() and default_recognizer_path().exists()),
    reason="embedded models not in models/ yet",
)


@pytest.fixture(scope="module")
def ocr():
    from ocrapp import OCR, OcrConfig

    return OCR(OcrConfig(device="cpu"))


@needs_models
@pytest.mark.parametrize("name", sorted(MIN_RECALL))
def test_samples_are_read(ocr, name: str) -> None:
    doc = ocr.read(SAMPLES / name)
    expected = (SAMPLES / name).with_suffix(".txt").read_text(encoding="utf-8")
    assert len(doc.pages) == expected.count("\f") + 1
    score = bag_of_words_f1(doc.text, expected, relaxed=True)
    assert score.recall >= MIN_RECALL[name], (score, doc.text[:300])
    for page in doc.pages:
        for word in page.words:
            box = word.bbox
            assert 0 <= box.x0 <= box.x1 <= page.width and 0 <= box.y0 <= box.y1 <= page.height


@needs_models
def test_low_precision_is_the_default_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from ocrapp import OCR, OcrConfig, accel

    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: True)
    default = OCR(OcrConfig(device="cpu"))
    assert default.detector.low_precision and default.recognizer.model.image_autocast == torch.bfloat16
    fp32 = OCR(OcrConfig(device="cpu", low_precision=False))
    assert not fp32.detector.low_precision and fp32.recognizer.model.image_autocast is None
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: False)
    assert OCR(OcrConfig(device="cpu")).recognizer.model.image_autocast is None  # no emulated bf16


@needs_models
def test_short_words_are_reported_with_their_lines_height_and_read_from_their_own_box(ocr, tmp_path: Path) -> None:
    """On a freshly generated page: the reported boxes fit the page's word boxes (which span their line) more
    tightly than the detector's own, losing none of the matches, and the text is the same, since the recognizer
    reads the detector's boxes either way."""
    import random
    from dataclasses import replace

    from ocrapp import OCR
    from ocrapp.detection.metrics import match_counts
    from ocrapp.training.data.pages import page_from_pdf
    from ocrapp.training.data.synth_doc import make_synthetic_pdf

    pdf = tmp_path / "fresh.pdf"
    rng = random.Random(24680)
    make_synthetic_pdf(rng, pdf, "letter")
    sample = page_from_pdf(pdf, 0, rng, dpi_range=(150, 150))
    ink = OCR(replace(ocr.config, line_height=None))
    (grown_page,), (ink_page,) = ocr.read_images([sample.image]), ink.read_images([sample.image])
    assert sorted(w.text for w in grown_page.words) == sorted(w.text for w in ink_page.words)  # order: the layout's
    changed = len({w.polygon for w in grown_page.words} - {w.polygon for w in ink_page.words})
    grown, kept = (match_counts(list(sample.quads), [w.polygon for w in page.words]) for page in (grown_page, ink_page))
    assert changed >= 5 and grown.matched >= kept.matched and grown.mean_iou >= kept.mean_iou + 0.01, (
        changed, grown.as_dict(), kept.as_dict())
