"""Real word crops for the recognizer: words of born-digital Debian documentation PDFs, cut from rendered pages
with their text-layer boxes, written as shards (``shards.write_shard``) at the recognizer's input size.

    python -m ocrapp.training.data.pdf_crops --out ~/.cache/ocrapp/crops/pdf --max-crops 300000

* PDFs: ``fetch_debian_pdfs(DEFAULT_PACKAGES)`` (held-out packages are refused), unpacked under ``--pdf-root``.
* Walk: PDFs shuffled with ``--seed``; at most ``--pages-per-pdf`` random pages of each and at most
  ``--words-per-page`` random words of each page, so no document dominates.
* Page: rendered with pdftoppm at a random dpi in ``--dpi`` (log-uniform, ~70..300); boxes are the text layer's
  (PDF points scaled by the rendered pixel size / page size).
* Crop: the word box with random per-side padding, mostly tight to slightly loose and sometimes loose or slightly
  cut (as a detector's boxes are), mild degradations at low probability (blur, JPEG, noise), then
  ``resize_crop`` to 32x128 RGB.
* Phrases (``--phrase-share``): a share of the crops holds a word and the one or two that follow it on its line
  (same text-layer line, no word dropped between them, gaps of 0.08 to 1.2 heights with a column of no ink in
  each), labelled with one space between the words: a detector's box often holds words set close together, and
  they must be read with their spaces to be cut into words again (``recognition/word_boxes.py``).
* Dropped: unreliable text-layer words (``is_reliable_text``), labels longer than 25 chars or with characters
  outside the document charset (printable ASCII + Latin-1 letters + a few document symbols), tiny or vertical
  boxes, boxes over other words (rotated watermarks), blank crops (text hidden under a figure, white text), pages
  whose text layer looks like garbage.
* Split by document: a stable hash of each PDF's path puts 1 in ``VAL_BUCKETS`` into the validation split
  (``--split val``, the checkpoint selector's real words), the rest into ``--split train``. ``--exclude-visited``
  also drops every document whose pages another cache (the training cache built before the split) already used.
* Shards of ~``--shard-size`` crops (cut at page boundaries), named ``pdf_<n>``, written atomically.
  Resumable: numbering continues after the existing shards and pages already in a shard (listed in
  ``OUT/.visited_pages.txt``) are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import re
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import cv2
import numpy as np

from ocrapp.recognition.charset import DOCUMENT_CHARSET, normalize_label
from ocrapp.recognition.preprocess import resize_crop
from ocrapp.training.data.pdf_words import (
    DEFAULT_PACKAGES,
    HELD_OUT_PACKAGES,
    WordBox,
    fetch_debian_pdfs,
    is_reliable_text,
    pdf_page_count,
    read_word_boxes,
    render_page,
)
from ocrapp.training.data.shards import list_shards, write_shard

DEFAULT_OUT = Path.home() / ".cache/ocrapp/crops/pdf"
DEFAULT_PDF_ROOT = Path.home() / ".cache/ocrapp/debian"
CROP_HEIGHT, CROP_WIDTH = 32, 128
MAX_LABEL_LENGTH = 25
WORD_CHARSET = frozenset(DOCUMENT_CHARSET) - {" "}
MIN_BOX_HEIGHT = 8  # px of the rendered box (ascender to descender): below, the word is an unreadable smear
LONE_PUNCT_KEEP = 0.15  # lone punctuation "words" (".", ",", dot leaders split up) are frequent: keep a few
VISITED = ".visited_pages.txt"
_SHARD_RE = re.compile(r"^pdf_(\d+)$")
VAL_BUCKETS = 40
SPLITS = ("train", "val")


def document_split(key: str) -> str:
    """'val' or 'train' for a PDF, by a stable hash of its path relative to the PDF root."""
    bucket = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:4], "big") % VAL_BUCKETS
    return "val" if bucket == 0 else "train"


def visited_pages(cache: Path) -> set[str]:
    """The pages (``<pdf path relative to the PDF root>#<page index>``) already cut into a crop cache's shards."""
    visited = cache / VISITED
    if not visited.exists():
        return set()
    return {line for line in visited.read_text(encoding="utf-8").splitlines() if line}


def visited_documents(cache: Path) -> set[str]:
    """The documents (PDF paths relative to the PDF root) whose pages a crop cache has used."""
    return {page.rsplit("#", 1)[0] for page in visited_pages(cache)}


def clean_label(text: str) -> str | None:
    """The training label of a text-layer word, or None when the word must be dropped."""
    if not is_reliable_text(text):
        return None
    label = normalize_label(text).strip()
    if not label or len(label) > MAX_LABEL_LENGTH or " " in label:
        return None
    if any(ch not in WORD_CHARSET for ch in label):
        return None
    return label


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    from ocrapp.training.data.corpus import LANGUAGES, word_list

    return frozenset(w.casefold() for lang in LANGUAGES for w in word_list(lang, 50000))


def text_layer_looks_sane(labels: list[str], min_words: int = 20, min_known: float = 0.2) -> bool:
    """False for pages whose text layer is mostly garbage (broken font encodings): too few of the purely
    alphabetic words are known words of the six corpus languages."""
    alpha = [w.strip(".,;:!?()[]\"'").casefold() for w in labels]
    alpha = [w for w in alpha if len(w) >= 3 and w.isalpha()]
    if len(alpha) < min_words:
        return True  # too little evidence either way
    vocab = _vocabulary()
    return sum(w in vocab for w in alpha) / len(alpha) >= min_known


def covers_other_words(boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
    """True for each box that contains the centre of another word's box: rotated watermarks ("DRAFT" letters
    spanning several lines), text laid over text. Their crop does not show (only) their label."""
    if len(boxes) < 2:
        return np.zeros(len(boxes), bool)
    b = np.asarray(boxes, np.float64)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    inside = ((b[:, None, 0] < cx[None]) & (cx[None] < b[:, None, 2])
              & (b[:, None, 1] < cy[None]) & (cy[None] < b[:, None, 3]))
    np.fill_diagonal(inside, False)
    return inside.any(axis=1)


def _padding(rng: random.Random, h: float) -> tuple[float, float, float, float]:
    """Per-side padding in pixels (left, top, right, bottom) relative to the box height."""
    mode = rng.random()
    if mode < 0.6:  # tight to slightly loose: a good detector box
        lo, hi = -0.02, 0.15
    elif mode < 0.85:  # loose (DBNet unclip, generous boxes)
        lo, hi = 0.1, 0.3
    else:  # slightly cut or slightly loose, sides independent
        lo, hi = -0.08, 0.25
    pads = [rng.uniform(lo, hi) * h for _ in range(4)]
    pads[0] = max(pads[0], -0.03 * h)  # never cut more than a sliver off the first/last letter
    pads[2] = max(pads[2], -0.03 * h)
    return pads[0], pads[1], pads[2], pads[3]


def _degrade(crop: np.ndarray, rng: random.Random, p: float) -> np.ndarray:
    """Mild degradations of a crop already at the input size (so their strength does not depend on the dpi)."""
    from ocrapp.training.data import page_augment

    if rng.random() < p:
        crop = cv2.GaussianBlur(crop, (3, 3), rng.uniform(0.3, 0.9))
    if rng.random() < p:
        crop = page_augment.noise(crop, rng)
    if rng.random() < p:
        crop = page_augment.jpeg(crop, rng)
    return np.ascontiguousarray(crop)


def cut_word(page: np.ndarray, box_px: tuple[float, float, float, float], rng: random.Random,
             degrade_p: float = 0.08) -> np.ndarray | None:
    """One word crop (RGB uint8, 32x128) from an RGB page image; None for tiny, vertical or blank boxes."""
    x0, y0, x1, y1 = box_px
    bw, bh = x1 - x0, y1 - y0
    if bh < MIN_BOX_HEIGHT or bw < 3:
        return None
    H, W = page.shape[:2]
    left, top, right, bottom = _padding(rng, bh)
    a0, b0 = max(0, int(math.floor(x0 - left))), max(0, int(math.floor(y0 - top)))
    a1, b1 = min(W, int(math.ceil(x1 + right))), min(H, int(math.ceil(y1 + bottom)))
    if a1 - a0 < 3 or b1 - b0 < MIN_BOX_HEIGHT:
        return None
    crop = page[b0:b1, a0:a1]
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    if int(gray.max()) - int(gray.min()) < 48:
        return None  # nothing visible: hidden/white text or a box over an image
    crop = resize_crop(np.ascontiguousarray(crop), CROP_HEIGHT, CROP_WIDTH)
    return _degrade(crop, rng, degrade_p) if degrade_p > 0 else crop


class Pick(NamedTuple):
    """What to cut: the boxes of one word, or of the 2-3 words of a phrase (PDF points), and the label."""
    boxes: tuple[tuple[float, float, float, float], ...]
    label: str

    @property
    def box(self) -> tuple[float, float, float, float]:
        return enclosing_box(self.boxes)


def enclosing_box(boxes: Sequence[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    a = np.array(boxes, dtype=float)
    return float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 2].max()), float(a[:, 3].max())


def _same_line_neighbours(a: WordBox, b: WordBox, max_gap: float = 1.2, min_gap: float = 0.08) -> bool:
    """True when ``b`` follows ``a`` on its line as running text does: overlapping rows, ``b`` to the right,
    separated by at least ``min_gap`` and at most ``max_gap`` text heights. Wider gaps are table columns or tabs;
    narrower ones are the text layer splitting one printed word ("f" "rom", "\\rightmargin" "."), which must not
    be labelled with a space."""
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    height = max(ay1 - ay0, by1 - by0)
    overlap = min(ay1, by1) - max(ay0, by0)
    gap = bx0 - ax1
    return (a.line == b.line >= 0 and overlap > 0.5 * min(ay1 - ay0, by1 - by0)
            and min_gap * height <= gap <= max_gap * height)


def phrase_at(words: list[tuple[int, WordBox, str]], start: int, length: int) -> Pick | None:
    """The boxes and label of ``length`` words of one line starting at ``words[start]``: words that follow each
    other on the page (none dropped between them), joined with one space; None where no such phrase exists."""
    run = words[start:start + length]
    if len(run) < length or length < 2:
        return None
    for (i, a, _), (j, b, _) in zip(run, run[1:]):
        if j != i + 1 or not _same_line_neighbours(a, b):
            return None
    label = " ".join(label for _, _, label in run)
    if len(label) > MAX_LABEL_LENGTH:
        return None
    return Pick(tuple(wb.box for _, wb, _ in run), label)


def spaces_are_blank(gray: np.ndarray, boxes_px: Sequence[tuple[float, float, float, float]],
                     ink_contrast: int = 64) -> bool:
    """True when every gap between consecutive word boxes (pixels of a grey page) has a column free of ink. The
    text layer knows no rule-drawn glyphs: LaTeX's ``\\_`` is a rule, so "your_user_name" reaches it as three
    words, and a label with spaces would teach the recognizer to read underscores (and hyphens drawn alike) as
    spaces."""
    bx0, by0, bx1, by1 = enclosing_box(boxes_px)
    x0, y0 = max(0, int(math.floor(bx0))), max(0, int(math.floor(by0)))
    region = gray[y0:int(math.ceil(by1)), x0:int(math.ceil(bx1))]
    if region.size == 0:
        return False
    background = float(np.median(region))
    for (_, _, left, _), (right, _, _, _) in zip(boxes_px, boxes_px[1:]):
        g0, g1 = int(math.ceil(left)) - x0, int(math.floor(right)) - x0
        gap = region[:, max(0, g0):max(0, g1)]
        if gap.shape[1] == 0:
            return False
        inked = np.abs(gap.astype(np.int16) - background) > ink_contrast
        if inked.any(axis=0).all():
            return False
    return True


def crops_from_page(pdf: Path, page_index: int, rng: random.Random, dpi_range: tuple[float, float] = (70, 300),
                    max_words: int | None = 120, degrade_p: float = 0.08, phrase_share: float = 0.0
                    ) -> list[tuple[np.ndarray, str]]:
    """Render one page and cut (crop, label) pairs for up to ``max_words`` random usable words. With
    ``phrase_share`` > 0, that share of the picks is the word with the one or two words that follow it on its line
    (label "of the", as a detector's box of words set close together shows them), or nothing where the word has
    no such neighbours; 1 gives phrases only."""
    pages = read_word_boxes(pdf, page_index, page_index)
    if not pages or pages[0].width_pt <= 0 or pages[0].height_pt <= 0:
        return []
    pw = pages[0]
    words: list[tuple[int, WordBox, str]] = []
    covering = covers_other_words([wb.box for wb in pw.words])
    for index, (wb, covers) in enumerate(zip(pw.words, covering)):
        if covers:
            continue
        label = clean_label(wb.text)
        if label is None:
            continue
        x0, y0, x1, y1 = wb.box
        if len(label) >= 3 and (y1 - y0) > 1.5 * (x1 - x0):
            continue  # vertical text: the box would hold a rotated word
        if len(label) == 1 and not label.isalnum() and rng.random() > LONE_PUNCT_KEEP:
            continue
        words.append((index, wb, label))
    if not words or not text_layer_looks_sane([label for _, _, label in words]):
        return []
    starts = list(range(len(words)))
    if max_words is not None and len(starts) > max_words:
        starts = rng.sample(starts, max_words)
    picks: list[Pick] = []
    for start in starts:
        if phrase_share > 0 and rng.random() < phrase_share:
            phrase = phrase_at(words, start, rng.choice((2, 2, 3)))
            if phrase is not None:
                picks.append(phrase)
        else:
            picks.append(Pick((words[start][1].box,), words[start][2]))
    if not picks:
        return []
    lo, hi = dpi_range
    dpi = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    dpi = min(dpi, 3400 * 72.0 / max(pw.width_pt, pw.height_pt))  # huge pages (posters): cap the pixel size
    image = render_page(pdf, page_index, dpi)
    fx, fy = image.shape[1] / pw.width_pt, image.shape[0] / pw.height_pt  # pdftoppm rounds the pixel size
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if any(len(p.boxes) > 1 for p in picks) else None
    out = []
    for pick in picks:
        boxes_px = [(x0 * fx, y0 * fy, x1 * fx, y1 * fy) for x0, y0, x1, y1 in pick.boxes]
        if len(boxes_px) > 1 and not spaces_are_blank(gray, boxes_px):
            continue
        crop = cut_word(image, enclosing_box(boxes_px), rng, degrade_p)
        if crop is not None:
            out.append((crop, pick.label))
    return out


def _existing_shard_numbers(out: Path) -> list[int]:
    numbers = []
    for npy in list_shards(out):
        m = _SHARD_RE.match(npy.stem)
        if m and npy.parent == out:
            numbers.append(int(m.group(1)))
    return sorted(numbers)


def _count_existing(out: Path) -> int:
    total = 0
    for npy in list_shards(out):
        if npy.parent == out and _SHARD_RE.match(npy.stem):
            total += int(np.load(npy, mmap_mode="r").shape[0])
    return total


def _page_plan(pdfs: list[Path], seed: int, pages_per_pdf: int) -> Iterator[tuple[Path, int]]:
    """(pdf, page_index) in a seeded order: PDFs shuffled, then up to ``pages_per_pdf`` random pages of each."""
    rng = random.Random(seed)
    order = list(pdfs)
    rng.shuffle(order)
    for pdf in order:
        try:
            n = pdf_page_count(pdf)
        except Exception:
            continue
        if n < 1:
            continue
        prng = random.Random(f"{seed}/{pdf}")
        for page_index in prng.sample(range(n), min(pages_per_pdf, n)):
            yield pdf, page_index


def build_pdf_crops(out: Path, max_crops: int, packages: tuple[str, ...] = DEFAULT_PACKAGES,
                    pdf_root: Path = DEFAULT_PDF_ROOT, seed: int = 0, pages_per_pdf: int = 4,
                    words_per_page: int = 120, shard_size: int = 2000, dpi_range: tuple[float, float] = (70, 300),
                    degrade_p: float = 0.08, log_every_s: float = 60.0, pdfs: list[Path] | None = None,
                    split: str = "train", exclude_documents: frozenset[str] = frozenset(),
                    phrase_share: float = 0.0) -> int:
    """Write crops of the ``split``'s documents until ``out`` holds ``max_crops`` of them (or the plan runs
    out); documents in ``exclude_documents`` are skipped. Returns crops written now."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    bad = HELD_OUT_PACKAGES.intersection(packages)
    if bad:
        raise ValueError(f"held out for evaluation, never for training: {', '.join(sorted(bad))}")
    out.mkdir(parents=True, exist_ok=True)
    if pdfs is None:
        pdfs = fetch_debian_pdfs(tuple(packages), pdf_root)

    def document_key(pdf: Path) -> str:
        return str(pdf.relative_to(pdf_root) if pdf.is_relative_to(pdf_root) else pdf)

    def wanted(pdf: Path) -> bool:
        key = document_key(pdf)
        return document_split(key) == split and key not in exclude_documents

    pdfs = [p for p in pdfs if wanted(p)]
    numbers = _existing_shard_numbers(out)
    next_number = numbers[-1] + 1 if numbers else 0
    have = _count_existing(out)
    visited_path = out / VISITED
    visited = visited_pages(out)
    print(f"[pdf_crops] {len(pdfs)} PDFs; {have} crops in {len(numbers)} shards under {out}; "
          f"{len(visited)} pages done; target {max_crops}", flush=True)
    if have >= max_crops:
        return 0
    images: list[np.ndarray] = []
    labels: list[str] = []
    pending_pages: list[str] = []
    written, pages_seen, t0, last_log = 0, 0, time.time(), time.time()

    def flush() -> None:
        nonlocal next_number, written, images, labels, pending_pages
        if not images:
            return
        name = f"pdf_{next_number:05d}"
        write_shard(out, name, np.stack(images), labels)
        with open(visited_path, "a", encoding="utf-8") as fh:  # after the shard: a crash re-does, never skips
            fh.write("".join(p + "\n" for p in pending_pages))
            fh.flush()
            os.fsync(fh.fileno())
        written += len(images)
        print(f"[pdf_crops] wrote {name}.npy ({len(images)} crops); {have + written}/{max_crops} total, "
              f"{written / max(time.time() - t0, 1e-6):.1f} crops/s", flush=True)
        next_number += 1
        images, labels, pending_pages = [], [], []

    for pdf, page_index in _page_plan(pdfs, seed, pages_per_pdf):
        if have + written + len(images) >= max_crops:
            break
        key = f"{document_key(pdf)}#{page_index}"
        if key in visited:
            continue
        page_rng = random.Random(f"{seed}/{key}")
        try:
            crops = crops_from_page(pdf, page_index, page_rng, dpi_range, words_per_page, degrade_p, phrase_share)
        except Exception as exc:  # a broken PDF must not stop the engine
            print(f"[pdf_crops] skip {key}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            crops = []
        pages_seen += 1
        remaining = max_crops - have - written - len(images)
        for crop, label in crops[:remaining]:
            images.append(crop)
            labels.append(label)
        pending_pages.append(key)
        if len(images) >= shard_size:
            flush()
        if time.time() - last_log >= log_every_s:
            last_log = time.time()
            print(f"[pdf_crops] {pages_seen} pages, {written + len(images)} crops this run "
                  f"({have + written + len(images)}/{max_crops}), {time.time() - t0:.0f}s", flush=True)
    flush()
    print(f"[pdf_crops] done: {written} crops written this run, {have + written} in {out}", flush=True)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--max-crops", type=int, default=300_000, help="total crops wanted under --out")
    ap.add_argument("--packages", nargs="*", default=list(DEFAULT_PACKAGES))
    ap.add_argument("--pdf-root", type=Path, default=DEFAULT_PDF_ROOT, help="where Debian packages are unpacked")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pages-per-pdf", type=int, default=4)
    ap.add_argument("--words-per-page", type=int, default=120)
    ap.add_argument("--shard-size", type=int, default=2000)
    ap.add_argument("--dpi", type=float, nargs=2, default=(70.0, 300.0), metavar=("LO", "HI"))
    ap.add_argument("--degrade-p", type=float, default=0.08, help="probability of each degradation (blur/noise/JPEG)")
    ap.add_argument("--phrase-share", type=float, default=0.0,
                    help="share of crops holding 2-3 words of a line with their spaces (1: phrases only)")
    ap.add_argument("--split", choices=SPLITS, default="train",
                    help="which documents: 'val' holds 1 in %d PDFs out of training" % VAL_BUCKETS)
    ap.add_argument("--exclude-visited", type=Path, nargs="*", default=[], metavar="CACHE",
                    help="skip documents whose pages these crop caches already used")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    excluded = frozenset().union(*(visited_documents(c) for c in args.exclude_visited))
    build_pdf_crops(args.out, args.max_crops, tuple(args.packages), args.pdf_root, args.seed, args.pages_per_pdf,
                    args.words_per_page, args.shard_size, tuple(args.dpi), args.degrade_p, split=args.split,
                    exclude_documents=excluded, phrase_share=args.phrase_share)


if __name__ == "__main__":
    main()
