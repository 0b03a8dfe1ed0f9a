"""Document fonts from the Debian font packages, with their character coverage."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import ImageFont

FONT_ROOTS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
# Faces that are not running text (symbols, dingbats, math, calligraphic) never make a word image.
_EXCLUDED_NAME_PARTS = ("Dingbat", "Symbol", "D050000L", "Math", "Z003", "StandardSymbols", "Emoji", "Music")
# Noto ships one file per script; only its Latin document faces are used.
_NOTO_LATIN_PREFIXES = ("NotoSans-", "NotoSerif-", "NotoSansMono-", "NotoSerifDisplay-", "NotoSansDisplay-")
# Families kept out of training so that tests and evaluation can read text in faces the model never saw.
HELD_OUT_FAMILIES = ("Caladea", "URWBookman")
# Terminal and programming monospaced faces (Debian packages in scripts/install.sh): their "M" has the short middle
# "V" of till-receipt printer fonts ("HOME" in such print was read "HOHE"). They are kept apart from the document
# faces, which they would otherwise outnumber, and drawn only by the styles that ask for printer faces.
PRINTER_FACE_DIRS = ("spleen", "mplus", "league-mono", "jetbrains-mono", "hack", "firacode", "monoid",
                     "inconsolata", "3270", "glasstty", "agave", "anonymous-pro")
HELD_OUT_PRINTER_FAMILIES = ("Monoid", "Hack")
# Weights and widths no printer sets.
_PRINTER_EXCLUDED_NAME_PARTS = ("Thin", "Light", "Black", "ExtraBold", "Extended", "Wide", "Retina", "Monoisome")


@dataclass(frozen=True)
class FontFace:
    path: Path
    coverage: frozenset[str]

    @property
    def family_key(self) -> str:
        return self.path.stem.split("-")[0]

    def covers(self, text: str) -> bool:
        return all(ch in self.coverage or ch == " " for ch in text)


def _is_document_face(path: Path) -> bool:
    name = path.name
    if any(part in name for part in _EXCLUDED_NAME_PARTS):
        return False
    if name.startswith("Noto") and not name.startswith(_NOTO_LATIN_PREFIXES):
        return False
    return path.suffix.lower() in (".ttf", ".otf")


def _coverage(path: Path) -> frozenset[str]:
    with TTFont(path, fontNumber=0, lazy=True) as font:
        cmap = font.getBestCmap() or {}
    return frozenset(chr(code) for code in cmap if code < 0x3000)


def is_printer_face(path: Path) -> bool:
    """Whether a font file lies in one of the printer faces' folders (``PRINTER_FACE_DIRS``)."""
    return any(part in PRINTER_FACE_DIRS for part in path.parent.parts)


def _is_upright_fixed_pitch(path: Path) -> bool:
    """Every letter advances as far as "M" (as on a printer's grid) and the face is not slanted."""
    try:
        with TTFont(path, fontNumber=0, lazy=True) as font:
            upright = font["post"].italicAngle == 0
        sized = ImageFont.truetype(str(path), 20)
        return upright and len({sized.getlength(ch) for ch in "iMW.1m"}) == 1
    except Exception:
        return False


def _latin_face(path: Path) -> FontFace | None:
    try:
        coverage = _coverage(path)
    except Exception:  # a broken font file is skipped, not fatal
        return None
    return FontFace(path, coverage) if all(ch in coverage for ch in "aeiouAEIOU0123456789") else None


def _discover(keep, roots: tuple[Path, ...] = FONT_ROOTS) -> tuple[FontFace, ...]:
    paths = (path for root in roots for path in sorted(root.rglob("*")) if keep(path))
    return tuple(face for face in map(_latin_face, paths) if face is not None)


@lru_cache(maxsize=4)
def discover_fonts(held_out: bool = False) -> tuple[FontFace, ...]:
    """Document faces that cover the basic Latin alphabet; ``held_out`` selects the held-out families instead."""
    return _discover(lambda path: _is_document_face(path) and not is_printer_face(path)
                     and path.stem.startswith(HELD_OUT_FAMILIES) == held_out)


@lru_cache(maxsize=4)
def discover_printer_faces(held_out: bool = False, roots: tuple[Path, ...] = FONT_ROOTS) -> tuple[FontFace, ...]:
    """Printer-like monospaced faces (``PRINTER_FACE_DIRS``; none where those packages are not installed) in
    upright text weights; ``held_out`` selects ``HELD_OUT_PRINTER_FAMILIES`` instead."""
    return _discover(lambda path: _is_document_face(path) and is_printer_face(path)
                     and not any(part in path.stem for part in _PRINTER_EXCLUDED_NAME_PARTS)
                     and path.stem.startswith(HELD_OUT_PRINTER_FAMILIES) == held_out
                     and _is_upright_fixed_pitch(path), roots)
