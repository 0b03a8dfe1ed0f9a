"""Pick the inference size and the DB postprocessing (bin_thresh, box_thresh, unclip_ratio) for given weights.

    python -m ocrapp.detection.tune --weights runs/det/best.pt --data ~/.cache/ocrapp/pages --pages 60 \
        [--input-sizes 1024 1280] --json runs/det/postprocess.json [--store]

The probability maps of held-out pages of the *training* page cache (the validation split: ids divisible by 50,
never trained on) are computed once; every setting of the grid is then scored by one-to-one IoU >= 0.5 hmean of
the word boxes the pipeline reports (``detection.line_height``) against theirs (ties: the higher mean IoU of the
matches), at each input size (the longer page side the page is resized to: a larger one separates tightly set
words, at a cost in time), and the best one is written as JSON (``best``, ``input_size``) for ``evaluate
--postprocess`` and the export; ``--store`` also writes them into the metadata of the ``--weights`` safetensors
file, whose tensors stay as they are. The dev data is not used here:
a rule tuned on it would measure itself.
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

from ocrapp.detection.line_height import LineHeightRule, extend_to_line_height
from ocrapp.detection.metrics import DetCounts, match_counts
from ocrapp.detection.model import DEFAULT_ARCH, INPUT_SIZE_KEY, PostprocessConfig
from ocrapp.detection.predictor import DetectionPredictor
from ocrapp.safetensors_io import read_safetensors, write_safetensors

BIN_THRESHOLDS = (0.3, 0.4, 0.5)
BOX_THRESHOLDS = (0.1, 0.5, 0.6, 0.7)
UNCLIP_RATIOS = (0.9, 1.0, 1.1, 1.2, 1.3, 1.5)


def grid(bin_thresholds: Sequence[float] = BIN_THRESHOLDS, box_thresholds: Sequence[float] = BOX_THRESHOLDS,
         unclip_ratios: Sequence[float] = UNCLIP_RATIOS) -> list[PostprocessConfig]:
    return [PostprocessConfig(b, x, u) for b, x, u in itertools.product(bin_thresholds, box_thresholds, unclip_ratios)
            if x >= b or x == min(box_thresholds)]  # a box threshold below the bin threshold changes nothing


def score_settings(predictor: DetectionPredictor, pages: Iterable[tuple[np.ndarray, np.ndarray]],
                   settings: Sequence[PostprocessConfig],
                   line_height: LineHeightRule | None = LineHeightRule()) -> list[tuple[PostprocessConfig, DetCounts]]:
    """``pages``: (RGB image, ground-truth quads (N, 4, 2)). One forward pass per page, then every setting, scored
    on the word boxes the pipeline reports (``line_height``, see ``evaluate``)."""
    totals = [DetCounts() for _ in settings]
    for image, quads in pages:
        (_, maps, metas), = predictor.iter_maps([image])
        for k, setting in enumerate(settings):
            setting.apply(predictor.postprocessor)
            found = predictor.polygons_from_map(maps[0], metas[0], image.shape[:2])
            if line_height is not None:
                found = extend_to_line_height(found, line_height)
            totals[k] = totals[k].add(match_counts(list(quads), [p for p, _ in found]))
    return list(zip(settings, totals))


def rank(counts: DetCounts) -> tuple[float, float]:
    """Highest hmean at IoU 0.5 first; among equals, the tightest boxes (mean IoU of the matches)."""
    return round(counts.hmean, 4), counts.mean_iou


def best_setting(scored: Sequence[tuple[PostprocessConfig, DetCounts]]) -> PostprocessConfig:
    return max(scored, key=lambda item: rank(item[1]))[0]


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
    ap.add_argument("--input-sizes", type=int, nargs="+", default=[1024, 1280],
                    help="inference sizes to try (longer page side, px, multiples of 32)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--store", action="store_true",
                    help="write the chosen size and postprocessing into the --weights file (a .safetensors)")
    args = ap.parse_args(argv)
    if args.store and args.weights.suffix != ".safetensors":
        ap.error("--store needs --weights FILE.safetensors")
    torch.set_num_threads(args.threads)
    predictor = DetectionPredictor.from_weights(args.weights, args.arch)
    scored: list[tuple[int, PostprocessConfig, DetCounts]] = []
    for size in args.input_sizes:
        predictor.input_size = size
        scored += [(size, s, c) for s, c in score_settings(predictor, held_out_pages(args.data, args.pages), grid())]
    best_size, best, best_counts = max(scored, key=lambda item: rank(item[2]))
    for size, setting, counts in sorted(scored, key=lambda item: -item[2].hmean)[:10]:
        print(f"{size} px, {setting}: {counts.as_dict()}", file=sys.stderr)
    default = next((c for size, s, c in scored if s == PostprocessConfig() and size == args.input_sizes[0]), None)
    report = {"best": asdict(best), "input_size": best_size, "best_counts": best_counts.as_dict(),
              "default_counts": default.as_dict() if default else None,
              "pages": args.pages, "weights": str(args.weights),
              "grid": [{"input_size": size, **asdict(s), **c.as_dict()} for size, s, c in scored]}
    print(json.dumps({"best": report["best"], "input_size": best_size, "best_counts": report["best_counts"],
                      "default_counts": report["default_counts"]}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.store:
        store_choice(args.weights, best, best_size)


def store_choice(weights: Path, setting: PostprocessConfig, input_size: int) -> None:
    """Put ``setting`` and ``input_size`` into the metadata of the safetensors file ``weights`` (rewritten
    atomically, tensors unchanged)."""
    state, meta = read_safetensors(weights, "detector weights")
    write_safetensors(state, weights, {**meta, **setting.to_metadata(), INPUT_SIZE_KEY: str(input_size)})


def load_tuned(path: Path | None) -> PostprocessConfig | None:
    """The ``best`` setting of a tune JSON (None when no path is given)."""
    if path is None:
        return None
    return PostprocessConfig(**json.loads(Path(path).read_text())["best"])


def load_tuned_input_size(path: Path | None) -> int | None:
    """The ``input_size`` of a tune JSON (None when no path is given or the JSON predates it)."""
    if path is None:
        return None
    return json.loads(Path(path).read_text()).get("input_size")


if __name__ == "__main__":
    main()
