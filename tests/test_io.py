"""Input stage: images, PDFs, page ranges, discovery, atomic writes -- with fixtures made here."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from fpdf import FPDF
from PIL import Image
from pypdf import PdfWriter

from ocrapp.errors import EncryptedPdfError, ExitCode, InputFileError, OcrError, OutputFileError, UsageError
from ocrapp.io import atomic_write, discover_inputs, iter_pages, load_image, parse_page_ranges, probe_input
from ocrapp.io import pdf as pdf_module


def _one_line_error(excinfo: pytest.ExceptionInfo, cls: type[OcrError], *fragments: str) -> str:
    err = excinfo.value
    assert type(err) is cls, f"expected {cls.__name__}, got {type(err).__name__}: {err}"
    assert "\n" not in err.message and err.message.strip() == err.message and err.message
    for fragment in fragments:
        assert fragment in err.message.lower(), err.message
    return err.message


def _marked_image(size=(120, 80), box=(10, 10, 40, 30), mode="RGB") -> Image.Image:
    """White image with one black rectangle: lets tests check where pixels end up."""
    img = Image.new("RGB", size, "white")
    img.paste((0, 0, 0), box)
    return img.convert(mode)


def _dark_centroid(arr: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(arr.mean(axis=2) < 128)
    return float(xs.mean()), float(ys.mean())


def _make_pdf(path: Path, pages: int = 3) -> Path:
    """A4 pages (points) with a filled black square whose position depends on the page number."""
    pdf = FPDF(unit="pt", format="A4")
    for i in range(pages):
        pdf.add_page()
        pdf.rect(50 + 100 * i, 100, 80, 80, style="F")
        pdf.set_font("helvetica", size=24)
        pdf.text(50, 400, f"Page {i + 1}")
    pdf.output(str(path))
    return path


# ---------------------------------------------------------------- images


@pytest.mark.parametrize(
    "fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("TIFF", ".tif"), ("WEBP", ".webp"), ("BMP", ".bmp")]
)
def test_load_each_format_as_rgb_uint8(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"page{suffix}"
    _marked_image().save(path, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    pages = list(iter_pages(path))
    assert len(pages) == 1
    page = pages[0]
    assert page.image.dtype == np.uint8 and page.image.shape == (80, 120, 3)
    cx, cy = _dark_centroid(page.image)
    assert abs(cx - 24.5) < 1.5 and abs(cy - 19.5) < 1.5
    assert page.index == 0 and page.source == path


def test_content_decides_not_extension(tmp_path: Path) -> None:
    path = tmp_path / "actually_png.jpg"
    _marked_image().save(path, format="PNG")
    assert probe_input(path).kind == "image"
    assert load_image(path).shape == (80, 120, 3)


def test_image_dpi_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    _marked_image().save(path, dpi=(300, 300))
    assert next(iter_pages(path)).dpi == pytest.approx(300, abs=0.5)
    bare = tmp_path / "bare.png"
    _marked_image().save(bare)
    assert next(iter_pages(bare)).dpi is None


def test_multipage_one_bit_tiff_with_page_range(tmp_path: Path) -> None:
    path = tmp_path / "fax.tiff"
    frames = [_marked_image(box=(10 + 30 * i, 10, 30 + 30 * i, 30), mode="1") for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="group4")
    info = probe_input(path)
    assert info.page_count == 3
    pages = list(iter_pages(path, pages="2-"))
    assert [p.index for p in pages] == [1, 2]
    for page in pages:
        assert page.image.dtype == np.uint8 and set(np.unique(page.image)) <= {0, 255}
        cx, _ = _dark_centroid(page.image)
        assert abs(cx - (19.5 + 30 * page.index)) < 1.0


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    img = _marked_image(size=(120, 80), box=(0, 0, 30, 20))  # mark at the top-left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(path, exif=exif, quality=95)
    arr = load_image(path)
    assert arr.shape == (120, 80, 3)
    cx, cy = _dark_centroid(arr)
    assert cx > 60 and cy < 30  # top-left of the stored image is top-right once displayed


def test_sixteen_bit_and_transparent_images(tmp_path: Path) -> None:
    deep = tmp_path / "deep.png"
    values = np.zeros((10, 20), dtype=np.uint16)
    values[:, 10:] = 65535
    Image.fromarray(values).save(deep)
    arr = load_image(deep)
    assert arr[0, 0].tolist() == [0, 0, 0] and arr[0, 15].tolist() == [255, 255, 255]

    clear = tmp_path / "clear.png"
    rgba = np.zeros((10, 20, 4), dtype=np.uint8)  # fully transparent black ...
    rgba[:, :5] = (0, 0, 0, 255)  # ... except an opaque black strip
    Image.fromarray(rgba, "RGBA").save(clear)
    arr = load_image(clear)
    assert arr[0, 10].tolist() == [255, 255, 255] and arr[0, 2].tolist() == [0, 0, 0]


def test_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    _marked_image(size=(100, 100)).save(path)
    with pytest.raises(InputFileError) as excinfo:
        probe_input(path, max_pixels=5000)
    _one_line_error(excinfo, InputFileError, "limit")
    assert probe_input(path, max_pixels=10_000).page_count == 1


def test_decompression_bomb_header_is_refused_without_decoding(tmp_path: Path) -> None:
    """A PNG whose header claims 100000 x 100000 pixels; only the header is read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(InputFileError) as excinfo:
        list(iter_pages(path))
    _one_line_error(excinfo, InputFileError)


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError) as excinfo:
        list(iter_pages(path))
    _one_line_error(excinfo, InputFileError, "truncated")


def test_garbage_with_image_magic(tmp_path: Path) -> None:
    path = tmp_path / "junk.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 10)
    with pytest.raises(InputFileError) as excinfo:
        list(iter_pages(path))
    _one_line_error(excinfo, InputFileError)


def test_text_file_renamed_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("just some text\n")
    with pytest.raises(InputFileError) as excinfo:
        probe_input(path)
    _one_line_error(excinfo, InputFileError, "not a supported image")


# ---------------------------------------------------------------- PDFs


def test_pdf_rendered_by_poppler_page_by_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _make_pdf(tmp_path / "doc.pdf")
    calls: list[tuple[int, int]] = []
    real = pdf_module.convert_from_path

    def spy(*args, **kwargs):
        calls.append((kwargs["first_page"], kwargs["last_page"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(pdf_module, "convert_from_path", spy)
    info = probe_input(path, dpi=72)
    assert info.kind == "pdf" and info.page_count == 3
    pages = iter_pages(path, dpi=72, info=info)
    first = next(pages)
    assert calls == [(1, 1)]  # streamed: nothing rendered ahead
    rest = list(pages)
    assert calls == [(1, 1), (2, 2), (3, 3)]
    for page in [first, *rest]:
        assert page.image.shape[0] == 842 and page.image.shape[1] in (595, 596) and page.dpi == 72
        cx, cy = _dark_centroid(page.image[:300])
        assert abs(cx - (90 + 100 * page.index)) < 2 and abs(cy - 140) < 2


def test_pdf_page_range_and_dpi(tmp_path: Path) -> None:
    path = _make_pdf(tmp_path / "doc.pdf")
    pages = list(iter_pages(path, dpi=36, pages="2-3"))
    assert [p.index for p in pages] == [1, 2]
    assert pages[0].image.shape[0] == 421 and pages[0].image.shape[1] in (297, 298)


def test_pdf_render_size_limit(tmp_path: Path) -> None:
    path = _make_pdf(tmp_path / "doc.pdf", pages=1)
    with pytest.raises(InputFileError) as excinfo:
        probe_input(path, dpi=600, max_pixels=10_000_000)
    _one_line_error(excinfo, InputFileError, "dpi")


def test_encrypted_pdf(tmp_path: Path) -> None:
    plain = _make_pdf(tmp_path / "plain.pdf", pages=2)
    locked = tmp_path / "locked.pdf"
    writer = PdfWriter(clone_from=plain)
    writer.encrypt("secret", algorithm="RC4-128")
    writer.write(locked)
    with pytest.raises(EncryptedPdfError) as excinfo:
        probe_input(locked)
    _one_line_error(excinfo, EncryptedPdfError, "encrypted")
    assert excinfo.value.exit_code == ExitCode.ENCRYPTED_PDF

    # owner-password-only (empty user password) PDFs open like plain ones
    restricted = tmp_path / "restricted.pdf"
    writer = PdfWriter(clone_from=plain)
    writer.encrypt("", owner_password="owner", algorithm="RC4-128")
    writer.write(restricted)
    assert len(list(iter_pages(restricted, dpi=20))) == 2


def test_pdf_without_pages(tmp_path: Path) -> None:
    path = tmp_path / "empty_doc.pdf"
    PdfWriter().write(path)
    with pytest.raises(InputFileError) as excinfo:
        probe_input(path)
    _one_line_error(excinfo, InputFileError, "no pages")


def test_non_pdf_renamed_pdf(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_text("<html>not a pdf</html>")
    with pytest.raises(InputFileError) as excinfo:
        probe_input(path)
    _one_line_error(excinfo, InputFileError, "not a pdf")


def test_broken_pdf(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n%garbage with no objects at all\n")
    with pytest.raises(InputFileError) as excinfo:
        list(iter_pages(path))
    _one_line_error(excinfo, InputFileError)


@pytest.mark.parametrize("case", ["missing", "empty", "directory"])
def test_bad_paths(tmp_path: Path, case: str) -> None:
    path = tmp_path / "input.pdf"
    if case == "empty":
        path.touch()
    elif case == "directory":
        path.mkdir()
    expected = {"missing": "no such file", "empty": "empty", "directory": "directory"}[case]
    with pytest.raises(InputFileError) as excinfo:
        list(iter_pages(path))
    _one_line_error(excinfo, InputFileError, expected)
    assert excinfo.value.exit_code == ExitCode.INPUT_FILE


# ---------------------------------------------------------------- page ranges


@pytest.mark.parametrize(
    "spec,count,expected",
    [
        ("2-5", 10, [1, 2, 3, 4]),
        ("1,3,7-", 8, [0, 2, 6, 7]),
        ("-2", 5, [0, 1]),
        ("3", 3, [2]),
        ("2-9", 4, [1, 2, 3]),
        (" 1 - 2 , 2 ", 5, [0, 1]),
    ],
)
def test_page_ranges(spec: str, count: int, expected: list[int]) -> None:
    assert parse_page_ranges(spec).indices(count) == expected


@pytest.mark.parametrize("spec", ["", "0", "3-1", "a-b", "1-2-3", "1 2", ",", "-"])
def test_bad_page_ranges(spec: str) -> None:
    with pytest.raises(UsageError) as excinfo:
        parse_page_ranges(spec)
    assert excinfo.value.exit_code == ExitCode.BAD_ARGS and "\n" not in excinfo.value.message


def test_page_range_past_the_end(tmp_path: Path) -> None:
    path = _make_pdf(tmp_path / "doc.pdf", pages=2)
    with pytest.raises(UsageError):
        probe_input(path, pages="5-6")


# ---------------------------------------------------------------- discovery and atomic writes


def test_discover_inputs(tmp_path: Path) -> None:
    for name in ["b.png", "a.PDF", "sub/c.tiff", "sub/z.jpg", "notes.txt", ".hidden/d.png", ".e.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in discover_inputs(tmp_path)]
    assert found == ["a.PDF", "b.png", "sub/c.tiff", "sub/z.jpg"]
    assert [p.name for p in discover_inputs(tmp_path, recursive=False)] == ["a.PDF", "b.png"]
    with pytest.raises(InputFileError):
        discover_inputs(tmp_path / "sub" / "z.jpg")
    (tmp_path / "void").mkdir()
    with pytest.raises(InputFileError):
        discover_inputs(tmp_path / "void")


def test_atomic_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.txt"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"

    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ocrapp.io.atomic.os.replace", fail)
    with pytest.raises(OutputFileError) as excinfo:
        atomic_write(target, "third")
    _one_line_error(excinfo, OutputFileError, "no space")
    assert target.read_bytes() == b"second"  # the old file is intact ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # ... and no temp file is left


def test_atomic_write_to_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputFileError) as excinfo:
        atomic_write(tmp_path / "nope" / "out.txt", "x")
    _one_line_error(excinfo, OutputFileError)
