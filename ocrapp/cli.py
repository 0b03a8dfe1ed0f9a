"""The ``ocrapp`` command line (typer)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from tqdm import tqdm

from ocrapp.document import Document
from ocrapp.errors import EXIT_CODE_HELP, ExitCode, InputFileError, OcrError, OutputFileError

EPILOG = "Exit codes:\n\n" + "\n\n".join(f"  {line}" for line in EXIT_CODE_HELP.splitlines())

app = typer.Typer(
    name="ocrapp",
    help="Document OCR: finds the words on photos, scans and PDFs (docTR DBNet) and reads them (CLIP4STR).",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(str, Enum):
    text = "text"
    hocr = "hocr"
    json = "json"
    pdf = "pdf"
    alto = "alto"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


OUT_HELP = "Output format: text, hocr, json, alto, or pdf (a searchable PDF: the page image with an invisible text layer)."
DEVICE_OPT = typer.Option(Device.auto, "--device", help="Where the models run: auto picks CUDA when present.")
DETECTOR_OPT = typer.Option(None, "--detector", help="Detector weights (.safetensors); default: the embedded model.")
RECOGNIZER_OPT = typer.Option(None, "--recognizer", help="Recognizer weights (.safetensors); default: the embedded model.")
DETECTOR_SIZE_OPT = typer.Option(
    None, "--detector-size", min=256, max=4096,
    help="Longer page side the detector reads, in px; default: the size stored in the detector weights (1280 for "
         "the embedded one). 1024 is about 1.6x faster on a CPU but merges more tightly set words.")

FP32_OPT = typer.Option(
    False, "--fp32",
    help="On a CPU, run the models in fp32 only. By default the detector and the recognizer's image encoder use "
         "bf16 where the CPU computes it natively (AVX512-BF16 or AMX), about twice as fast; --fp32 gives the same "
         "text on every CPU. A GPU always runs in mixed precision.")

NO_LEXICON_OPT = typer.Option(
    False, "--no-lexicon",
    help="Keep every reading as the recognizer gives it. By default an unsure reading of a word missing from the "
         "embedded word list (six languages) is replaced by a listed word one letter away when the image supports "
         "it nearly as well ('Arnount' -> 'Amount'); names and codes the list lacks can suffer.")


def fail(message: str, code: ExitCode) -> None:
    typer.echo(f"ocrapp: error: {message}", err=True)
    raise typer.Exit(int(code))


def make_ocr(device: Device, dpi: int, detector: Optional[Path], recognizer: Optional[Path],
             detector_size: Optional[int] = None, fp32: bool = False, no_lexicon: bool = False, **extra):
    from ocrapp.pipeline import OCR, OcrConfig
    from ocrapp.recognition.predictor import RecognizerConfig

    if no_lexicon:
        extra["recognizer"] = RecognizerConfig(lexicon=None)
    try:
        return OCR(OcrConfig(device=device.value, dpi=dpi, detector_weights=detector, recognizer_weights=recognizer,
                             detector_input_size=detector_size, low_precision=not fp32, **extra))
    except ValueError as exc:  # e.g. --device cuda without a GPU
        fail(str(exc), ExitCode.BAD_ARGS)


def check_output_target(fmt: OutputFormat, output: Optional[Path]) -> None:
    if fmt is OutputFormat.pdf and output is None:
        fail("--out pdf writes a binary file: give --output FILE.pdf", ExitCode.BAD_ARGS)
    if output is not None and output.is_dir():
        fail(f"{output}: is a directory, expected a file path for --output", ExitCode.OUTPUT_FILE)
    if output is not None and not (output.parent if str(output.parent) else Path(".")).is_dir():
        fail(f"{output}: folder {output.parent} does not exist", ExitCode.OUTPUT_FILE)


def ocr_to_output(ocr, source: Path, fmt: OutputFormat, output: Optional[Path], pages: Optional[str],
                  progress: bool) -> int:
    """Run OCR on one file and write the result; returns the number of pages. Nothing is written on error."""
    from ocrapp.export import export_document
    from ocrapp.export.pdf import SearchablePdfWriter
    from ocrapp.io.atomic import atomic_write
    from ocrapp.io.sources import probe_input

    info = probe_input(source, dpi=ocr.config.dpi, pages=pages)
    bar = tqdm(total=len(info.indices), unit="page", desc=source.name, disable=not progress, file=sys.stderr)
    doc = Document(source=str(source))
    if fmt is OutputFormat.pdf:
        writer = SearchablePdfWriter(output)
        for page in ocr.iter_pages(source, pages, on_page_image=writer.add_page):
            doc.pages.append(page)
            bar.update(1)
        writer.close()
    else:
        for page in ocr.iter_pages(source, pages):
            doc.pages.append(page)
            bar.update(1)
        result = export_document(doc, fmt.value)
        if output is None:
            sys.stdout.write(result if result.endswith("\n") else result + "\n")
        else:
            atomic_write(output, result)
    bar.close()
    return len(doc.pages)


def guarded(fn):
    """Run a command body: OcrError -> one line and its exit code; anything else -> one line, exit 1."""
    try:
        return fn()
    except typer.Exit:
        raise
    except OcrError as exc:
        fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the CLI promises no tracebacks
        if os.environ.get("OCRAPP_DEBUG"):
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (set OCRAPP_DEBUG=1 for a traceback)", ExitCode.UNEXPECTED)


def show_progress() -> bool:
    return sys.stderr.isatty()


@app.command()
def scan(
    image: Path = typer.Argument(..., help="A photo, a scan (JPEG, PNG, TIFF, WebP, BMP) or a PDF."),
    out: OutputFormat = typer.Option(OutputFormat.text, "--out", "-o", help=OUT_HELP),
    output: Optional[Path] = typer.Option(None, "--output", help="Write here (atomically); default: stdout."),
    device: Device = DEVICE_OPT,
    detector: Optional[Path] = DETECTOR_OPT,
    recognizer: Optional[Path] = RECOGNIZER_OPT,
    detector_size: Optional[int] = DETECTOR_SIZE_OPT,
    fp32: bool = FP32_OPT,
    no_lexicon: bool = NO_LEXICON_OPT,
) -> None:
    """OCR an image (every frame of a multi-page TIFF) and print or write the text."""

    def body() -> None:
        check_output_target(out, output)
        ocr = make_ocr(device, 200, detector, recognizer, detector_size, fp32, no_lexicon)
        ocr_to_output(ocr, image, out, output, None, show_progress())

    guarded(body)


@app.command()
def pdf(
    document: Path = typer.Argument(..., help="The PDF to OCR (each page is rasterised with poppler)."),
    out: OutputFormat = typer.Option(OutputFormat.text, "--out", "-o", help=OUT_HELP),
    output: Optional[Path] = typer.Option(None, "--output", help="Write here (atomically); default: stdout."),
    pages: Optional[str] = typer.Option(None, "--pages", help="Pages to read, 1-based: '2-5', '1,3,7-9'."),
    dpi: int = typer.Option(200, "--dpi", min=50, max=1200, help="Rasterisation resolution."),
    device: Device = DEVICE_OPT,
    detector: Optional[Path] = DETECTOR_OPT,
    recognizer: Optional[Path] = RECOGNIZER_OPT,
    detector_size: Optional[int] = DETECTOR_SIZE_OPT,
    fp32: bool = FP32_OPT,
    no_lexicon: bool = NO_LEXICON_OPT,
) -> None:
    """OCR every page (or --pages) of a PDF, streaming page by page."""

    def body() -> None:
        from ocrapp.io.sources import check_file, sniff_kind

        check_file(document)
        if sniff_kind(document) != "pdf":
            raise InputFileError(f"{document}: not a PDF")
        check_output_target(out, output)
        ocr = make_ocr(device, dpi, detector, recognizer, detector_size, fp32, no_lexicon)
        ocr_to_output(ocr, document, out, output, pages, show_progress())

    guarded(body)


@app.command()
def batch(
    folder: Path = typer.Argument(..., help="A folder: every image and PDF under it is processed."),
    out: OutputFormat = typer.Option(OutputFormat.text, "--out", "-o", help=OUT_HELP),
    output_dir: Path = typer.Option(Path("ocrapp-out"), "--output-dir", help="Outputs mirror the input tree here."),
    dpi: int = typer.Option(200, "--dpi", min=50, max=1200, help="PDF rasterisation resolution."),
    device: Device = DEVICE_OPT,
    detector: Optional[Path] = DETECTOR_OPT,
    recognizer: Optional[Path] = RECOGNIZER_OPT,
    detector_size: Optional[int] = DETECTOR_SIZE_OPT,
    fp32: bool = FP32_OPT,
    no_lexicon: bool = NO_LEXICON_OPT,
) -> None:
    """OCR every image and PDF under FOLDER. A file that fails is reported and skipped; each output is written
    atomically, so an interrupted run leaves no half-written file. Exit 7 when some files failed."""

    def body() -> None:
        from ocrapp.export import EXTENSIONS
        from ocrapp.io.sources import discover_inputs

        inputs = discover_inputs(folder)
        if not inputs:
            fail(f"{folder}: no images or PDFs found", ExitCode.INPUT_FILE)
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"{output_dir}: cannot create: {exc.strerror or exc}", ExitCode.OUTPUT_FILE)
        ocr = make_ocr(device, dpi, detector, recognizer, detector_size, fp32, no_lexicon)
        failures = 0
        for source in tqdm(inputs, unit="file", desc="batch", file=sys.stderr, disable=not show_progress()):
            target = output_dir / source.relative_to(folder).with_suffix(EXTENSIONS[out.value])
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                ocr_to_output(ocr, source, out, target, None, progress=False)
            except OcrError as exc:
                failures += 1
                tqdm.write(f"ocrapp: skipped: {exc.message}", file=sys.stderr)
        typer.echo(f"ocrapp: {len(inputs) - failures} of {len(inputs)} files written to {output_dir}", err=True)
        if failures:
            raise typer.Exit(int(ExitCode.PARTIAL))

    guarded(body)


@app.command()
def recognize(
    crops: list[Path] = typer.Argument(..., help="Pre-cropped word or text-line images."),
    device: Device = DEVICE_OPT,
    recognizer: Optional[Path] = RECOGNIZER_OPT,
    fp32: bool = FP32_OPT,
    no_lexicon: bool = NO_LEXICON_OPT,
) -> None:
    """Read pre-cropped word images: prints path<TAB>text<TAB>confidence per crop (like CLIP4STR's read.py).
    A crop wider than 4 times its height (a text line) is read in pieces cut at its word spaces."""

    def body() -> None:
        from ocrapp.io.images import load_image
        from ocrapp.recognition.predictor import Recognizer, RecognizerConfig

        images = [load_image(path) for path in crops]  # every input validated before any output
        try:
            cfg = RecognizerConfig(low_precision_image_tower=not fp32)
            cfg = replace(cfg, lexicon=None) if no_lexicon else cfg
            model = Recognizer.from_pretrained(recognizer, device.value, cfg)
        except ValueError as exc:
            fail(str(exc), ExitCode.BAD_ARGS)
        for path, (text, conf) in zip(crops, model.read(images)):
            typer.echo(f"{path}\t{text}\t{conf:.4f}")

    guarded(body)


@app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """Hold ocrapp against Tesseract, EasyOCR and RapidOCR on the dev pages (all options: ocrapp bench --help)."""
    from ocrapp.bench.pages import main as bench_main

    bench_main(list(ctx.args), prog="ocrapp bench")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
