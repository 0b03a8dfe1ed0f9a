"""``--pages`` selections: "1-3,5,8-" (1-based, inclusive, "8-" = to the end, "-3" = 1..3)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocrapp.errors import UsageError

_PART = re.compile(r"^\s*(\d*)\s*(-?)\s*(\d*)\s*$")


@dataclass(frozen=True)
class PageSelection:
    """Parsed page ranges, 1-based inclusive; ``None`` as an end means "to the last page"."""

    ranges: tuple[tuple[int, int | None], ...]

    def indices(self, page_count: int) -> list[int]:
        """0-based page indices in ascending order without duplicates. Pages past the end are dropped
        (so one selection works for a whole batch); an empty result is an error."""
        chosen: set[int] = set()
        for first, last in self.ranges:
            end = page_count if last is None else min(last, page_count)
            chosen.update(range(first - 1, end))
        if not chosen:
            raise UsageError(f"--pages {self} selects no page of a {page_count}-page document")
        return sorted(chosen)

    def __str__(self) -> str:
        return ",".join(f"{a}" if a == b else f"{a}-{'' if b is None else b}" for a, b in self.ranges)


def parse_page_ranges(spec: str) -> PageSelection:
    """Parse "2-5", "1,3,7-9", "4-" or "-3". Raises UsageError (a ValueError) on bad syntax."""
    ranges: list[tuple[int, int | None]] = []
    for part in spec.split(","):
        match = _PART.match(part)
        if not match or not (match.group(1) or match.group(3)) or (not match.group(2) and match.group(3)):
            raise UsageError(f"invalid page range {part.strip()!r} in {spec!r} (expected e.g. 1-3,5,8-)")
        first = int(match.group(1)) if match.group(1) else 1
        last: int | None = int(match.group(3)) if match.group(3) else (None if match.group(2) else first)
        if first < 1 or (last is not None and last < first):
            raise UsageError(f"invalid page range {part.strip()!r} in {spec!r} (pages count from 1)")
        ranges.append((first, last))
    return PageSelection(tuple(ranges))


def as_selection(pages: str | PageSelection | None) -> PageSelection | None:
    return parse_page_ranges(pages) if isinstance(pages, str) else pages
