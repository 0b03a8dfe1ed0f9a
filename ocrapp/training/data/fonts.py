"""Document fonts from the Debian font packages, with their character coverage."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont

FONT_ROOTS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
# Faces that are not running text (symbols, dingbats, math, calligraphic) never make a word image.
_EXCLUDED_NAME_PARTS = ("Dingbat", "Symbol", "D050000L", "Math", "Z003", "StandardSymbols", "Emoji", "Music")
# Noto ships one file per script; only its Latin document faces are used.
_NOTO_LATIN_PREFIXES = ("NotoSans-", "NotoSerif-", "NotoSansMono-", "NotoSerifDisplay-", "NotoSansDisplay-")
# Families kept out of training so that tests and evaluation can read text in faces the model never saw.
HELD_OUT_FAMILIES = ("Caladea", "URWBookman")


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


@lru_cache(maxsize=4)
def discover_fonts(held_out: bool = False) -> tuple[FontFace, ...]:
    """Document faces that cover the basic Latin alphabet; ``held_out`` selects the held-out families instead."""
    faces = []
    for root in FONT_ROOTS:
        for path in sorted(root.rglob("*")):
            if not _is_document_face(path):
                continue
            is_held = path.stem.startswith(HELD_OUT_FAMILIES)
            if is_held != held_out:
                continue
            try:
                coverage = _coverage(path)
            except Exception:  # a broken font file is skipped, not fatal
                continue
            if all(ch in coverage for ch in "aeiouAEIOU0123456789"):
                faces.append(FontFace(path, coverage))
    return tuple(faces)
