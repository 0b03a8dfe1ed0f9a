"""The ocrapp command line end to end, with small weight files the tests build (random weights: these tests
check the plumbing and the error contract, not accuracy; test_shipped_models.py checks accuracy)."""

from __future__ import annotations

import io
import struct
import zlib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfWriter
from typer.testing import CliRunner

from ocrapp.cli import app
from ocrapp.detection.model import DEFAULT_ARCH, build_detector, export_fp16_safetensors
from ocrapp.errors import ExitCode
from ocrapp.recognition.clip4str.config import CONFIGS
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.weights import save_recognizer

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    detector = folder / "detector.safetensors"
    export_fp16_safetensors(build_detector(DEFAULT_ARCH), detector)
    recognizer = folder / "recognizer.safetensors"
    save_recognizer(Clip4Str(CONFIGS["clip4str-tiny"]), recognizer)
    return ["--detector", str(detector), "--recognizer", str(recognizer), "--device", "cpu"]


@pytest.fixture(scope="module")
def page_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pages") / "page.png"
    image = Image.new("RGB", (800, 600), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 28)
    for row, line in enumerate(["Invoice 2026-0417", "Total due 245.50 EUR", "Thank you"]):
        draw.text((60, 60 + 60 * row), line, font=font, fill="black")
    image.save(path)
    return path


def run(args: list[str]):
    return CliRunner().invoke(app, args)


def assert_one_line_error(result, code: ExitCode) -> None:
    assert result.exit_code == int(code), (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocrapp: error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_help_lists_commands_and_exit_codes() -> None:
    result = run(["--help"])
    assert result.exit_code == 0
    for word in ("scan", "pdf", "batch", "recognize", "Exit codes", "encrypted_pdf"):
        assert word in result.stdout


def test_scan_writes_valid_hocr_atomically(weights: list[str], page_png: Path, tmp_path: Path) -> None:
    out = tmp_path / "page.hocr"
    result = run(["scan", str(page_png), "--out", "hocr", "--output", str(out), *weights])
    assert result.exit_code == 0, result.stderr
    root = ET.fromstring(out.read_bytes())
    pages = [e for e in root.iter() if e.get("class") == "ocr_page"]
    assert len(pages) == 1 and "bbox 0 0 800 600" in pages[0].get("title", "")
    assert [p.name for p in tmp_path.iterdir()] == ["page.hocr"]  # no temporary leftovers


@pytest.fixture
def built_ocrs(monkeypatch) -> list:
    """Every pipeline.OCR the CLI builds during the test, in order."""
    from ocrapp import pipeline

    built = []

    class RecordingOCR(pipeline.OCR):
        def __init__(self, config: pipeline.OcrConfig) -> None:
            super().__init__(config)
            built.append(self)

    monkeypatch.setattr(pipeline, "OCR", RecordingOCR)
    return built


def test_detector_size_option_sets_the_detector_input(weights: list[str], page_png: Path, built_ocrs) -> None:
    built = built_ocrs
    result = run(["scan", str(page_png), "--detector-size", "640", *weights])
    assert result.exit_code == 0, result.stderr
    assert [ocr.detector.input_size for ocr in built] == [640]
    result = run(["scan", str(page_png), "--detector-size", "100", *weights])
    assert result.exit_code == 2 and "--detector-size" in result.stderr


def test_no_lexicon_option_turns_the_word_list_off(weights: list[str], page_png: Path, built_ocrs) -> None:
    built = built_ocrs
    for flags in ([], ["--no-lexicon"]):
        result = run(["scan", str(page_png), *flags, *weights])
        assert result.exit_code == 0, result.stderr
    assert [ocr.recognizer.lexicon is not None for ocr in built] == [True, False]
    assert len(built[0].recognizer.lexicon) > 150_000


def test_pdf_command_streams_selected_pages_to_json(weights: list[str], tmp_path: Path) -> None:
    from reportlab.pdfgen.canvas import Canvas

    pdf = tmp_path / "three.pdf"
    canvas = Canvas(str(pdf))
    for n in range(3):
        canvas.setFont("Helvetica", 14)
        canvas.drawString(72, 700, f"Page number {n + 1}")
        canvas.showPage()
    canvas.save()
    out = tmp_path / "three.json"
    result = run(["pdf", str(pdf), "--pages", "2-3", "--dpi", "72", "--out", "json", "--output", str(out), *weights])
    assert result.exit_code == 0, result.stderr
    import json

    data = json.loads(out.read_text())
    assert [p["index"] for p in data["pages"]] == [1, 2]


def test_searchable_pdf_needs_an_output_path(weights: list[str], page_png: Path) -> None:
    assert_one_line_error(run(["scan", str(page_png), "--out", "pdf", *weights]), ExitCode.BAD_ARGS)


def make_bad_inputs(folder: Path) -> dict[str, tuple[Path, ExitCode]]:
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    truncated = folder / "truncated.png"
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(buf, "PNG")
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    fake_pdf = folder / "fake.pdf"
    fake_pdf.write_text("this is not a PDF")
    encrypted = folder / "secret.pdf"
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("password")
    with open(encrypted, "wb") as fh:
        writer.write(fh)
    no_pages = folder / "no-pages.pdf"
    with open(no_pages, "wb") as fh:
        PdfWriter().write(fh)
    bomb = folder / "bomb.png"  # a header claiming 40000 x 40000 pixels: refused before any decoding
    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return {
        "no_pages": (no_pages, ExitCode.INPUT_FILE),
        "bomb": (bomb, ExitCode.INPUT_FILE),
        "missing": (folder / "nope.png", ExitCode.INPUT_FILE),
        "empty": (empty, ExitCode.INPUT_FILE),
        "truncated": (truncated, ExitCode.INPUT_FILE),
        "fake_pdf": (fake_pdf, ExitCode.INPUT_FILE),
        "encrypted": (encrypted, ExitCode.ENCRYPTED_PDF),
        "directory": (folder, ExitCode.INPUT_FILE),
    }


def test_bad_inputs_give_one_line_and_no_output(weights: list[str], tmp_path: Path) -> None:
    bad = make_bad_inputs(tmp_path / "in")
    for name, (path, code) in bad.items():
        out = tmp_path / f"{name}.txt"
        command = "pdf" if path.suffix == ".pdf" else "scan"
        assert_one_line_error(run([command, str(path), "--output", str(out), *weights]), code)
        assert not out.exists(), name


def test_missing_weights_name_the_file(weights: list[str], page_png: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-recognizer.safetensors"
    result = run(["scan", str(page_png), *weights[:2], "--recognizer", str(missing), "--device", "cpu"])
    assert_one_line_error(result, ExitCode.MODEL)
    assert "no-such-recognizer.safetensors" in result.stderr


def test_batch_skips_failures_and_completes_the_rest(weights: list[str], page_png: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "good.png").write_bytes(page_png.read_bytes())
    (folder / "good2.png").write_bytes(page_png.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    result = run(["batch", str(folder), "--out", "json", "--output-dir", str(out), *weights])
    assert result.exit_code == int(ExitCode.PARTIAL), result.stderr
    assert "broken.png" in result.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["good2.json", "sub/good.json"]


def test_recognize_prints_path_text_confidence(weights: list[str], tmp_path: Path) -> None:
    crop = tmp_path / "word.png"
    Image.new("RGB", (120, 32), "white").save(crop)
    result = run(["recognize", str(crop), str(crop), "--recognizer", weights[3], "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    path, text, conf = lines[0].split("\t")
    assert path == str(crop) and 0.0 <= float(conf) <= 1.0


def test_cuda_request_without_gpu_is_a_usage_error(weights: list[str], page_png: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    args = [a if a != "cpu" else "cuda" for a in weights]
    assert_one_line_error(run(["scan", str(page_png), *args]), ExitCode.BAD_ARGS)


def test_python_api_imports_outside_the_repository(tmp_path) -> None:
    """Scripts elsewhere import the installed package (a stale editable install once made it a bare namespace)."""
    import subprocess
    import sys

    code = "from ocrapp import OCR, OcrConfig; import ocrapp; print(ocrapp.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip().endswith("__init__.py")
