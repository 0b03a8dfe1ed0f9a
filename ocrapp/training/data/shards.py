"""A pre-rendered cache of word images: fixed-size uint8 shards plus their labels.

Rendering competes with training for the same two cores, so word images are rendered once, at the
recognizer's input size, into shards: ``<name>.npy`` (N, H, W, 3) uint8 and ``<name>.txt`` (one label a
line, UTF-8). A shard is written to a temporary name and renamed when complete, so a reader never sees a
half-written shard and a killed writer leaves nothing behind to clean up.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np


def write_shard(directory: Path, name: str, images: np.ndarray, labels: list[str]) -> Path:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"shard images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if any("\n" in label for label in labels):
        raise ValueError("labels must not contain newlines")
    directory.mkdir(parents=True, exist_ok=True)
    tmp_npy = directory / f".{name}.npy.tmp"
    tmp_txt = directory / f".{name}.txt.tmp"
    with open(tmp_npy, "wb") as fh:
        np.save(fh, images)
    tmp_txt.write_text("\n".join(labels) + "\n", encoding="utf-8")
    os.replace(tmp_txt, directory / f"{name}.txt")
    os.replace(tmp_npy, directory / f"{name}.npy")  # the .npy appearing marks the shard complete
    return directory / f"{name}.npy"


@dataclass
class Shard:
    images: np.ndarray  # memory-mapped (N, H, W, 3)
    labels: list[str]


def load_shard(npy: Path) -> Shard:
    labels = npy.with_suffix(".txt").read_text(encoding="utf-8").split("\n")[:-1]
    images = np.load(npy, mmap_mode="r")
    if len(labels) != len(images):
        raise ValueError(f"{npy}: {len(images)} images but {len(labels)} labels")
    return Shard(images, labels)


def list_shards(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.npy") if not p.name.startswith("."))


class ShardStream:
    """Endless shuffled batches over every complete shard under ``roots``.

    Rescans for new shards at every pass, so training can start while the data engine is still writing.
    ``weights`` gives each root's share of the data (e.g. synthetic vs real crops); samples are drawn in pools
    of ``pool_batches`` batches (so that the shares hold at batch scale too) and shuffled within the pool.

    Batches mix label lengths on purpose. Batches of one label length (bucketing, to save decoder padding)
    let the image tower's BatchNorm pass the batch's word length to the decoders through the batch
    statistics: the network learnt to read the length from them, and at inference, with running statistics,
    read short words as long ones. ``psm_loss`` groups a batch by length for the decoders instead.
    """

    def __init__(self, roots: list[Path], batch_size: int, weights: list[float] | None = None, seed: int = 0,
                 max_label_length: int | None = None, pool_batches: int = 16) -> None:
        self.roots = roots
        self.batch_size = batch_size
        self.weights = weights or [1.0] * len(roots)
        self.rng = random.Random(seed)
        self.max_label_length = max_label_length
        self.pool_batches = pool_batches
        self._cache: dict[Path, Shard] = {}

    def _index(self) -> list[list[tuple[Path, int]]]:
        per_root = []
        for root in self.roots:
            entries = []
            for npy in list_shards(root):
                shard = self._cache.get(npy)
                if shard is None:
                    shard = self._cache[npy] = load_shard(npy)
                entries.extend((npy, i) for i, label in enumerate(shard.labels)
                               if self.max_label_length is None or 0 < len(label) <= self.max_label_length)
            per_root.append(entries)
        return per_root

    def __iter__(self) -> Iterator[tuple[np.ndarray, list[str]]]:
        while True:
            per_root = self._index()
            live = [(entries, w) for entries, w in zip(per_root, self.weights) if entries]
            if not live:
                raise FileNotFoundError(f"no shards under {', '.join(map(str, self.roots))}")
            total = sum(w for _, w in live)
            epoch_len = max(len(e) for e, _ in live)
            for entries, _ in live:
                self.rng.shuffle(entries)
            cursors = [0] * len(live)
            pool_size = self.batch_size * self.pool_batches
            for _ in range(max(1, epoch_len // pool_size)):
                picks: list[tuple[Path, int]] = []
                for k, (entries, w) in enumerate(live):
                    n = round(pool_size * w / total) if k < len(live) - 1 else pool_size - len(picks)
                    for _ in range(n):
                        picks.append(entries[cursors[k] % len(entries)])
                        cursors[k] += 1
                self.rng.shuffle(picks)
                for i in range(0, len(picks), self.batch_size):
                    yield self._batch(picks[i:i + self.batch_size])

    def _batch(self, picks: list[tuple[Path, int]]) -> tuple[np.ndarray, list[str]]:
        images = np.stack([self._cache[npy].images[i] for npy, i in picks])
        labels = [self._cache[npy].labels[i] for npy, i in picks]
        return images, labels
