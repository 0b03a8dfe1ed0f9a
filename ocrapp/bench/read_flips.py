"""Which dev crops two recognizer runs read differently: the crops one gets right and the other wrong.

    python -m ocrapp.bench.read_flips BEFORE.json AFTER.json [--system ocrapp] [--show 20]

Both files are written by ``python -m ocrapp.bench.recognition --json`` (each crop's truth and read). A change
of a few crops in a set of 300 is within the noise of one run: each set's line gives the exact McNemar p-value of
the split between crops gained and lost (two-sided; below 0.05 the two recognizers differ on that set beyond
chance). The lists show whether the crops lost share a cause (a character confused, punctuation at a crop's
edge) or are scattered.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SetFlips:
    set: str
    n: int
    gained: list[tuple[str, str, str]] = field(default_factory=list)  # (truth, read before, read after)
    lost: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def mcnemar_p(self) -> float:
        """Exact two-sided McNemar test: the chance of a split at least this uneven if each flip were a coin toss."""
        flips, fewer = len(self.gained) + len(self.lost), min(len(self.gained), len(self.lost))
        tail = sum(math.comb(flips, k) for k in range(fewer + 1)) / 2**flips
        return min(1.0, 2 * tail)


def _reads_by_set(results: list[dict], system: str) -> dict[str, list[list[str]]]:
    return {r["set"]: r["reads"] for r in results if r["system"] == system and r.get("reads")}


def read_flips(before: list[dict], after: list[dict], system: str = "ocrapp") -> list[SetFlips]:
    """Per dev set both runs read (same crops, same order): the crops read right by one run only."""
    old, new = _reads_by_set(before, system), _reads_by_set(after, system)
    flips = []
    for set_name in old.keys() & new.keys():
        pairs_old, pairs_new = old[set_name], new[set_name]
        if [t for t, _ in pairs_old] != [t for t, _ in pairs_new]:
            raise ValueError(f"{set_name}: the two runs did not read the same crops (limit or data differ)")
        result = SetFlips(set_name, len(pairs_old))
        for (truth, read_old), (_, read_new) in zip(pairs_old, pairs_new):
            if (read_old == truth) != (read_new == truth):
                (result.gained if read_new == truth else result.lost).append((truth, read_old, read_new))
        flips.append(result)
    return sorted(flips, key=lambda f: f.set)


def report(flips: list[SetFlips], show: int) -> str:
    lines = []
    for f in flips:
        lines.append(f"{f.set}: {f.n} crops, gained {len(f.gained)}, lost {len(f.lost)} "
                     f"(net {len(f.gained) - len(f.lost):+d}, McNemar p {f.mcnemar_p:.2f})")
        for label, items in (("lost", f.lost), ("gained", f.gained)):
            for truth, read_old, read_new in items[:show]:
                lines.append(f"  {label:6s} {truth!r}: {read_old!r} -> {read_new!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--system", default="ocrapp", help="the system whose rows are compared")
    ap.add_argument("--show", type=int, default=20, help="at most N crops listed per set and direction")
    args = ap.parse_args(argv)
    before, after = (json.loads(p.read_text(encoding="utf-8")) for p in (args.before, args.after))
    flips = read_flips(before, after, args.system)
    if not flips:
        raise SystemExit("no dev set has the crops' reads in both files (rerun ocrapp.bench.recognition --json)")
    print(report(flips, args.show))


if __name__ == "__main__":
    main()
