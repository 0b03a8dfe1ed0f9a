"""The whole OCR flow, readable top to bottom.

source pages -> detect word polygons -> select and rectify crops -> recognize (crops of several pages in
one batch) -> cut a box read as several words into word boxes -> lay out words into lines and blocks -> Page.
Pages stream through in small groups, so a 500-page PDF is never held in memory; page loading (poppler, image
decoding) runs in a background thread and overlaps with the models.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from ocrapp.detection.model import DEFAULT_ARCH
from ocrapp.detection.line_height import LineHeightRule, extend_to_line_height
from ocrapp.detection.predictor import DetectionPredictor
from ocrapp.document import Document, Page, Polygon, Word
from ocrapp.export.pdf import encode_page_image
from ocrapp.io.sources import PageImage, iter_pages, probe_input
from ocrapp.layout import LayoutConfig, analyze_layout
from ocrapp.models_registry import default_detector_path, default_recognizer_path
from ocrapp.recognition.predictor import Recognizer, RecognizerConfig, resolve_device
from ocrapp.recognition.word_boxes import WordSpanConfig, word_spans
from ocrapp.rectify import RectifyConfig, crop_quads, crop_spans_on_page, quad_size, select_polygons, warp_crops

T = TypeVar("T")


@dataclass(frozen=True)
class OcrConfig:
    device: str = "auto"  # auto | cpu | cuda
    dpi: int = 200  # PDF rasterisation: ~28 px x-height for 10 pt text, near the recognizer's 32 px input
    detector_weights: Path | None = None  # default: models/detector_<arch>.safetensors
    detector_arch: str = DEFAULT_ARCH
    # longer page side the detector reads, px; None: the size stored in the weights (the shipped file: 1280, chosen
    # on held-out pages), 1024 is about 1.6x faster and merges more tightly set words
    detector_input_size: int | None = None
    recognizer_weights: Path | None = None  # default: models/recognizer_clip4str-s.safetensors
    pages_per_batch: int | None = None  # pages detected and recognised together; None: 4 on CPU, 16 on a GPU
    keep_page_images: bool = False  # store encoded page images in Page.image_data (for PDF export)
    min_confidence: float = 0.0  # words read with less confidence are dropped
    # On a CPU with native bf16 (AVX512-BF16, AMX), the detector and the recognizer's image tower run in bf16:
    # about half their time. False: fp32 on every CPU, so the same readings everywhere. GPUs autocast either way.
    low_precision: bool = True
    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    rectify: RectifyConfig = field(default_factory=RectifyConfig)
    # The box a word is reported with (hOCR, JSON, PDF text): a word without ascenders or descenders takes its
    # line's height (detection.line_height); the recognizer reads the detector's own box either way, which read
    # better (benchmarks: models/detector card, session 15). None: report the detector's boxes.
    line_height: LineHeightRule | None = field(default_factory=LineHeightRule)
    # A box read as several words (the detector merged them) is reported as one word each, cut at the crop's
    # gaps (recognition.word_boxes). None: one word with spaces, as read.
    word_spans: WordSpanConfig | None = field(default_factory=WordSpanConfig)
    layout: LayoutConfig = field(default_factory=LayoutConfig)


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Produce ``items`` in a background thread, at most ``depth`` ahead; exceptions re-raised in order."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((item, None))
            q.put((done, None))
        except BaseException as exc:  # handed to the consumer
            q.put((done, exc))

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            item, exc = q.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class OCR:
    """``OCR().read("report.pdf")`` -> Document; ``OCR().iter_pages(path)`` streams Page objects."""

    def __init__(self, config: OcrConfig = OcrConfig()) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.detector = DetectionPredictor.from_weights(
            config.detector_weights or default_detector_path(config.detector_arch), config.detector_arch,
            device=str(self.device), input_size=config.detector_input_size, low_precision=config.low_precision)
        recognizer = config.recognizer if config.low_precision else replace(config.recognizer,
                                                                             low_precision_image_tower=False)
        self.recognizer = Recognizer.from_pretrained(
            config.recognizer_weights or default_recognizer_path(), str(self.device), recognizer)

    # -- public API ---------------------------------------------------------------------------------------
    def read(self, path: str | Path, pages: str | None = None) -> Document:
        """OCR a whole image or PDF; page images are kept so that ``doc.export("pdf")`` works."""
        keep = OcrConfig(**{**self.config.__dict__, "keep_page_images": True})
        return Document(pages=list(self._run(path, pages, keep)), source=str(path))

    def iter_pages(self, path: str | Path, pages: str | None = None,
                   on_page_image: Callable[[Page, np.ndarray], None] | None = None) -> Iterator[Page]:
        """Stream pages; ``on_page_image`` receives each page with its image (e.g. a PDF writer)."""
        yield from self._run(path, pages, self.config, on_page_image)

    def read_images(self, images: Sequence[np.ndarray]) -> list[Page]:
        """OCR in-memory RGB page images."""
        sources = [PageImage(i, img, None, Path("<memory>")) for i, img in enumerate(images)]
        return self.process_pages(sources, self.config)

    # -- the steps ----------------------------------------------------------------------------------------
    def _run(self, path: str | Path, pages: str | None, config: OcrConfig,
             on_page_image: Callable[[Page, np.ndarray], None] | None = None) -> Iterator[Page]:
        info = probe_input(path, dpi=config.dpi, pages=pages)  # validates before anything is produced
        group_size = config.pages_per_batch or (4 if self.device.type == "cpu" else 16)
        # the loader thread runs ahead (a whole group on a GPU), so rasterisation overlaps the models
        ahead = 2 if self.device.type == "cpu" else group_size
        loaded = prefetch(iter_pages(path, dpi=config.dpi, info=info), depth=ahead)
        for group in chunked(loaded, group_size):
            for page, source in zip(self.process_pages(group, config), group):
                if on_page_image is not None:
                    on_page_image(page, source.image)
                yield page

    def process_pages(self, sources: Sequence[PageImage], config: OcrConfig) -> list[Page]:
        pages = []
        for source, boxes in zip(sources, self.read_boxes(sources, config)):
            words = [word for box in boxes for word in split_words(box, config.word_spans)]
            pages.append(assemble_page(source, words, config))
        return pages

    def read_boxes(self, sources: Sequence[PageImage], config: OcrConfig) -> list[list[ReadBox]]:
        """Per page, each box worth reading with its reading, in the detector's order: detection, crops, one
        recognizer pass over all pages' crops."""
        detections = self.detector.predict([s.image for s in sources])
        crops: list[np.ndarray] = []
        kept: list[list[tuple[Polygon, float]]] = []
        frames: list[list[np.ndarray]] = []
        for source, found in zip(sources, detections):
            page_words = select_words(source.image, found, config.rectify)
            polygons = [p for p, _ in page_words]
            kept.append(page_words)
            frames.append(crop_quads(polygons, config.rectify))
            crops.extend(warp_crops(source.image, polygons, frames[-1], config.rectify))
        readings = iter(self.recognizer.read(crops))
        boxes, crop_iter = [], iter(crops)
        for page_words, page_frames in zip(kept, frames):
            reported = page_words if config.line_height is None else extend_to_line_height(page_words,
                                                                                             config.line_height)
            boxes.append([ReadBox(Word(text, conf, polygon, score), next(crop_iter), frame)
                          for (polygon, score), (text, conf), frame in zip(reported, readings, page_frames)])
        return boxes


@dataclass(frozen=True)
class ReadBox:
    """A detected box as read: the word as reported (its box grown to its line's height), its crop, and the page
    quad the crop was warped from."""

    word: Word
    crop: np.ndarray
    crop_quad: np.ndarray


def split_words(box: ReadBox, config: WordSpanConfig | None) -> list[Word]:
    """The box's reading as one Word per word, each with its part of the box (``OcrConfig.word_spans``)."""
    word = box.word
    width, height = quad_size(box.crop_quad)
    if config is None or " " not in word.text.strip() or height > width:  # vertical crops were turned
        return [word]
    spans = word_spans(box.crop, word.text, config)
    if spans is None:
        return [word]
    parts = crop_spans_on_page(word.polygon, box.crop_quad, box.crop.shape[1], [(s.start, s.end) for s in spans])
    return [Word(s.text, word.confidence, part, word.detection_score) for s, part in zip(spans, parts)]


def select_words(image: np.ndarray, found: list[tuple[Polygon, float]],
                 config: RectifyConfig) -> list[tuple[Polygon, float]]:
    height, width = image.shape[:2]
    keep = select_polygons([p for p, _ in found], (width, height), [s for _, s in found], config)
    return [found[i] for i in keep]


def assemble_page(source: PageImage, words: list[Word], config: OcrConfig) -> Page:
    words = [w for w in words if w.text.strip() and w.confidence >= config.min_confidence]
    height, width = source.image.shape[:2]
    page = Page(index=source.index, width=width, height=height, blocks=analyze_layout(words, config.layout),
                dpi=source.dpi, source=str(source.source))
    if config.keep_page_images:
        page.image_data = encode_page_image(source.image)
    return page
