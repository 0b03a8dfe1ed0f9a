"""Long crops (text lines, long words, merged detections) are read in pieces the recognizer can take.

The model reads at most ``max_label_length`` characters from a 32x128 input; it was trained on word crops with a
small margin, long words squeezed into that input. So a crop wider than ``cut_aspect`` heights is cut at its word
spaces, each word keeping a margin like the training crops' (not the whole gap: receipts space words widely), and
the reads are joined with a space. A word wider than ``max_aspect`` heights is cut at its widest letter gaps (joined
with nothing), and only where no gap is found, blindly into overlapping windows whose reads are merged on their
common characters. Cutting a word at a letter gap costs more than squeezing it: with pieces of at most 4 heights,
dev PDF words read exactly fell from 0.96 to 0.90 ("Multiple" read as "Mu Iti ple").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

# How the read of a piece joins the read before it.
JOIN_SPACE, JOIN_NONE, JOIN_OVERLAP = " ", "", "overlap"


@dataclass(frozen=True)
class SplitConfig:
    cut_aspect: float = 4.0  # a crop wider than this many heights is cut at its word spaces (32x128 input: 4)
    # A piece is at most this many heights wide: the model reads words squeezed up to about this aspect (training
    # crops of long words are), and cutting a word at letter gaps costs more than the squeeze.
    max_aspect: float = 8.0
    overlap: float = 0.25  # share of a blind window repeated in the next one
    # Gap widths are measured in text heights (the rows that hold ink), not crop heights, so that loose and tight
    # crops cut alike: a letter gap is ~0.05-0.1 of the text height, a word space ~0.25-0.35.
    min_gap: float = 0.08  # a blank column run at least this wide may be cut
    space_gap: float = 0.2  # ... and may be a word space (cut, read as a space) when at least this wide:
    max_space_gap: float = 0.5  # the line's own split of its gap widths decides between these two bounds
    word_margin: float = 0.2  # margin kept on each side of a word, at most half the gap


@dataclass(frozen=True)
class Piece:
    start: int
    end: int
    join: str  # how its read attaches to the previous piece's (ignored for the first piece)


def ink_mask(crop: np.ndarray, margin: float = 0.12) -> np.ndarray:
    """Binary ink of the crop's middle band (Otsu split; ink is the minority class). The band leaves out
    ``margin`` of the height at the top and at the bottom, where descenders and ascenders of neighbouring lines
    intrude (0: the whole crop)."""
    gray = crop if crop.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(crop[..., :3]), cv2.COLOR_RGB2GRAY)
    h = gray.shape[0]
    top = int(margin * h)
    band = np.ascontiguousarray(gray[top: max(top + 1, int(np.ceil((1 - margin) * h)))])
    _, binary = cv2.threshold(band, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return binary if binary.mean() < 0.5 else 1 - binary


def blank_columns(ink: np.ndarray) -> np.ndarray:
    """Per column: True where it holds no ink (a stray pixel or two of noise allowed)."""
    return ink.sum(axis=0) <= max(1, int(0.02 * ink.shape[0]))


def text_height(ink: np.ndarray) -> int:
    """Rows between the first and last that hold a fair share of ink: the scale of the letters."""
    rows = np.flatnonzero(ink.sum(axis=1) > 0.02 * ink.shape[1])
    return int(rows[-1] - rows[0] + 1) if len(rows) else ink.shape[0]


def blank_runs(blank: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of the runs of blank columns that have ink on both sides."""
    padded = np.concatenate([[False], blank, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
    return [(s, e) for s, e in runs if s > 0 and e < len(blank)]


def has_space_gap(crop: np.ndarray, min_gap: float) -> bool:
    """Whether the crop's ink has a blank gap at least ``min_gap`` text heights wide between its ends."""
    if crop.size == 0:
        return False
    ink = ink_mask(crop)
    widths = [end - start for start, end in blank_runs(blank_columns(ink))]
    return bool(widths) and max(widths) >= min_gap * text_height(ink)


def word_space_threshold(widths: Sequence[int], letter_height: int, cfg: SplitConfig) -> float:
    """The narrowest gap read as a word space. Letter gaps in scans and wide fonts can pass the fixed
    ``space_gap``, so the line's gap widths are split in two (Otsu's criterion) and the split is kept between
    ``space_gap`` and ``max_space_gap`` text heights."""
    low, high = cfg.space_gap * letter_height, cfg.max_space_gap * letter_height
    values = np.sort(np.asarray(widths, np.float64))
    if len(values) < 4:
        return low
    best, threshold = -1.0, low
    for i in range(1, len(values)):
        if values[i] == values[i - 1]:
            continue
        left, right = values[:i], values[i:]
        between = len(left) * len(right) * (left.mean() - right.mean()) ** 2
        if between > best:
            best, threshold = between, values[i]
    return float(np.clip(threshold, low, high))


def plan_pieces(width: int, height: int, gaps: Sequence[tuple[int, int]], letter_height: int,
                cfg: SplitConfig, ink_span: tuple[int, int] | None = None, sure_spaces: bool = False) -> list[Piece]:
    """Cut [0, width) into pieces no wider than ``max_aspect * height``: one piece per word (between word-sized
    gaps), words too wide for one piece at their widest letter gaps, else into overlapping blind windows.
    ``ink_span`` (first, last + 1 column with ink) trims the blank ends of the crop like the gaps. ``sure_spaces``:
    only gaps of ``max_space_gap`` count as word spaces, as in a crop of a few words."""
    if width <= cfg.cut_aspect * height:  # one read; cutting short crops into words too was measured worse
        return [Piece(0, width, JOIN_NONE)]
    max_w = max(1, int(cfg.max_aspect * height))
    usable = [(s, e) for s, e in gaps if e - s >= cfg.min_gap * letter_height]
    if width <= max_w or sure_spaces:  # a few words: too few gaps for the line's own split, only sure spaces count
        space = cfg.max_space_gap * letter_height
    else:
        space = word_space_threshold([e - s for s, e in usable], letter_height, cfg)
    word_gaps = [(s, e) for s, e in usable if e - s >= space]
    letter_gaps = [(s, e) for s, e in usable if e - s < space]
    first, last = ink_span or (0, width)
    edges = [first] + [x for gap in word_gaps for x in gap] + [last]  # words are (edges[2k], edges[2k + 1])
    word_margin = int(cfg.word_margin * letter_height)
    pieces: list[Piece] = []
    for k in range(0, len(edges), 2):
        start, end = edges[k], edges[k + 1]
        left_room = start - (edges[k - 1] + start) // 2 if k else start
        right_room = (end + edges[k + 2]) // 2 - end if k + 2 < len(edges) else width - end
        margin = word_margin
        if end - start <= max_w:  # a margin must not push a word that fits into blind windows
            margin = min(margin, (max_w - (end - start)) // 2)
        start, end = start - min(margin, left_room), end + min(margin, right_room)
        pieces += _cut_word(start, end, max_w, letter_gaps, JOIN_SPACE if k else JOIN_NONE, cfg.overlap)
    return pieces


def _cut_word(start: int, end: int, max_w: int, gaps: Sequence[tuple[int, int]], join: str,
              overlap: float) -> list[Piece]:
    """[start, end) in pieces of at most ``max_w``: at the widest gap in the far part of each window when there is
    one (joined with nothing), else in overlapping blind windows."""
    pieces: list[Piece] = []
    pos = start
    while end - pos > max_w:
        window = [(s, e) for s, e in gaps if pos + 0.4 * max_w < (s + e) / 2 <= pos + max_w]
        if window:
            s, e = max(window, key=lambda g: (g[1] - g[0], g[0]))
            cut = (s + e) // 2
            pieces.append(Piece(pos, cut, join))
            pos, join = cut, JOIN_NONE
        else:
            pieces.append(Piece(pos, pos + max_w, join))
            pos, join = pos + max(1, int(max_w * (1 - overlap))), JOIN_OVERLAP
    pieces.append(Piece(pos, end, join))
    return pieces


def split_long_crop(crop: np.ndarray, cfg: SplitConfig = SplitConfig(),
                    sure_spaces: bool = False) -> tuple[list[np.ndarray], list[str]]:
    """The pieces of ``crop`` and how each one's read joins the previous one's (``sure_spaces``: see
    ``plan_pieces``)."""
    h, w = crop.shape[:2]
    if w <= cfg.cut_aspect * h:
        return [crop], [JOIN_NONE]
    ink = ink_mask(crop)
    blank = blank_columns(ink)
    inked = np.flatnonzero(~blank)
    span = (int(inked[0]), int(inked[-1]) + 1) if len(inked) else (0, w)
    plan = plan_pieces(w, h, blank_runs(blank), text_height(ink), cfg, span, sure_spaces)
    return [crop[:, p.start:p.end] for p in plan], [p.join for p in plan]


def merge_overlapping(left: str, right: str) -> str:
    """Join the reads of two overlapping windows: drop the longest suffix of ``left`` that starts ``right``."""
    for k in range(min(len(left), len(right)), 1, -1):
        if left.endswith(right[:k]):
            return left + right[k:]
    return left + right


def glues_spaced_reads(reads: Sequence[str], joins: Sequence[str]) -> bool:
    """Whether a piece read with a space in it is joined to a neighbour with nothing: the word it belongs to was
    cut at its widest gaps, and a word that holds a space was a run of words whose spaces were too narrow to be
    sure, so the cuts at its widest gaps were word spaces too ("very complicated" + "data" read "complicateddata")."""
    for k, read in enumerate(reads):
        glued = (k > 0 and joins[k] == JOIN_NONE) or (k + 1 < len(reads) and joins[k + 1] == JOIN_NONE)
        if glued and " " in read.strip():
            return True
    return False


def join_reads(reads: Sequence[str], joins: Sequence[str]) -> str:
    """The crop's text from its pieces' reads; runs of spaces (a read ending or starting in one) become one."""
    text = reads[0] if reads else ""
    for read, join in zip(reads[1:], joins[1:]):
        if join == JOIN_OVERLAP:
            text = merge_overlapping(text, read)
        elif read:
            text = f"{text}{join}{read}" if text else read
    return " ".join(text.split())
