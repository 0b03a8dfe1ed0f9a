"""Where each word of a multi-word reading lies in its crop.

The detector merges tightly set words into one box ("of the", "x = 1"), and the recognizer reads such a box with
its spaces. Each space of the reading is placed at one blank column run of the crop's ink: the widest runs, one
per space. They are kept only when each is clearly wider than every other gap of the crop (the recognizer also
reads spaces into a monospaced path or a URL, whose letter gaps are as wide as the one it chose) and the words
they make are about as wide per character as each other (a cut inside a word leaves a far wider or narrower
piece). A word's span runs from the end of one chosen gap to the start of the next; the first and last words
keep the crop's own ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ocrapp.recognition.long_crops import blank_columns, blank_runs, ink_mask, text_height


@dataclass(frozen=True)
class WordSpanConfig:
    # Each chosen gap at least ``min_gap`` text heights wide and ``min_contrast`` times as wide as the widest gap
    # left. Chosen on 80 held-out pages of the training cache (benchmarks/word_spans.py, session 16): word-box
    # hmean not cut 0.8844; min_gap 0.08 / 0.25 / 0.3 / 0.4 with min_contrast 1.25: 0.8840 / 0.8859 / 0.8861 /
    # 0.8848; 0.3 with 1 / 1.5 / 2: 0.8859 / 0.8856 / 0.8852.
    min_gap: float = 0.3
    min_contrast: float = 1.25
    # The words a set of cuts makes may differ this much in width per character (widest / narrowest): "Mill"
    # and "WWW" are about 3x apart; a cut inside a word usually leaves a far wider or narrower piece.
    max_width_ratio: float = 4.0


@dataclass(frozen=True)
class WordSpan:
    text: str
    start: float  # crop columns, [start, end)
    end: float


def word_spans(crop: np.ndarray, text: str, cfg: WordSpanConfig = WordSpanConfig()) -> list[WordSpan] | None:
    """The words of ``text`` with their column spans in ``crop``; None when ``text`` is one word or its spaces
    cannot be placed on the crop's gaps."""
    words = text.split()
    if len(words) < 2 or crop.size == 0:
        return None
    ink = ink_mask(crop)
    blank = blank_columns(ink)
    if blank.all():
        return None
    runs = sorted(blank_runs(blank), key=lambda g: (g[0] - g[1], g[0]))  # widest first
    spaces = len(words) - 1
    if not cut_stands_out([e - s for s, e in runs], spaces, cfg.min_gap * text_height(ink), cfg.min_contrast):
        return None
    cuts = [x for gap in sorted(runs[:spaces]) for x in gap]  # word k spans (bounds[2k], bounds[2k + 1])
    inked = np.flatnonzero(~blank)
    ink_bounds = [int(inked[0])] + cuts + [int(inked[-1]) + 1]
    per_char = [(ink_bounds[2 * k + 1] - ink_bounds[2 * k]) / len(w) for k, w in enumerate(words)]
    if max(per_char) > cfg.max_width_ratio * min(per_char):
        return None
    bounds = [0] + cuts + [crop.shape[1]]
    return [WordSpan(w, float(bounds[2 * k]), float(bounds[2 * k + 1])) for k, w in enumerate(words)]


def cut_stands_out(widths: Sequence[int], k: int, min_width: float, min_contrast: float) -> bool:
    """Whether the ``k`` widest gaps (``widths`` sorted widest first) stand out: the k-th is at least
    ``min_width`` and ``min_contrast`` times as wide as the next one."""
    if not 0 < k <= len(widths) or widths[k - 1] < min_width:
        return False
    return k == len(widths) or widths[k - 1] >= min_contrast * widths[k]
