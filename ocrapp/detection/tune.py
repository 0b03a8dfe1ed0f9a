"""Pick the DB postprocessing (bin_thresh, box_thresh, unclip_ratio) for given detector weights.

    python -m ocrapp.detection.tune --weights runs/det/best.pt --data ~/.cache/ocrapp/pages --pages 60 \
        --json runs/det/postprocess.json

The probability maps of held-out pages of the *training* page cache (the validation split: ids divisible by 50,
never trained on) are computed once; every setting of the grid is then scored by one-to-one IoU >= 0.5 hmean
against their word boxes (ties: the higher mean IoU of the matches), and the best one is written as JSON
(``best``) for ``evaluate --postprocess`` and the export. The dev data is not used here: a rule tuned on it would measure itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ocrapp.detection.metrics import DetCounts, match_counts
from ocrapp.detection.model import DEFAULT_ARCH, PostprocessConfig
from ocrapp.detection.predictor import DetectionPredictor

BIN_THRESHOLDS = (0.3, 0.4, 0.5)
BOX_THRESHOLDS = (0.1, 0.5, 0.6, 0.7)
UNCLIP_RATIOS = (0.9, 1.0, 1.1, 1.2, 1.3, 1.5)


def grid(bin_thresholds: Sequence[float] = BIN_THRESHOLDS, box_thresholds: Sequence[float] = BOX_THRESHOLDS,
         unclip_ratios: Sequence[float] = UNCLIP_RATIOS) -> list[PostprocessConfig]:
    return [PostprocessConfig(b, x, u) for b, x, u in itertools.product(bin_thresholds, box_thresholds, unclip_ratios)
            if x >= b or x == min(box_thresholds)]  # a box threshold below the bin threshold changes nothing


def score_settings(predictor: DetectionPredictor, pages: Iterable[tuple[np.ndarray, np.ndarray]],
                   settings: Sequence[PostprocessConfig]) -> list[tuple[PostprocessConfig, DetCounts]]:
    """``pages``: (RGB image, ground-truth quads (N, 4, 2)). One forward pass per page, then every setting."""
    totals = [DetCounts() for _ in settings]
    for image, quads in pages:
        (_, maps, metas), = predictor.iter_maps([image])
        for k, setting in enumerate(settings):
            setting.apply(predictor.postprocessor)
            found = predictor.polygons_from_map(maps[0], metas[0], image.shape[:2])
            totals[k] = totals[k].add(match_counts(list(quads), [p for p, _ in found]))
    return list(zip(settings, totals))


def best_setting(scored: Sequence[tuple[PostprocessConfig, DetCounts]]) -> PostprocessConfig:
    """Highest hmean at IoU 0.5; among equals, the tightest boxes (mean IoU of the matches)."""
    return max(scored, key=lambda item: (round(item[1].hmean, 4), item[1].mean_iou))[0]


def held_out_pages(data_dir: Path, limit: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    from ocrapp.training.data.pages import load_item
    from ocrapp.training.detector.data import list_items

    for path in list_items(data_dir, split="val")[:limit]:
        image, quads, _ = load_item(path)
        yield image, quads


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--arch", default=DEFAULT_ARCH)
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache/ocrapp/pages")
    ap.add_argument("--pages", type=int, default=60, help="held-out cache pages to score on")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    predictor = DetectionPredictor.from_weights(args.weights, args.arch)
    scored = score_settings(predictor, held_out_pages(args.data, args.pages), grid())
    best = best_setting(scored)
    for setting, counts in sorted(scored, key=lambda item: -item[1].hmean)[:10]:
        print(f"{setting}: {counts.as_dict()}", file=sys.stderr)
    counts_of = dict(scored)
    default = counts_of.get(PostprocessConfig())
    report = {"best": asdict(best), "best_counts": counts_of[best].as_dict(),
              "default_counts": default.as_dict() if default else None,
              "pages": args.pages, "weights": str(args.weights),
              "grid": [{**asdict(s), **c.as_dict()} for s, c in scored]}
    print(json.dumps({"best": report["best"], "best_counts": report["best_counts"],
                      "default_counts": report["default_counts"]}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def load_tuned(path: Path | None) -> PostprocessConfig | None:
    """The ``best`` setting of a tune JSON (None when no path is given)."""
    if path is None:
        return None
    return PostprocessConfig(**json.loads(Path(path).read_text())["best"])


if __name__ == "__main__":
    main()
