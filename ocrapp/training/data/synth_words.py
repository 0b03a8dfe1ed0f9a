"""Synthetic word images: fonts x corpus x degradations that cover scans, faxes and phone photos.

Command: ``python -m ocrapp.training.data.synth_words --out DIR --count N --workers 2 [--profile receipts]``
writes shards (see shards.py) of images already resized to the recognizer's input size.
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing as mp
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ocrapp.recognition.charset import DOCUMENT_CHARSET
from ocrapp.recognition.preprocess import resize_crop
from ocrapp.training.data.corpus import TextSampler
from ocrapp.training.data.fonts import FontFace, discover_fonts, discover_printer_faces
from ocrapp.training.data.page_augment import dot_matrix
from ocrapp.training.data.shards import list_shards, write_shard


@dataclass(frozen=True)
class RenderConfig:
    height: int = 32
    width: int = 128
    max_length: int = 25
    vocab_size: int = 40000
    held_out_fonts: bool = False  # True renders only the held-out families (for tests/evaluation)
    degrade: bool = True
    upper_share: float = 0.0  # see TextSampler
    field_share: float = 0.0
    dot_matrix_share: float = 0.04  # receipts and old printers
    # Thermal and other bitmap-font printers (receipts, tickets): glyphs rasterised without anti-aliasing at a
    # printer's resolution, then seen larger, so that every printer dot is a block of image pixels.
    pixel_print_share: float = 0.0
    # Old forms and faxes: scanned at a low resolution and binarised, so that counters fill ("e" as "o") or
    # thin strokes break, depending on where the threshold fell.
    binarised_scan_share: float = 0.0
    # Typewritten forms and letters (FUNSD's kind): a fixed-pitch face struck letter by letter, each letter a
    # little off the baseline and inked more or less, through a worn ribbon.
    typewriter_share: float = 0.0
    # Crops that cut into what stands beside the word on its page (the last letter of the word before, the first
    # of the word after, a table's rule), as annotated boxes and detectors cut them; the label stays the word.
    neighbour_share: float = 0.0
    # Till receipts (SROIE's kind): a monospaced or narrow face, its glyphs squeezed or stretched as a thermal
    # printer's font is, in grey ink that fades on white paper.
    narrow_face_share: float = 0.0
    condense_share: float = 0.0
    receipt_paper_share: float = 0.0
    # Printer and terminal faces mark their zeros (a slash or a dot inside) to tell them from "O".
    marked_zero_share: float = 0.0
    # Terminal and programming faces (fonts.PRINTER_FACE_DIRS), whose "M", "W" and zeros are shaped like a till
    # printer's font's; no effect where those font packages are not installed.
    printer_face_share: float = 0.0
    # Form fields (FUNSD's kind): the word typed or printed on a rule that runs past it (touching its baseline or
    # crossing its descenders), under a box's top edge, or in a box; solid, dashed or dotted; the crop takes the
    # rules in, as annotated boxes of forms do.
    form_rule_share: float = 0.0


# Characters that end or begin a neighbouring word, of which a crop catches a sliver.
NEIGHBOUR_GLYPHS = "aeinorstdlhmcEISTADNORL0123456789-/(),.:;*'\"$#%&"


# Named text and print mixes: "receipts" covers what the general mix has little of (all-caps lines, "LABEL: value"
# fields, dot-matrix and thermal print), added to training as a share of its own.
PROFILES = {
    "general": RenderConfig(neighbour_share=0.1),
    "receipts": RenderConfig(upper_share=0.6, field_share=0.3, dot_matrix_share=0.12, pixel_print_share=0.3,
                             neighbour_share=0.1),
    "scans": RenderConfig(upper_share=0.3, field_share=0.15, binarised_scan_share=0.6, typewriter_share=0.4,
                          neighbour_share=0.3),
    "thermal": RenderConfig(upper_share=0.7, field_share=0.35, dot_matrix_share=0.05, pixel_print_share=0.35,
                            neighbour_share=0.05, narrow_face_share=0.7, condense_share=0.5,
                            receipt_paper_share=0.8, marked_zero_share=0.35),
}
# Till-receipt print (the thermal mix) set mostly in printer faces (session 23).
PROFILES["printer"] = replace(PROFILES["thermal"], printer_face_share=0.8)
# Form fields: the scans mix with most words on or under a form's rules (session 27).
PROFILES["forms"] = replace(PROFILES["scans"], form_rule_share=0.7)
# Face names of the narrow (condensed) document faces ("Cond" also finds "Condensed").
NARROW_NAME_PARTS = ("Narrow", "Cond")


class WordRenderer:
    def __init__(self, cfg: RenderConfig, seed: int) -> None:
        self.cfg = cfg
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.fonts = discover_fonts(cfg.held_out_fonts)
        if not self.fonts:
            raise RuntimeError("no usable fonts under /usr/share/fonts (install fonts-liberation, fonts-dejavu ...)")
        self.sampler = TextSampler(self.rng, vocab_size=cfg.vocab_size, max_length=cfg.max_length,
                                   charset=DOCUMENT_CHARSET, upper_share=cfg.upper_share,
                                   field_share=cfg.field_share)
        self._font_cache: dict[tuple[Path, int], ImageFont.FreeTypeFont] = {}
        self._fixed_pitch: tuple[FontFace, ...] | None = None
        self._narrow: tuple[FontFace, ...] | None = None
        # found only for the styles that draw them (opening every printer face costs most of a second)
        self.printer_faces = discover_printer_faces(cfg.held_out_fonts) if cfg.printer_face_share > 0 else ()

    def _font(self, face: FontFace, size: int) -> ImageFont.FreeTypeFont:
        key = (face.path, size)
        if key not in self._font_cache:
            if len(self._font_cache) > 512:
                self._font_cache.clear()
            self._font_cache[key] = ImageFont.truetype(str(face.path), size)
        return self._font_cache[key]

    def fixed_pitch_faces(self) -> tuple[FontFace, ...]:
        """The monospaced faces (a typewriter's), found once: every letter advances as far as "M"."""
        if self._fixed_pitch is None:
            def fixed(face: FontFace) -> bool:
                font = self._font(face, 20)
                return len({font.getlength(c) for c in "iMW.1m"}) == 1
            self._fixed_pitch = tuple(f for f in self.fonts if fixed(f))
        return self._fixed_pitch

    def narrow_faces(self) -> tuple[FontFace, ...]:
        """Monospaced and condensed faces: the shapes of till-receipt printer fonts."""
        if self._narrow is None:
            narrow = tuple(f for f in self.fonts if any(part in f.path.stem for part in NARROW_NAME_PARTS))
            self._narrow = self.fixed_pitch_faces() + narrow
        return self._narrow

    def sample(self) -> tuple[np.ndarray, str]:
        for _ in range(50):
            text = self.sampler.sample()
            candidates = [f for f in self.rng.sample(self.fonts, min(8, len(self.fonts))) if f.covers(text)]
            if candidates:
                image = self.render(text, self.rng.choice(candidates))
                return resize_crop(image, self.cfg.height, self.cfg.width), text
        raise RuntimeError("no font covers the sampled texts")

    # -- rendering --------------------------------------------------------------------------------------
    def _colors(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        r = self.rng.random()
        if r < 0.7:  # dark ink on light paper
            paper = tuple(self.rng.randint(200, 255) for _ in range(3)) if self.rng.random() < 0.4 else (255,) * 3
            ink = tuple([self.rng.randint(0, 70)] * 3)
        elif r < 0.85:  # coloured ink or paper
            paper = tuple(self.rng.randint(150, 255) for _ in range(3))
            ink = tuple(self.rng.randint(0, 120) for _ in range(3))
        else:  # light on dark (headers, stamps, inverted table cells)
            paper = tuple(self.rng.randint(0, 110) for _ in range(3))
            ink = tuple(self.rng.randint(190, 255) for _ in range(3))
        return ink, paper

    def _receipt_colors(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Grey ink, from fresh to faded, on white or slightly grey thermal paper."""
        paper = (self.rng.randint(215, 255),) * 3
        return (self.rng.randint(0, min(170, paper[0] - 60)),) * 3, paper

    def _chance(self, share: float) -> bool:
        """Whether a print style or degradation of this ``share`` happens; a share of 0 draws no random number,
        so adding a style leaves the renders of configurations without it unchanged."""
        return self.cfg.degrade and share > 0 and self.rng.random() < share

    def render(self, text: str, face: FontFace) -> np.ndarray:
        pixel_print = self._chance(self.cfg.pixel_print_share)
        typewriter = not pixel_print and self._chance(self.cfg.typewriter_share)
        # a bitmap printer's glyphs are small: 13-26 dots per em
        size = self.rng.randint(13, 26) if pixel_print else self.rng.randint(18, 56)
        ink, paper = self._receipt_colors() if self._chance(self.cfg.receipt_paper_share) else self._colors()
        if self._chance(self.cfg.narrow_face_share):
            narrow = [f for f in self.narrow_faces() if f.covers(text)]
            face = self.rng.choice(narrow) if narrow else face
        if self._chance(self.cfg.printer_face_share):
            printer = [f for f in self.printer_faces if f.covers(text)]
            face = self.rng.choice(printer) if printer else face
        if typewriter:
            fixed = [f for f in self.fixed_pitch_faces() if f.covers(text)]
            face = self.rng.choice(fixed) if fixed else face
        font = self._font(face, size)
        zero_mark = None
        fixed_pitch = face in self.fixed_pitch_faces() or face in self.printer_faces
        if "0" in text and fixed_pitch and self._chance(self.cfg.marked_zero_share):
            zero_mark = self.rng.choice(("slash", "dot"))
        image, layout = (self._draw_typewritten(text, font, ink, paper) if typewriter
                         else self._draw(text, font, ink, paper, pixel_print, zero_mark))
        if self._chance(self.cfg.condense_share):
            image, layout = _scale_width(image, layout, self.rng.uniform(0.6, 1.25))
        if self._chance(self.cfg.form_rule_share):
            image, layout = self._add_form_rules(image, layout, font, ink)
        if not pixel_print and self._chance(self.cfg.neighbour_share):
            image, layout = self._add_neighbours(image, layout, font, ink)
        if not (pixel_print or typewriter) and self._chance(self.cfg.dot_matrix_share):
            image = dot_matrix(image, layout.line_height, self.rng)
        if self.cfg.degrade:
            image = self._geometric(image, paper)
        image = self._crop(image, layout)
        if self._chance(self.cfg.binarised_scan_share):
            image = self._binarised_scan(image)
        if self.cfg.degrade:
            image = self._photometric(image)
        return image

    def _binarised_scan(self, image: np.ndarray) -> np.ndarray:
        """The crop as a low-resolution bilevel scan: shrunk to a line height of 14-26 px, thresholded between
        ink and paper (a low threshold thins and breaks strokes, a high one fills counters), then enlarged back."""
        h, w = image.shape[:2]
        scale = min(1.0, self.rng.uniform(14, 26) / h)
        small = cv2.resize(image, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        dark, light = np.percentile(gray, 2), np.percentile(gray, 98)
        if light - dark < 20:
            return image
        ink_is_dark = np.median(gray) > (dark + light) / 2
        level = self.rng.uniform(0.3, 0.75) if ink_is_dark else self.rng.uniform(0.25, 0.7)
        bw = np.where(gray > dark + level * (light - dark), 255, 0).astype(np.uint8)
        interpolation = self.rng.choice([cv2.INTER_NEAREST, cv2.INTER_LINEAR])
        return cv2.cvtColor(cv2.resize(bw, (w, h), interpolation=interpolation), cv2.COLOR_GRAY2RGB)

    def _draw(self, text: str, font: ImageFont.FreeTypeFont, ink: tuple[int, ...], paper: tuple[int, ...],
              pixel_print: bool = False, zero_mark: str | None = None) -> tuple[np.ndarray, "_Layout"]:
        """The text on a canvas with a margin of one font size. ``pixel_print``: drawn without anti-aliasing, as a
        bitmap printer sets its dots, then enlarged 1.4-3.2 times with nearest-neighbour sampling. ``zero_mark``
        ("slash" or "dot", fixed-pitch faces only: letters sit at multiples of the advance) marks every zero."""
        size = int(font.size)
        x0, _, x1, _ = font.getbbox(text)
        tw = max(1, x1 - x0)
        ascent, descent = font.getmetrics()
        margin = size
        canvas = Image.new("RGB", (tw + 2 * margin, ascent + descent + 2 * margin), paper)
        draw = ImageDraw.Draw(canvas)
        if pixel_print:
            draw.fontmode = "1"
        if self.rng.random() < 0.08:  # rules and box edges near words, as in forms and tables
            y = margin + ascent + descent + self.rng.randint(0, 4)
            draw.line([(0, y), (canvas.width, y)], fill=ink, width=self.rng.randint(1, 2))
        draw.text((margin - x0, margin), text, font=font, fill=ink)
        if zero_mark:
            _mark_zeros(draw, text, font, (margin - x0, margin), ink, zero_mark)
        image = np.asarray(canvas)
        scale = 1.0
        if pixel_print:
            scale = self.rng.uniform(1.4, 3.2)
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_NEAREST)
        return image, _Layout(top=margin * scale, ascent=ascent * scale, descent=descent * scale,
                              left=margin * scale, width=tw * scale)

    def _draw_typewritten(self, text: str, font: ImageFont.FreeTypeFont, ink: tuple[int, ...],
                          paper: tuple[int, ...]) -> tuple[np.ndarray, "_Layout"]:
        """Struck letter by letter: each off the baseline and the pitch by up to a few percent of the size (worn
        typebars), each inked at its own strength (uneven keystrokes), the ribbon's weave leaving specks without
        ink, sometimes ink spread that fills the counters."""
        size = int(font.size)
        ascent, descent = font.getmetrics()
        margin = size
        advances = [font.getlength(ch) for ch in text]
        width = max(1.0, sum(advances))
        canvas = Image.new("L", (int(width) + 2 * margin, ascent + descent + 2 * margin), 0)
        draw = ImageDraw.Draw(canvas)
        wobble = self.rng.uniform(0.01, 0.05) * size
        weakest = self.rng.uniform(0.35, 0.9)
        x = float(margin)
        for ch, advance in zip(text, advances):
            if not ch.isspace():
                strength = round(255 * self.rng.uniform(weakest, 1.0))
                draw.text((x + self.rng.gauss(0, wobble / 2), margin + self.rng.gauss(0, wobble)), ch, font=font,
                          fill=strength)
            x += advance
        cover = np.asarray(canvas, np.float32) / 255.0
        h, w = cover.shape
        if self.rng.random() < 0.7:  # ribbon weave
            weave = self.np_rng.random((h // 2 + 1, w // 2 + 1)).astype(np.float32)
            weave = cv2.resize(weave, (w, h), interpolation=cv2.INTER_LINEAR)
            cover *= np.clip(weave * 2.5 + self.rng.uniform(-0.2, 0.5), 0.0, 1.0)
        if self.rng.random() < 0.3:  # ink spread
            cover = cv2.dilate(cover, np.ones((2, 2), np.uint8))
        cover = cover[..., None]
        image = np.asarray(paper, np.float32) * (1 - cover) + np.asarray(ink, np.float32) * cover
        layout = _Layout(top=margin, ascent=ascent, descent=descent, left=margin, width=width)
        return np.clip(image, 0, 255).astype(np.uint8), layout

    def _add_neighbours(self, image: np.ndarray, layout: "_Layout", font: ImageFont.FreeTypeFont,
                        ink: tuple[int, ...]) -> tuple[np.ndarray, "_Layout"]:
        """A glyph of the word before and/or after, 0.1-0.45 em away on the word's baseline (or, for a quarter of
        the sides, a rule from top to bottom), and the crop's edge on that side placed inside it: 10-40 % of the
        glyph shows, never all of it, so that it is a piece of a neighbour and not a letter of the word."""
        canvas = Image.fromarray(image)
        draw = ImageDraw.Draw(canvas)
        size = float(font.size)
        sides = self.rng.choice((("left",), ("right",), ("left", "right")))
        clips: dict[str, float] = {}
        for side in sides:
            gap = self.rng.uniform(0.1, 0.45) * size
            edge = layout.left - gap if side == "left" else layout.left + layout.width + gap
            if self.rng.random() < 0.25:
                stroke = self.rng.randint(1, 2)
                draw.line([(edge, 0), (edge, canvas.height)], fill=ink, width=stroke)
                outside = self.rng.uniform(0, 0.15) * size  # the rule in the crop, whole
                clips[side] = edge - stroke - outside if side == "left" else edge + stroke + outside
                continue
            glyph = self.rng.choice(NEIGHBOUR_GLYPHS)
            x0, _, x1, _ = font.getbbox(glyph)
            if x1 - x0 < 2:
                continue
            x = edge - x1 if side == "left" else edge - x0
            draw.text((x, layout.top), glyph, font=font, fill=ink)
            shown = self.rng.uniform(0.1, 0.4) * (x1 - x0)
            clip = edge - shown if side == "left" else edge + shown
            if 0 <= clip <= canvas.width:
                clips[side] = clip
        layout = replace(layout, clip_left=clips.get("left"), clip_right=clips.get("right"))
        return np.asarray(canvas), layout

    def _add_form_rules(self, image: np.ndarray, layout: "_Layout", font: ImageFont.FreeTypeFont,
                        ink: tuple[int, ...]) -> tuple[np.ndarray, "_Layout"]:
        """A form's rules around the word: a line it stands on (from a little above its baseline to below its
        descenders), a box's top edge above it, or both; 3-12 % of the font size thick, solid, dashed or
        dotted, running past the word on both sides, in the word's ink or a form's lighter print. The layout
        grows to take each rule in, sometimes only its near edge (a box cut at the rule)."""
        canvas = Image.fromarray(image)
        draw = ImageDraw.Draw(canvas)
        size = float(font.size)
        colour = ink if self.rng.random() < 0.6 else tuple(min(255, c + self.rng.randint(20, 110)) for c in ink)
        kind = self.rng.choices(("under", "over", "box"), weights=(0.6, 0.15, 0.25))[0]
        style = self.rng.choices(("solid", "dashed", "dotted"), weights=(0.75, 0.1, 0.15))[0]
        top, baseline = layout.top, layout.top + layout.ascent
        extend_top, extend_bottom = None, None
        if kind in ("under", "box"):
            thickness = max(1, round(size * self.rng.uniform(0.03, 0.12)))
            y = baseline + self.rng.uniform(-0.02, 0.35) * size
            self._rule(draw, y, thickness, canvas.width, colour, style)
            extend_bottom = y + thickness * self.rng.uniform(0.3, 1.0) + self.rng.uniform(0.0, 0.2) * size
        if kind in ("over", "box"):
            thickness = max(1, round(size * self.rng.uniform(0.03, 0.12)))
            y = top - self.rng.uniform(0.05, 0.35) * size - thickness
            self._rule(draw, y, thickness, canvas.width, colour, style)
            extend_top = y + thickness * self.rng.uniform(0.0, 0.7) - self.rng.uniform(0.0, 0.2) * size
        return np.asarray(canvas), replace(layout, extend_top=extend_top, extend_bottom=extend_bottom)

    def _rule(self, draw: ImageDraw.ImageDraw, y: float, thickness: int, width: int, colour: tuple[int, ...],
              style: str) -> None:
        """A horizontal rule ``thickness`` px thick whose top is at ``y``, across the canvas."""
        bottom = y + max(0, thickness - 1)  # never above y, also in floating point
        if style == "solid":
            draw.rectangle([(0, y), (width, bottom)], fill=colour)
            return
        dash = thickness * (self.rng.uniform(3, 8) if style == "dashed" else 1.0)
        gap = thickness * (self.rng.uniform(1.5, 4) if style == "dashed" else self.rng.uniform(1.0, 3.0))
        x = -self.rng.uniform(0, dash + gap)
        while x < width:
            draw.rectangle([(x, y), (x + max(0.0, dash - 1), bottom)], fill=colour)
            x += dash + gap

    def _geometric(self, image: np.ndarray, paper: tuple[int, ...]) -> np.ndarray:
        h, w = image.shape[:2]
        r = self.rng.random()
        if r < 0.25:
            angle = self.rng.gauss(0, 1.5)
            m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=paper)
        if r < 0.4:
            d = 0.04 * min(w, h) * 2
            src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
            dst = src + np.float32([[self.rng.uniform(-d, d), self.rng.uniform(-d, d)] for _ in range(4)])
            m = cv2.getPerspectiveTransform(src, dst)
            return cv2.warpPerspective(image, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=paper)
        if r < 0.5:  # italic-like shear
            s = self.rng.uniform(-0.25, 0.25)
            m = np.float32([[1, s, -s * h / 2], [0, 1, 0]])
            return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=paper)
        return image

    def _crop(self, image: np.ndarray, layout: "_Layout") -> np.ndarray:
        """Cut the word as a detector would: mostly snug, sometimes tight (clipping a little) or loose."""
        h, w = image.shape[:2]
        top, bottom = layout.top, layout.top + layout.line_height
        left, right = layout.left, layout.left + layout.width
        ascent = layout.ascent
        line_h = bottom - top
        mode = self.rng.random()
        if mode < 0.15:
            pad = lambda: self.rng.uniform(-0.06, 0.03) * line_h  # noqa: E731
        elif mode < 0.8:
            pad = lambda: self.rng.uniform(0.0, 0.2) * line_h  # noqa: E731
        else:
            pad = lambda: self.rng.uniform(0.15, 0.6) * line_h  # noqa: E731
        t = top - pad() - 0.15 * ascent
        b = bottom + pad()
        if layout.extend_top is not None:
            t = min(t, layout.extend_top)
        if layout.extend_bottom is not None:
            b = max(b, layout.extend_bottom)
        t, b = int(max(0, t)), int(min(h, b))
        l_ = int(max(0, left - pad() if layout.clip_left is None else layout.clip_left))
        r_ = int(min(w, right + pad() if layout.clip_right is None else math.ceil(layout.clip_right)))
        if b - t < 4 or r_ - l_ < 4:
            return image
        return image[t:b, l_:r_]

    def _photometric(self, image: np.ndarray) -> np.ndarray:
        rng = self.rng
        img = image.astype(np.float32)
        h, w = img.shape[:2]
        if rng.random() < 0.25:  # uneven light / shadow gradient
            ramp = np.linspace(rng.uniform(0.55, 1.0), rng.uniform(0.85, 1.1), w, dtype=np.float32)
            img *= ramp[None, :, None] if rng.random() < 0.5 else np.resize(
                np.linspace(rng.uniform(0.6, 1.0), 1.0, h, dtype=np.float32), (h, 1, 1))
        if rng.random() < 0.15:  # paper texture
            img += self.np_rng.normal(0, rng.uniform(4, 14), (h, w, 1)).astype(np.float32)
        img = np.clip(img, 0, 255).astype(np.uint8)
        if rng.random() < 0.2:  # ink spread or fading
            k = np.ones((2, 2), np.uint8)
            dark_text = img.mean() > 127
            img = (cv2.erode if dark_text else cv2.dilate)(img, k) if rng.random() < 0.5 else \
                (cv2.dilate if dark_text else cv2.erode)(img, k)
        if rng.random() < 0.3:  # low resolution: down then up
            scale = rng.uniform(0.25, 0.7)
            small = cv2.resize(img, (max(2, int(w * scale)), max(2, int(h * scale))), interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (w, h), interpolation=rng.choice([cv2.INTER_LINEAR, cv2.INTER_NEAREST, cv2.INTER_CUBIC]))
        if rng.random() < 0.3:
            sigma = rng.uniform(0.3, 1.4) * max(1.0, h / 40)
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        if rng.random() < 0.08:  # fax / binarised scan
            gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            _, bw = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            img = cv2.cvtColor(bw, cv2.COLOR_GRAY2RGB)
        if rng.random() < 0.25:
            img = np.clip(img.astype(np.float32) + self.np_rng.normal(0, rng.uniform(3, 18), img.shape), 0, 255).astype(np.uint8)
        if rng.random() < 0.3:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=rng.randint(15, 80))
            img = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        if rng.random() < 0.15:
            img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        return img


@dataclass(frozen=True)
class _Layout:
    """Where the text line lies on a drawn canvas, in its pixels."""
    top: float
    ascent: float
    descent: float
    left: float
    width: float
    clip_left: float | None = None  # where the crop must cut, when a neighbour stands on that side
    clip_right: float | None = None
    extend_top: float | None = None  # the crop reaches at least this high or low (a form's rules)
    extend_bottom: float | None = None

    @property
    def line_height(self) -> float:
        return self.ascent + self.descent


def _mark_zeros(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, origin: tuple[int, int],
                ink: tuple[int, ...], mark: str) -> None:
    """A slash or a dot inside each "0" of a line drawn at ``origin`` in a fixed-pitch ``font``."""
    gx0, gy0, gx1, gy1 = font.getbbox("0")
    w, h = gx1 - gx0, gy1 - gy0
    stroke = max(1, round(0.12 * w))
    for i, ch in enumerate(text):
        if ch != "0":
            continue
        left, top = origin[0] + font.getlength(text[:i]) + gx0, origin[1] + gy0
        if mark == "slash":
            draw.line([(left + 0.25 * w, top + 0.8 * h), (left + 0.75 * w, top + 0.2 * h)], fill=ink, width=stroke)
        else:
            r = max(1.0, 0.12 * w)
            cx, cy = left + w / 2, top + h / 2
            draw.ellipse([(cx - r, cy - r), (cx + r, cy + r)], fill=ink)


def _scale_width(image: np.ndarray, layout: _Layout, factor: float) -> tuple[np.ndarray, _Layout]:
    """The drawn line squeezed (factor < 1) or stretched horizontally, its layout alike."""
    h, w = image.shape[:2]
    scaled = cv2.resize(image, (max(2, round(w * factor)), h), interpolation=cv2.INTER_AREA)
    clip = lambda x: None if x is None else x * factor  # noqa: E731
    return scaled, replace(layout, left=layout.left * factor, width=layout.width * factor,
                           clip_left=clip(layout.clip_left), clip_right=clip(layout.clip_right))


def render_batch(cfg: RenderConfig, seed: int, count: int) -> tuple[np.ndarray, list[str]]:
    renderer = WordRenderer(cfg, seed)
    images, labels = [], []
    for _ in range(count):
        image, label = renderer.sample()
        images.append(image)
        labels.append(label)
    return np.stack(images), labels


def _write_job(args: tuple[RenderConfig, Path, str, int, int]) -> int:
    cfg, out, name, seed, count = args
    images, labels = render_batch(cfg, seed, count)
    write_shard(out, name, images, labels)
    return count


def build_cache(out: Path, count: int, workers: int, shard_size: int = 2000, seed: int = 0,
                cfg: RenderConfig = RenderConfig()) -> int:
    """Render ``count`` more words into shards under ``out``; continues after existing shards."""
    start = len(list_shards(out))
    jobs = [(cfg, out, f"synth_{start + i:05d}", seed * 1_000_003 + start + i, shard_size)
            for i in range(math.ceil(count / shard_size))]
    done, t0 = 0, time.time()
    # One worker renders in this process: forking a process that has threads (torch, a queue feeder) can deadlock.
    pool = mp.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        for n in (pool.imap_unordered(_write_job, jobs) if pool else map(_write_job, jobs)):
            done += n
            print(f"[synth] {done}/{count} words, {done / (time.time() - t0):.0f}/s", flush=True)
    finally:
        if pool:
            pool.close()
            pool.join()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache/ocrapp/crops/synth")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="general", help="text and print mix")
    args = parser.parse_args()
    build_cache(args.out, args.count, args.workers, args.shard_size, args.seed, PROFILES[args.profile])


if __name__ == "__main__":
    main()
