"""Text-recognition and end-to-end OCR metrics (pure Python).

Every comparison first applies NFKC (so ligatures, full-width forms and compatibility characters compare equal)
and strips surrounding whitespace; internal runs of whitespace are collapsed to one space.

Crop metrics (one prediction per ground truth):
  * ``exact``     - the strings are equal;
  * ``ci_alnum``  - equal after casefolding and keeping only [a-z0-9] (the usual STR "36-char" protocol);
  * ``one_minus_ned`` - 1 - Levenshtein(pred, gt) / max(len(pred), len(gt))  (1.0 when both are empty).

Page metrics:
  * bag-of-words F1, strict (NFKC tokens) or relaxed (casefolded, punctuation stripped at token edges);
  * end-to-end word recall/precision: predicted and GT boxes matched one-to-one at IoU >= 0.5 (greedy by IoU),
    a match counting as correct when the texts agree (strict or relaxed);
  * multi-word units (a line from a line-level reader, a receipt field) are cut into one box per word by
    ``split_by_char_share`` before matching; predictions mostly inside "ignore" regions are dropped
    (``drop_ignored``); page counts are pooled over a set with ``pool`` (micro-average).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

_WS = re.compile(r"\s+")
_NON_ALNUM = re.compile(r"[^a-z0-9]")

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def normalize(text: str) -> str:
    """NFKC, whitespace collapsed and stripped."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def ci_alnum(text: str) -> str:
    """Casefolded, only [a-z0-9] kept (after NFKC; accents are dropped with their letter)."""
    return _NON_ALNUM.sub("", normalize(text).casefold())


def relaxed_token(token: str) -> str:
    """Casefolded token without punctuation/symbols at its edges ("(Hello," -> "hello")."""
    token = normalize(token).casefold()
    start, end = 0, len(token)
    while start < end and unicodedata.category(token[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(token[end - 1])[0] in "PS":
        end -= 1
    return token[start:end]


def levenshtein(a: Sequence, b: Sequence) -> int:
    """Edit distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def one_minus_ned(pred: str, gt: str) -> float:
    pred, gt = normalize(pred), normalize(gt)
    longest = max(len(pred), len(gt))
    return 1.0 if longest == 0 else 1.0 - levenshtein(pred, gt) / longest


def exact_match(pred: str, gt: str) -> bool:
    return normalize(pred) == normalize(gt)


def ci_exact_match(pred: str, gt: str) -> bool:
    """Exact but for letter case (SROIE's ground truth, for one, is upper-cased whatever the print says)."""
    return normalize(pred).casefold() == normalize(gt).casefold()


def ci_alnum_match(pred: str, gt: str) -> bool:
    return ci_alnum(pred) == ci_alnum(gt)


@dataclass
class CropScores:
    n: int
    exact: float
    ci_exact: float
    ci_alnum: float
    one_minus_ned: float

    def as_dict(self) -> dict:
        return {"n": self.n, "exact": self.exact, "ci_exact": self.ci_exact, "ci_alnum": self.ci_alnum,
                "one_minus_ned": self.one_minus_ned}


def crop_scores(preds: Sequence[str], gts: Sequence[str]) -> CropScores:
    """Mean exact / case-insensitive exact / case-insensitive alphanumeric accuracy and 1-NED over pairs."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground truths")
    n = len(gts)
    if n == 0:
        return CropScores(0, 0.0, 0.0, 0.0, 0.0)
    return CropScores(
        n,
        sum(exact_match(p, g) for p, g in zip(preds, gts)) / n,
        sum(ci_exact_match(p, g) for p, g in zip(preds, gts)) / n,
        sum(ci_alnum_match(p, g) for p, g in zip(preds, gts)) / n,
        sum(one_minus_ned(p, g) for p, g in zip(preds, gts)) / n,
    )


@dataclass
class PRF:
    precision: float
    recall: float
    f1: float
    tp: int
    n_pred: int
    n_gt: int

    def as_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "tp": self.tp,
                "n_pred": self.n_pred, "n_gt": self.n_gt}


def _prf(tp: int, n_pred: int, n_gt: int) -> PRF:
    precision = tp / n_pred if n_pred else (1.0 if n_gt == 0 else 0.0)
    recall = tp / n_gt if n_gt else (1.0 if n_pred == 0 else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PRF(precision, recall, f1, tp, n_pred, n_gt)


def tokens(text_or_words: str | Iterable[str], relaxed: bool = False) -> list[str]:
    """Whitespace tokens of a text (or of each string of a list); relaxed tokens drop the ones that become empty."""
    parts = normalize(text_or_words).split() if isinstance(text_or_words, str) else \
        [t for w in text_or_words for t in normalize(w).split()]
    if relaxed:
        return [r for r in (relaxed_token(t) for t in parts) if r]
    return parts


def bag_of_words_f1(pred: str | Iterable[str], gt: str | Iterable[str], relaxed: bool = False) -> PRF:
    """Multiset overlap of the tokens: order-free, so it scores a page independent of reading order."""
    p, g = Counter(tokens(pred, relaxed)), Counter(tokens(gt, relaxed))
    return _prf(sum((p & g).values()), sum(p.values()), sum(g.values()))


def box_iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(pred: Sequence[Box], gt: Sequence[Box], iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one matches (pred index, gt index, IoU) with IoU >= threshold, greedily by decreasing IoU."""
    pairs = []
    for i, pb in enumerate(pred):
        for j, gb in enumerate(gt):
            if pb[0] < gb[2] and gb[0] < pb[2] and pb[1] < gb[3] and gb[1] < pb[3]:
                iou = box_iou(pb, gb)
                if iou >= iou_threshold:
                    pairs.append((iou, i, j))
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    used_p, used_g, matches = set(), set(), []
    for iou, i, j in pairs:
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            matches.append((i, j, iou))
    return matches


def end_to_end(pred: Sequence[tuple[str, Box]], gt: Sequence[tuple[str, Box]], iou_threshold: float = 0.5,
               relaxed: bool = False) -> PRF:
    """Word recall/precision: a true positive is a pred matched to a GT box (IoU >= threshold) with equal text
    (``exact_match``, or equal relaxed tokens when ``relaxed``)."""
    matches = match_boxes([b for _, b in pred], [b for _, b in gt], iou_threshold)
    if relaxed:
        same = lambda p, g: relaxed_token(p) == relaxed_token(g)  # noqa: E731
    else:
        same = exact_match
    tp = sum(same(pred[i][0], gt[j][0]) for i, j, _ in matches)
    return _prf(tp, len(pred), len(gt))


def detection_prf(pred: Sequence[Box], gt: Sequence[Box], iou_threshold: float = 0.5) -> PRF:
    """Text-agnostic box recall/precision at the IoU threshold."""
    return _prf(len(match_boxes(pred, gt, iou_threshold)), len(pred), len(gt))


def pool(scores: Iterable[PRF]) -> PRF:
    """Micro-average: true positives, predictions and ground truths summed over pages, then P/R/F1."""
    tp = n_pred = n_gt = 0
    for s in scores:
        tp, n_pred, n_gt = tp + s.tp, n_pred + s.n_pred, n_gt + s.n_gt
    return _prf(tp, n_pred, n_gt)


_TOKEN = re.compile(r"\S+")


def split_by_char_share(text: str, box: Box) -> list[tuple[str, Box]]:
    """One ``(token, box)`` per whitespace token of ``text`` (NFKC, whitespace collapsed): the box is cut along x
    in proportion to character positions, every character (spaces included) getting an equal share of the width.
    A single token keeps the whole box; an empty text gives nothing."""
    text = normalize(text)
    if not text:
        return []
    if " " not in text:
        return [(text, box)]
    x0, y0, x1, y1 = box
    step = (x1 - x0) / len(text)
    return [(m.group(), (x0 + m.start() * step, y0, x0 + m.end() * step, y1)) for m in _TOKEN.finditer(text)]


def box_coverage(inner: Box, outer: Box) -> float:
    """Share of ``inner``'s area that lies inside ``outer`` (0 for an empty ``inner``)."""
    ix = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    iy = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return ix * iy / area if area > 0 else 0.0


def drop_ignored(pred: Sequence[tuple[str, Box]], ignore: Sequence[Box],
                 min_coverage: float = 0.5) -> list[tuple[str, Box]]:
    """Predictions with at least ``min_coverage`` of their area inside one ignore region are removed: text there
    has no usable transcription, so reading it is neither a hit nor a false positive."""
    if not ignore:
        return list(pred)
    return [(t, b) for t, b in pred if all(box_coverage(b, g) < min_coverage for g in ignore)]


def regroup_to_units(pred: Sequence[tuple[str, Box]], units: Sequence[Box], min_coverage: float = 0.5,
                     joiner: str = "") -> list[tuple[str, Box]]:
    """Predicted words -> the ground truth's granularity, for sets whose units hold several words written without
    spaces (WildReceipt fields: "THANKYOUFORSHOPPING"). Each predicted word goes to the unit that covers most of
    its area (at least ``min_coverage``); a unit's words are joined left to right with ``joiner`` under their
    union box. Words no unit covers stay as they are."""
    groups: dict[int, list[tuple[str, Box]]] = {}
    rest: list[tuple[str, Box]] = []
    for text, box in pred:
        best, best_cov = -1, min_coverage
        for k, unit in enumerate(units):
            cov = box_coverage(box, unit)
            if cov >= best_cov and (best < 0 or cov > best_cov):
                best, best_cov = k, cov
        (groups.setdefault(best, []) if best >= 0 else rest).append((text, box))
    out = []
    for k in sorted(groups):
        words = sorted(groups[k], key=lambda w: (w[1][0], w[1][1]))
        boxes = [b for _, b in words]
        out.append((joiner.join(t for t, _ in words),
                    (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                     max(b[3] for b in boxes))))
    return out + rest
