"""Correcting unsure readings with a word list: a noisy channel over the recognizer's own scores.

A reading the recognizer is unsure of (confidence below ``LexiconConfig.below``) whose word is not in the list
("Arnount", "SECIION", "Markoting") gets candidates: listed words one edit away (a letter dropped, added, changed
or two swapped), or one look-alike swap away ("rn" for "m", "cl" for "d", "vv" for "w", ...) plus at most one
edit. Each candidate, in the reading's case pattern, is scored by the recognizer on the same crop (the log
probability its visual decoder gives that exact text, ``Clip4Str.text_log_prob``) plus ``prior_weight`` times
the word's log frequency; the reading itself gets the frequency of an unlisted word (``unknown_zipf``). The best
score wins, so a frequent word replaces the reading only where the image does not argue much against it.
"""

from __future__ import annotations

import gzip
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

# Letters the edits may insert or substitute: those of the six languages of the word list.
EDIT_LETTERS = "abcdefghijklmnopqrstuvwxyzàáâãäçèéêëìíîïñòóôõöùúûüýÿß"
# Letter groups a recognizer confuses at low resolution (both directions listed).
LOOK_ALIKES = (("rn", "m"), ("m", "rn"), ("cl", "d"), ("d", "cl"), ("vv", "w"), ("w", "vv"), ("li", "h"),
               ("h", "li"), ("ii", "u"), ("u", "ii"), ("nn", "m"), ("m", "nn"), ("in", "m"), ("m", "in"),
               ("iu", "m"), ("ni", "m"))
# A word token: punctuation around a run of letters.
_TOKEN = re.compile(r"^(\W*)([^\W\d_]+)(\W*)$")


@dataclass(frozen=True)
class LexiconConfig:
    # Readings at least this confident are kept as read. The held-out folders gain up to 0.97 (session 28,
    # benchmarks/lexicon.py, mean exact of 5 with session 27's recognizer: 0.8166 as read; below 0.9 / 0.93 / 0.95
    # / 0.97: 0.8288 / 0.8300 / 0.8302 / 0.8312), but they draw their words from the same frequency lists as the
    # word list; real text loses from 0.95 (a SROIE receipt line) and at 0.98 (a UW3 line, session 14), so 0.93.
    below: float = 0.93
    prior_weight: float = 1.0  # nats of image evidence one decade of word frequency is worth
    unknown_zipf: float = 1.0  # the frequency given to a word not in the list (Zipf scale: 1 = once per 100M)
    min_length: int = 3  # shorter words are left alone (codes, initials, units)
    # The list corrects only text in its languages: when fewer than this share of the confidently read words of a
    # batch (pages read together) are listed, nothing is corrected. Share of listed words in running text (wordfreq
    # frequencies, words of 3+ letters): 1.0 in the six languages, 0.62 Catalan, ~0.5 Dutch, Swedish, Danish, 0.33
    # Romanian, Indonesian, 0.14-0.19 Finnish, Polish, Czech, Turkish; in the recognizer's readings of 200-crop
    # chunks of real PDF words and FUNSD (session 14) 0.72 to 0.98.
    min_listed_share: float = 0.6
    min_judged_words: int = 20  # fewer confidently read words than this: too few to judge, corrections allowed


class Lexicon:
    """Lower-case words and their Zipf frequencies (log10 of occurrences per billion words)."""

    def __init__(self, zipf: dict[str, float]) -> None:
        self.zipf = zipf

    @classmethod
    def load(cls, path: str | Path) -> "Lexicon":
        """A gzipped "word<TAB>zipf" file (``python -m ocrapp.training.data.build_lexicon``)."""
        with gzip.open(path, "rt", encoding="utf-8") as f:
            pairs = (line.rstrip("\n").split("\t") for line in f)
            return cls({word: float(z) for word, z in pairs})

    def __contains__(self, word: str) -> bool:
        return word in self.zipf

    def __len__(self) -> int:
        return len(self.zipf)

    def candidates(self, word: str) -> list[str]:
        """Listed words near ``word`` (lower case): one edit, or one look-alike swap plus at most one edit."""
        low = word.lower()
        swapped = look_alike_swaps(low)
        pool = edits1(low) | swapped
        for variant in swapped:
            pool |= edits1(variant)
        pool.discard(low)
        return sorted(w for w in pool if w in self.zipf)


def edits1(word: str) -> set[str]:
    """All strings one deletion, transposition, substitution or insertion (of ``EDIT_LETTERS``) away."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = set()
    for head, tail in splits:
        if tail:
            out.add(head + tail[1:])
            out.update(head + c + tail[1:] for c in EDIT_LETTERS)
        if len(tail) > 1:
            out.add(head + tail[1] + tail[0] + tail[2:])
        out.update(head + c + tail for c in EDIT_LETTERS)
    return out


def look_alike_swaps(word: str) -> set[str]:
    """``word`` with one occurrence of one look-alike group replaced by its partner."""
    out = set()
    for src, dst in LOOK_ALIKES:
        start = word.find(src)
        while start >= 0:
            out.add(word[:start] + dst + word[start + len(src):])
            start = word.find(src, start + 1)
    return out


def match_case(word: str, pattern: str) -> str:
    """``word`` (lower case) written like ``pattern``: all capitals (allowing one slip, "SECIiON"), capitalised,
    or lower case."""
    capitals = sum(ch.isupper() for ch in pattern)
    if len(pattern) > 1 and capitals >= len(pattern) - 1:
        return word.upper()
    if pattern[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def word_tokens(tokens: Sequence[str], min_length: int) -> list[tuple[int, tuple[str, str, str]]]:
    """(index, (leading punctuation, letters, trailing punctuation)) of the tokens that are words of at least
    ``min_length`` letters ("(Arnount):" -> "(", "Arnount", "):"); tokens with digits or inner punctuation are not."""
    matches = ((k, _TOKEN.match(token)) for k, token in enumerate(tokens))
    return [(k, m.groups()) for k, m in matches if m and len(m.group(2)) >= min_length]


def in_listed_language(readings: Sequence[tuple[str, float]], lexicon: Lexicon, cfg: LexiconConfig) -> bool:
    """Whether the confidently read words of ``readings`` (text, confidence) look like the list's languages."""
    words = [core.lower() for text, conf in readings if conf >= cfg.below
             for _, (_, core, _) in word_tokens(text.split(" "), cfg.min_length)]
    if len(words) < cfg.min_judged_words:
        return True
    return sum(w in lexicon for w in words) >= cfg.min_listed_share * len(words)


def propose(text: str, lexicon: Lexicon, cfg: LexiconConfig) -> list[tuple[str, float]]:
    """Corrections of ``text``: (the text with one unlisted word replaced by a listed one, that word's Zipf
    frequency). Words are the space-separated tokens whose core is letters only."""
    tokens = text.split(" ")
    out = []
    for k, (lead, core, trail) in word_tokens(tokens, cfg.min_length):
        if core.lower() in lexicon:
            continue
        for word in lexicon.candidates(core):
            fixed = tokens[:k] + [lead + match_case(word, core) + trail] + tokens[k + 1:]
            out.append((" ".join(fixed), lexicon.zipf[word]))
    return out


def choose(reading_log_prob: float, candidates: list[tuple[str, float]], log_probs: list[float],
           cfg: LexiconConfig) -> str | None:
    """The candidate whose image evidence plus frequency prior beats the reading's (None: keep the reading)."""
    weight = cfg.prior_weight * math.log(10)
    best, best_score = None, reading_log_prob + weight * cfg.unknown_zipf
    for (text, zipf), log_prob in zip(candidates, log_probs):
        score = log_prob + weight * zipf
        if score > best_score:
            best, best_score = text, score
    return best


def apply_corrections(readings: Sequence[tuple[str, float]],
                      scored: Sequence[tuple[int, list[tuple[str, float]], float, list[float]]],
                      cfg: LexiconConfig) -> list[tuple[str, float]]:
    """``readings`` with each scored one below ``cfg.below`` replaced by its chosen correction (``choose``); the
    confidence stays the reading's. ``scored``: ``Recognizer.score_corrections``'s output."""
    out = list(readings)
    for i, candidates, reading_score, candidate_scores in scored:
        better = choose(reading_score, candidates, candidate_scores, cfg) if readings[i][1] < cfg.below else None
        if better is not None:
            out[i] = (better, readings[i][1])
    return out
