"""Training crops from the page cache: pages scaled like the inference input, random crops with their quads."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ocrapp.detection.model import build_detector
from ocrapp.training.data.pages import load_item

VAL_EVERY = 50  # item ids divisible by this are validation pages, never trained on


def list_items(data_dir: Path, split: str = "train") -> list[Path]:
    page_dir = data_dir / "pages" if (data_dir / "pages").is_dir() else data_dir
    items = sorted(page_dir.glob("*.json"))
    if split == "train":
        return [p for p in items if int(p.stem) % VAL_EVERY != 0]
    return [p for p in items if int(p.stem) % VAL_EVERY == 0]


def make_crop(img: np.ndarray, quads: np.ndarray, rng: random.Random, crop: int, infer_size: int = 1024,
              scale_range: tuple[float, float] = (0.7, 1.35)) -> tuple[np.ndarray, np.ndarray]:
    """Scale the page so that its longer side is ``infer_size * U(scale_range)`` (what the predictor sees, with
    jitter), then cut a ``crop`` x ``crop`` window (white padding), centred on a word 80% of the time.
    Returns (RGB uint8 crop, quads relative to the crop in [0, 1], float32 (N, 4, 2))."""
    h, w = img.shape[:2]
    f = infer_size * rng.uniform(*scale_range) / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    q = quads * np.float32([nw / w, nh / h])
    if len(q) and rng.random() < 0.8:
        cx, cy = q[rng.randrange(len(q))].mean(0)
        x0 = int(cx - crop / 2 + rng.uniform(-crop / 3, crop / 3))
        y0 = int(cy - crop / 2 + rng.uniform(-crop / 3, crop / 3))
    else:
        x0 = rng.randint(0, max(0, nw - crop))
        y0 = rng.randint(0, max(0, nh - crop))
    x0 = min(max(x0, 0), max(0, nw - crop))
    y0 = min(max(y0, 0), max(0, nh - crop))
    out = np.full((crop, crop, 3), 255, np.uint8)
    part = img[y0 : y0 + crop, x0 : x0 + crop]
    out[: part.shape[0], : part.shape[1]] = part
    q = q - np.float32([x0, y0])
    if len(q):
        inside = (q[..., 0].max(1) > 0) & (q[..., 1].max(1) > 0) & (q[..., 0].min(1) < crop) & (q[..., 1].min(1) < crop)
        q = q[inside]
    q = np.clip(q / crop, 0, 1).astype(np.float32)
    if len(q):  # drop slivers left by the crop border
        wh = q.max(1) - q.min(1)
        q = q[(wh[:, 0] * crop >= 2) & (wh[:, 1] * crop >= 2)]
    if len(q):  # clipping can merge corners (NaN in docTR's threshold map): use the clipped box there
        edges = np.linalg.norm(q - np.roll(q, -1, axis=1), axis=2).min(1) * crop
        bad = edges < 0.5
        if bad.any():
            lo, hi = q[bad].min(1), q[bad].max(1)
            q[bad] = np.stack([lo, np.stack([hi[:, 0], lo[:, 1]], 1), hi, np.stack([lo[:, 0], hi[:, 1]], 1)], 1)
    return out, q.reshape(-1, 4, 2)


def photometric(img: np.ndarray, rng: random.Random) -> np.ndarray:
    if rng.random() < 0.5:
        a = rng.uniform(0.75, 1.25)
        b = rng.uniform(-25, 25)
        img = np.clip(img.astype(np.float32) * a + b, 0, 255).astype(np.uint8)
    if rng.random() < 0.15:
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, 2)
    if rng.random() < 0.05:
        img = 255 - img  # inverted (white on dark) text
    return img


class CropStream(IterableDataset):
    """Endless random training crops; re-lists the page cache every ``rescan_s`` seconds to use new pages.

    With ``target_arch`` each item also carries its DB targets (docTR's ``build_target`` of that architecture, a
    tuple of four (1, 1, crop, crop) arrays), built here in the loader worker: on a GPU host the main process spent
    most of each step building them (16 crops of 512 px: about 1 s of numpy, session 9)."""

    def __init__(self, data_dir: Path, crop: int = 512, infer_size: int = 1024, seed: int = 0,
                 rescan_s: float = 120.0, target_arch: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.crop = crop
        self.infer_size = infer_size
        self.seed = seed
        self.rescan_s = rescan_s
        self.target_arch = target_arch

    def __iter__(self):
        info = get_worker_info()
        wid = info.id if info else 0
        rng = random.Random(self.seed * 7919 + wid * 104729 + int(time.time()))
        cv2.setNumThreads(1)
        target_builder = build_detector(self.target_arch, assume_straight_pages=False) if self.target_arch else None
        items: list[Path] = []
        last = -math.inf
        while True:
            if time.monotonic() - last > self.rescan_s:
                items = list_items(self.data_dir, "train") or items
                last = time.monotonic()
            if not items:
                raise RuntimeError(f"no training pages in {self.data_dir}")
            path = rng.choice(items)
            try:
                img, quads, _ = load_item(path)
            except Exception:
                continue
            crop, q = make_crop(img, quads, rng, self.crop, self.infer_size)
            crop = photometric(crop, rng)
            image = torch.from_numpy(crop).permute(2, 0, 1).contiguous()
            if target_builder is None:
                yield image, q
            else:
                yield image, q, target_builder.build_target([{"words": q}], (1, self.crop, self.crop))


DBTargets = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def collate(batch):
    """(images, quads) or, from a stream with ``target_arch``, (images, quads, DB targets of the whole batch)."""
    imgs = torch.stack([b[0] for b in batch])
    quads = [b[1] for b in batch]
    if len(batch[0]) == 2:
        return imgs, quads
    targets: DBTargets = tuple(np.concatenate([b[2][k] for b in batch]) for k in range(4))  # type: ignore[assignment]
    return imgs, quads, targets


@contextmanager
def precomputed_targets(model: torch.nn.Module, targets: DBTargets | None) -> Iterator[None]:
    """While active, the model's DB loss uses ``targets`` (built by the loader workers) instead of building them
    from the quads itself; ``None`` changes nothing. The shapes are checked against what the loss asks for."""
    if targets is None:
        yield
        return

    def build_target(_words: list, output_shape: tuple[int, int, int]) -> DBTargets:
        if targets[0].shape[1:] != tuple(output_shape):
            raise ValueError(f"precomputed DB targets {targets[0].shape[1:]} vs the loss's shape {output_shape}")
        return targets

    model.build_target = build_target  # an instance attribute shadows the method for this step only
    try:
        yield
    finally:
        del model.build_target
