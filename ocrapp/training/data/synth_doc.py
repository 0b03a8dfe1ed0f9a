"""Synthetic documents for detector training, written as real PDFs (fpdf2) so that their word boxes come from the
same pdftotext text layer as the real Debian pages (``pdf_words.read_word_boxes``).

Layouts: invoice, form, letter, table, receipt, multi-column article. Content from wordfreq (``corpus.TextSampler``)
and faker; faces from the Debian font packages (``fonts.discover_fonts``, held-out families excluded); distractors
without text: rules, boxes, checkboxes, shaded bands, logos, stamps (rings), scribbles/signatures.
"""

from __future__ import annotations

import math
import random
import warnings
from pathlib import Path

from ocrapp.training.data.corpus import TextSampler
from ocrapp.training.data.fonts import FontFace, discover_fonts

LAYOUTS = ("invoice", "form", "letter", "table", "receipt", "article")
PAGE_SIZES = {"a4": (595.3, 841.9), "letter": (612.0, 792.0), "a5": (419.5, 595.3), "legal": (612.0, 1008.0)}


def _faker(rng: random.Random):
    from faker import Faker

    fk = Faker(rng.choice(["en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "pt_PT", "nl_NL"]))
    fk.seed_instance(rng.randrange(1 << 30))
    return fk


class _Doc:
    """A tiny word-level layout engine on top of fpdf2 (units: points, origin top-left)."""

    def __init__(self, rng: random.Random, size: tuple[float, float]) -> None:
        from fpdf import FPDF

        self.rng = rng
        self.text = TextSampler(rng)
        self.fk = _faker(rng)
        self.W, self.H = size
        self.pdf = FPDF(unit="pt", format=size)
        self.pdf.set_auto_page_break(False)
        self.pdf.set_margins(0, 0, 0)
        self.pdf.add_page()
        faces = list(discover_fonts())
        mono = [f for f in faces if "Mono" in f.path.name or "Courier" in f.path.name or "C059" in f.path.name]
        self.faces: dict[str, FontFace] = {}
        self.body = self._add_face(rng.choice(faces))
        self.head = self._add_face(rng.choice(faces)) if rng.random() < 0.7 else self.body
        self.mono = self._add_face(rng.choice(mono or faces))
        self.margin = rng.uniform(28, 80)
        self.ink = (0, 0, 0)

    def _add_face(self, face: FontFace) -> str:
        name = f"f{len(self.faces)}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.pdf.add_font(name, "", str(face.path))
        self.faces[name] = face
        return name

    def clean(self, font: str, text: str) -> str:
        face = self.faces[font]
        out = "".join(ch for ch in text if ch in face.coverage)
        return out

    def color(self) -> tuple[int, int, int]:
        r = self.rng.random()
        if r < 0.75:
            g = self.rng.randint(0, 60)
            return (g, g, g)
        if r < 0.9:
            return (self.rng.randint(0, 80), self.rng.randint(0, 80), self.rng.randint(60, 160))
        return (self.rng.randint(90, 180), self.rng.randint(0, 60), self.rng.randint(0, 60))

    def word(self, x: float, y: float, text: str, font: str, size: float, color=None) -> float:
        """Draw one word with its baseline at y; return its width (0 if nothing drawable)."""
        text = self.clean(font, text)
        if not text.strip():
            return 0.0
        self.pdf.set_font(font, size=size)
        self.pdf.set_text_color(*(color or self.ink))
        self.pdf.text(x, y, text)
        return self.pdf.get_string_width(text)

    def width(self, text: str, font: str, size: float) -> float:
        self.pdf.set_font(font, size=size)
        return self.pdf.get_string_width(self.clean(font, text))

    def line_of(self, x: float, y: float, words: list[str], font: str, size: float, color=None,
                align_right: float | None = None) -> float:
        gap = self.width(" ", font, size) * self.rng.uniform(0.9, 1.4)
        if align_right is not None:
            total = sum(self.width(w, font, size) for w in words) + gap * (len(words) - 1)
            x = align_right - total
        for w in words:
            x += self.word(x, y, w, font, size, color) + gap
        return x

    def paragraph(self, x0: float, y: float, width: float, n_words: int, font: str, size: float,
                  leading: float | None = None, y_max: float | None = None, justify: bool = False) -> float:
        leading = leading or size * self.rng.uniform(1.15, 1.5)
        gap = self.width(" ", font, size)
        y_max = y_max or self.H - self.margin
        words = [self.text.sample() for _ in range(n_words)]
        line: list[str] = []
        line_w = 0.0
        color = self.color() if self.rng.random() < 0.2 else None
        for i, w in enumerate(words + [None]):  # type: ignore[list-item]
            ww = self.width(w, font, size) if w is not None else 0
            if w is None or (line and line_w + gap + ww > width):
                if y > y_max:
                    return y
                if justify and w is not None and len(line) > 1:
                    extra = (width - line_w) / (len(line) - 1)
                    x = x0
                    for lw in line:
                        x += self.word(x, y, lw, font, size, color) + gap + extra
                else:
                    self.line_of(x0, y, line, font, size, color)
                y += leading
                line, line_w = [], 0.0
            if w is not None and ww > 0:
                line_w = line_w + gap + ww if line else ww
                line.append(w)
        return y

    # ---- distractors (no text) ----
    def rule(self, x0: float, y: float, x1: float, width: float | None = None, dashed: bool = False) -> None:
        self.pdf.set_draw_color(*self.color())
        self.pdf.set_line_width(width or self.rng.uniform(0.3, 2.0))
        if dashed:
            self.pdf.set_dash_pattern(dash=self.rng.uniform(1, 4), gap=self.rng.uniform(1, 3))
        self.pdf.line(x0, y, x1, y)
        self.pdf.set_dash_pattern()

    def box(self, x: float, y: float, w: float, h: float, fill: tuple[int, int, int] | None = None) -> None:
        self.pdf.set_line_width(self.rng.uniform(0.3, 1.5))
        self.pdf.set_draw_color(*self.color())
        if fill:
            self.pdf.set_fill_color(*fill)
            self.pdf.rect(x, y, w, h, style="DF" if self.rng.random() < 0.5 else "F")
        else:
            self.pdf.rect(x, y, w, h)

    def light_fill(self) -> tuple[int, int, int]:
        base = self.rng.randint(215, 245)
        return (base + self.rng.randint(-15, 10), base + self.rng.randint(-15, 10), base)

    def logo(self, x: float, y: float, s: float) -> None:
        self.pdf.set_fill_color(*self.color())
        self.pdf.set_draw_color(*self.color())
        kind = self.rng.randrange(3)
        if kind == 0:
            self.pdf.ellipse(x, y, s, s, style="F")
        elif kind == 1:
            self.pdf.rect(x, y, s, s * 0.8, style="F")
            self.pdf.set_fill_color(255, 255, 255)
            self.pdf.ellipse(x + s * 0.2, y + s * 0.15, s * 0.5, s * 0.5, style="F")
        else:
            pts = [(x + s / 2 + s / 2 * math.cos(a), y + s / 2 + s / 2 * math.sin(a))
                   for a in [i * 2 * math.pi / 6 for i in range(6)]]
            self.pdf.polygon(pts, style="F")

    def stamp(self, x: float, y: float, s: float) -> None:
        self.pdf.set_draw_color(self.rng.randint(120, 220), self.rng.randint(0, 60), self.rng.randint(0, 90))
        self.pdf.set_line_width(self.rng.uniform(1.5, 3.5))
        self.pdf.ellipse(x, y, s, s * self.rng.uniform(0.6, 1.0))
        self.pdf.ellipse(x + s * 0.1, y + s * 0.1, s * 0.8, s * 0.8 * self.rng.uniform(0.6, 1.0))

    def scribble(self, x: float, y: float, w: float, h: float) -> None:
        self.pdf.set_draw_color(*self.color())
        self.pdf.set_line_width(self.rng.uniform(0.6, 1.8))
        pts = []
        n = self.rng.randint(8, 25)
        for i in range(n):
            pts.append((x + w * i / n + self.rng.uniform(-4, 4), y + h * self.rng.random()))
        self.pdf.polyline(pts)

    def checkbox(self, x: float, y: float, s: float, checked: bool) -> None:
        self.pdf.set_draw_color(0, 0, 0)
        self.pdf.set_line_width(0.6)
        self.pdf.rect(x, y, s, s)
        if checked:
            self.pdf.line(x + 1.5, y + s / 2, x + s / 2, y + s - 1.5)
            self.pdf.line(x + s / 2, y + s - 1.5, x + s - 1, y + 1)

    def sprinkle_distractors(self) -> None:
        for _ in range(self.rng.randint(0, 3)):
            kind = self.rng.random()
            x, y = self.rng.uniform(0, self.W - 60), self.rng.uniform(0, self.H - 60)
            if kind < 0.35:
                self.stamp(x, y, self.rng.uniform(40, 110))
            elif kind < 0.7:
                self.scribble(x, y, self.rng.uniform(40, 160), self.rng.uniform(8, 40))
            else:
                self.logo(x, y, self.rng.uniform(15, 50))

    def output(self, path: Path) -> None:
        self.pdf.output(str(path))


def _sz(rng: random.Random, lo: float = 7.0, hi: float = 13.0) -> float:
    return round(rng.uniform(lo, hi), 1)


def _invoice(d: _Doc) -> None:
    r, m = d.rng, d.margin
    y = m + 10
    d.logo(m, m - 10, r.uniform(25, 50))
    hs = _sz(r, 16, 30)
    d.line_of(m + 60, y + hs * 0.6, d.fk.company().split(), d.head, hs)
    y += hs * 1.5
    s = _sz(r, 7, 11)
    for line in [d.fk.street_address(), d.fk.city(), d.fk.phone_number(), d.fk.email()]:
        d.line_of(m, y, line.split(), d.body, s)
        y += s * 1.35
    right = d.W - m
    yy = m + 10
    for key in ["Invoice", "Date", "Due", "Customer", "VAT"]:
        d.line_of(0, yy, [key + ":", d.text.code() if r.random() < 0.5 else d.text.date()], d.body, s, align_right=right)
        yy += s * 1.4
    y = max(y, yy) + 20
    d.line_of(m, y, ["Bill", "to:"] + d.fk.name().split(), d.head, s * 1.1)
    y += s * 1.5
    d.line_of(m, y, d.fk.address().replace("\n", " ").split(), d.body, s)
    y += s * 3
    y = _table(d, m, y, d.W - 2 * m, r.randint(3, 14), r.randint(3, 5), header=True, numeric_tail=True)
    y += 10
    for key in ["Subtotal", "Tax", "Total"]:
        d.line_of(0, y, [key, d.text.price()], d.head if key == "Total" else d.body, s * (1.2 if key == "Total" else 1),
                  align_right=right)
        y += s * 1.6
    if r.random() < 0.7:
        d.paragraph(m, y + 20, d.W - 2 * m, r.randint(15, 60), d.body, s * 0.85)


def _table(d: _Doc, x0: float, y: float, width: float, rows: int, cols: int, header: bool = True,
           numeric_tail: bool = False) -> float:
    r = d.rng
    s = _sz(r, 6.5, 11)
    row_h = s * r.uniform(1.6, 2.4)
    weights = [r.uniform(1, 3) for _ in range(cols)]
    weights[0] *= 2
    ws = [width * w / sum(weights) for w in weights]
    grid = r.random()
    zebra = r.random() < 0.3
    for i in range(rows + (1 if header else 0)):
        if y + row_h > d.H - d.margin:
            break
        is_head = header and i == 0
        if is_head and r.random() < 0.6:
            d.box(x0, y, width, row_h, fill=d.light_fill())
        elif zebra and i % 2:
            d.box(x0, y, width, row_h, fill=d.light_fill())
        x = x0
        for j, w in enumerate(ws):
            if grid < 0.5:
                d.pdf.set_draw_color(0, 0, 0)
                d.pdf.set_line_width(0.4)
                d.pdf.rect(x, y, w, row_h)
            if is_head:
                words = [d.text.word().capitalize()]
            elif j == 0:
                words = [d.text.word() for _ in range(r.randint(1, 4))]
            elif numeric_tail or r.random() < 0.6:
                words = [r.choice([d.text.number(), d.text.price(), str(r.randint(1, 99))])]
            else:
                words = [d.text.sample()]
            font = d.head if is_head else d.body
            base = y + row_h / 2 + s * 0.35
            if j > 0 and not is_head and r.random() < 0.7:
                d.line_of(0, base, words, font, s, align_right=x + w - 4)
            else:
                # keep within the cell
                kept, acc = [], 0.0
                for wd in words:
                    acc += d.width(wd + " ", font, s)
                    if acc > w - 6:
                        break
                    kept.append(wd)
                d.line_of(x + 4, base, kept, font, s)
            x += w
        if 0.5 <= grid < 0.8:
            d.rule(x0, y + row_h, x0 + width, 0.4)
        y += row_h
    return y


def _form(d: _Doc) -> None:
    r, m = d.rng, d.margin
    hs = _sz(r, 14, 24)
    y = m + hs
    d.line_of(m, y, [d.text.word().upper() for _ in range(r.randint(1, 4))], d.head, hs)
    y += hs
    d.rule(m, y, d.W - m)
    y += 20
    s = _sz(r, 7.5, 12)
    while y < d.H - m - 30:
        kind = r.random()
        if kind < 0.5:  # label + line (+ maybe filled)
            label = [d.text.word().capitalize() for _ in range(r.randint(1, 3))]
            x = d.line_of(m, y, label + [":"] if r.random() < 0.3 else label, d.body, s)
            d.rule(x + 4, y + 2, d.W - m if r.random() < 0.6 else (x + d.W - m) / 2, 0.5, dashed=r.random() < 0.3)
            if r.random() < 0.6:
                d.line_of(x + 10, y - 1, [d.fk.name(), d.fk.city(), d.text.date(), d.text.number()][r.randrange(4)].split(),
                          d.mono if r.random() < 0.5 else d.head, s * r.uniform(0.9, 1.2), color=(20, 30, 120))
            y += s * r.uniform(2.2, 3.2)
        elif kind < 0.75:  # checkbox row
            x = m
            for _ in range(r.randint(2, 5)):
                cb = s * 0.9
                d.checkbox(x, y - cb * 0.9, cb, r.random() < 0.3)
                x = d.line_of(x + cb + 4, y, [d.text.word().capitalize()], d.body, s) + 20
                if x > d.W - m - 80:
                    break
            y += s * 2.4
        elif kind < 0.85:  # boxed section with paragraph
            h = r.uniform(40, 120)
            d.box(m, y - s, d.W - 2 * m, h, fill=d.light_fill() if r.random() < 0.5 else None)
            d.paragraph(m + 6, y + 4, d.W - 2 * m - 12, r.randint(10, 40), d.body, s * 0.9, y_max=y + h - 2 * s)
            y += h + 10
        else:  # comb boxes (character cells)
            x = d.line_of(m, y, [d.text.word().capitalize()], d.body, s) + 8
            cw = s * 1.3
            for _ in range(r.randint(6, 16)):
                if x + cw > d.W - m:
                    break
                d.pdf.set_line_width(0.4)
                d.pdf.rect(x, y - cw * 0.85, cw, cw * 1.1)
                x += cw
            y += s * 2.6
    if r.random() < 0.6:
        d.scribble(d.W - m - 150, d.H - m - 40, 120, 30)


def _letter(d: _Doc) -> None:
    r, m = d.rng, d.margin
    s = _sz(r, 9, 12.5)
    y = m + 10
    if r.random() < 0.6:
        d.logo(d.W - m - 50, m - 10, 40)
    for line in [d.fk.name(), d.fk.street_address(), d.fk.city()]:
        d.line_of(m, y, line.split(), d.body, s)
        y += s * 1.3
    y += s * 2
    d.line_of(0, y, [d.fk.city() + ",", d.text.date()], d.body, s, align_right=d.W - m)
    y += s * 3
    d.line_of(m, y, [d.text.word().capitalize(), d.fk.last_name() + ","], d.body, s)
    y += s * 2
    for _ in range(r.randint(2, 6)):
        y = d.paragraph(m, y, d.W - 2 * m, r.randint(20, 90), d.body, s, justify=r.random() < 0.4) + s
        if y > d.H - m - 80:
            break
    d.scribble(m, y + 10, r.uniform(80, 160), 30)
    d.line_of(m, y + 60, d.fk.name().split(), d.body, s)


def _receipt(d: _Doc) -> None:
    r, m = d.rng, 12.0
    d.margin = m
    s = _sz(r, 6.5, 9.5)
    font = d.mono if r.random() < 0.7 else d.body
    y = m + s * 2
    d.line_of(0, y, d.fk.company().upper().split()[:3], d.head, s * 1.4, align_right=(d.W + d.width(" ".join(d.fk.company().split()[:3]), d.head, s * 1.4)) / 2)
    y += s * 2.2
    for line in [d.fk.street_address(), d.fk.phone_number(), d.text.date() + " " + f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}"]:
        d.line_of(m, y, line.split(), font, s)
        y += s * 1.4
    d.rule(m, y, d.W - m, 0.5, dashed=True)
    y += s * 1.6
    for _ in range(r.randint(4, 30)):
        if y > d.H - m - 60:
            break
        d.line_of(m, y, [d.text.word().upper() for _ in range(r.randint(1, 3))], font, s)
        d.line_of(0, y, [d.text.price()], font, s, align_right=d.W - m)
        y += s * 1.45
    d.rule(m, y, d.W - m, 0.5, dashed=True)
    y += s * 1.8
    for key in ["TOTAL", "CASH", "CHANGE"]:
        d.line_of(m, y, [key], font, s * 1.15)
        d.line_of(0, y, [d.text.price()], font, s * 1.15, align_right=d.W - m)
        y += s * 1.6


def _article(d: _Doc) -> None:
    r, m = d.rng, d.margin
    ts = _sz(r, 14, 26)
    y = m + ts
    title = [d.text.word().capitalize() for _ in range(r.randint(3, 9))]
    y = d.paragraph(m, y, d.W - 2 * m, 0, d.head, ts) if False else y
    d.line_of(m, y, title[:5], d.head, ts)
    y += ts * 1.3
    if len(title) > 5:
        d.line_of(m, y, title[5:], d.head, ts)
        y += ts * 1.3
    d.line_of(m, y, (d.fk.name() + ", " + d.fk.name()).split(), d.body, ts * 0.5)
    y += ts
    d.rule(m, y, d.W - m)
    y += 16
    cols = r.choice([1, 2, 2, 3])
    gut = r.uniform(12, 24)
    cw = (d.W - 2 * m - gut * (cols - 1)) / cols
    s = _sz(r, 7, 10.5)
    for c in range(cols):
        x = m + c * (cw + gut)
        yy = y
        while yy < d.H - m - 2 * s:
            if r.random() < 0.15:
                d.line_of(x, yy, [d.text.word().capitalize() for _ in range(r.randint(1, 4))], d.head, s * 1.2)
                yy += s * 1.8
            if r.random() < 0.08:  # figure placeholder
                h = r.uniform(40, 120)
                d.box(x, yy, cw, h, fill=d.light_fill())
                d.scribble(x + 5, yy + 5, cw - 10, h - 10)
                yy += h + s
                d.line_of(x, yy, ["Figure", f"{r.randint(1, 9)}:"] + [d.text.word() for _ in range(r.randint(2, 6))], d.body, s * 0.85)
                yy += s * 2
            yy = d.paragraph(x, yy, cw, r.randint(30, 140), d.body, s, y_max=d.H - m, justify=r.random() < 0.6) + s * 0.6
        if cols > 1 and c < cols - 1 and r.random() < 0.3:
            d.pdf.set_line_width(0.3)
            d.pdf.line(x + cw + gut / 2, y, x + cw + gut / 2, d.H - m)
    if r.random() < 0.5:
        d.line_of(0, d.H - m / 2, [str(r.randint(1, 300))], d.body, s, align_right=d.W / 2)


def _table_page(d: _Doc) -> None:
    r, m = d.rng, d.margin
    y = m + 20
    d.line_of(m, y, [d.text.word().capitalize() for _ in range(r.randint(2, 6))], d.head, _sz(r, 12, 20))
    y += 30
    while y < d.H - m - 60:
        y = _table(d, m, y, d.W - 2 * m, r.randint(4, 25), r.randint(2, 7), header=r.random() < 0.8) + 20
        if r.random() < 0.5:
            y = d.paragraph(m, y, d.W - 2 * m, r.randint(10, 50), d.body, _sz(r, 7, 10)) + 10


_BUILDERS = {"invoice": _invoice, "form": _form, "letter": _letter, "table": _table_page, "receipt": _receipt,
             "article": _article}


def make_synthetic_pdf(rng: random.Random, path: Path, layout: str | None = None) -> str:
    """Write a one-page synthetic document to ``path``; returns the layout name."""
    layout = layout or rng.choice(LAYOUTS)
    if layout == "receipt":
        size = (rng.uniform(160, 240), rng.uniform(350, 700))
    else:
        size = PAGE_SIZES[rng.choice(["a4", "a4", "letter", "a5", "legal"])]
        if rng.random() < 0.1:
            size = (size[1], size[0])  # landscape
    d = _Doc(rng, size)
    if rng.random() < 0.15:  # coloured header band
        d.box(0, 0, d.W, rng.uniform(30, 70), fill=d.light_fill())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _BUILDERS[layout](d)
        d.sprinkle_distractors()
        d.output(path)
    return layout
