"""Form rules in word crops: a line a word is typed on, a box edge above it, cut in by the word's box.

A rule is a thin horizontal run of ink across most of the crop, in its top or bottom ``band`` share (a dash or a
strike-through sits in the middle and is left alone). Where a stroke of a letter meets the rule (a descender
through it, a letter standing on it) the rule's pixels stay, so that no letter loses a piece; elsewhere they take
the paper's colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocrapp.recognition.long_crops import ink_mask


@dataclass(frozen=True)
class FormRuleConfig:
    min_length: float = 0.6  # of the crop's width
    band: float = 0.3  # rules only in this share of the height at the top and at the bottom
    max_rows: float = 0.3  # more rows of rules than this share of the height: not rules, left as they are
    min_aspect: float = 2.0  # crops narrower than this many heights (single characters) are left as they are


def rule_mask(ink: np.ndarray, cfg: FormRuleConfig = FormRuleConfig()) -> np.ndarray:
    """The pixels of ``ink`` that belong to rules and touch no letter's stroke (empty where there are none)."""
    h, w = ink.shape
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, int(cfg.min_length * w)), 1))
    lines = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)
    rows = np.flatnonzero(lines.any(axis=1))
    rows = rows[(rows < cfg.band * h) | (rows >= (1 - cfg.band) * h)]
    mask = np.zeros_like(ink)
    if len(rows) == 0 or len(rows) > cfg.max_rows * h:
        return mask
    mask[rows] = lines[rows]
    mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 1), np.uint8)).astype(bool)  # the rule's anti-aliased rim
    marked = np.flatnonzero(mask.any(axis=1))
    for run in np.split(marked, np.flatnonzero(np.diff(marked) > 1) + 1):
        top, bottom = run[0], run[-1]
        above = ink[top - 1] if top > 0 else np.zeros(w, bool)
        below = ink[bottom + 1] if bottom + 1 < h else np.zeros(w, bool)
        strokes = cv2.dilate((above | below).astype(np.uint8)[None], np.ones((1, 3), np.uint8))[0].astype(bool)
        mask[top:bottom + 1, strokes] = False
    return mask


def erase_form_rules(crop: np.ndarray, cfg: FormRuleConfig = FormRuleConfig()) -> np.ndarray:
    """``crop`` (RGB uint8) with its form rules painted in the paper's colour; the same array when it has none."""
    h, w = crop.shape[:2]
    if h < 8 or w < cfg.min_aspect * h:
        return crop
    ink = ink_mask(crop, margin=0.0).astype(bool)  # the whole height: rules lie at the top and bottom
    mask = rule_mask(ink, cfg)
    if not mask.any() or ink.all():
        return crop
    out = crop.copy()
    out[mask] = np.median(crop[~ink], axis=0).astype(np.uint8)
    return out
