"""Word detection on page images with a docTR DBNet: batched, aspect-preserving, polygons in page pixels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from ocrapp import accel
from ocrapp.document import Polygon
from ocrapp.detection.fragments import FragmentRule, merge_fragments
from ocrapp.detection.model import DEFAULT_ARCH, inference_size, load_detector
from ocrapp.detection.model import fold_batchnorm as fold_model_batchnorm
from ocrapp.detection.postprocess import RotatedDBPostprocessor
from ocrapp.detection.text_scale import TextScaleConfig, fitting_input_size

DEFAULT_MEAN = (0.798, 0.785, 0.772)  # docTR's DBNet normalisation
DEFAULT_STD = (0.264, 0.2749, 0.287)
CPU_BATCH = 2  # pages per forward pass on a CPU
GPU_BATCH = 16  # first batch on a GPU; grows with the free memory up to GPU_MAX_BATCH
GPU_MAX_BATCH = 64


def order_quad(points: np.ndarray) -> np.ndarray:
    """Order 4 points TL, TR, BR, BL (image coordinates, y down) for a roughly horizontal word."""
    pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
    c = pts.mean(0)
    ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
    pts = pts[np.argsort(ang)]  # clockwise on screen starting near -pi (left)
    # start at the point with the smallest x+y among the two upper points
    start = int(np.argmin(pts[:, 0] + pts[:, 1]))
    return np.roll(pts, -start, axis=0)


def resize_and_pad(pages: list[np.ndarray], size: int | Sequence[int],
                   multiple: int = 32) -> tuple[torch.Tensor, list[tuple[int, int, float]]]:
    """Resize each page so that its longer side is ``size`` (one for all, or one per page; aspect kept), pad
    bottom/right to a common shape (multiple of 32). Returns uint8 NCHW tensor and per page (resized_h, resized_w,
    scale)."""
    metas = []
    resized = []
    sizes = [size] * len(pages) if isinstance(size, int) else list(size)
    for page, side in zip(pages, sizes):
        if page.ndim != 3 or page.shape[2] != 3 or page.dtype != np.uint8:
            raise ValueError("pages must be RGB uint8 arrays of shape (H, W, 3)")
        h, w = page.shape[:2]
        scale = side / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        img = cv2.resize(page, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        resized.append(img)
        metas.append((nh, nw, scale))
    H = int(math.ceil(max(m[0] for m in metas) / multiple) * multiple)
    W = int(math.ceil(max(m[1] for m in metas) / multiple) * multiple)
    batch = np.full((len(pages), H, W, 3), 255, dtype=np.uint8)  # white padding, like paper
    for i, img in enumerate(resized):
        batch[i, : img.shape[0], : img.shape[1]] = img
    return torch.from_numpy(batch).permute(0, 3, 1, 2), metas


class DetectionPredictor:
    """Finds word polygons. ``predict(pages)`` -> per page a list of (Polygon TL,TR,BR,BL in page pixels, score).

    The probability map goes through docTR's DB postprocessing for rotated words (``RotatedDBPostprocessor``, with
    the thresholds of the model's own postprocessor), so rotated words come back as rotated quadrilaterals
    (minimum-area rectangles)."""

    def __init__(self, model: nn.Module, input_size: int = 1024, batch_size: int | None = None,
                 device: str | torch.device | None = None, bin_thresh: float | None = None,
                 box_thresh: float | None = None, max_batch_size: int | None = None,
                 fold_batchnorm: bool = False, text_scale: TextScaleConfig | None = TextScaleConfig(),
                 fragments: FragmentRule | None = FragmentRule(), low_precision: bool = True) -> None:
        """``fold_batchnorm`` takes ``model`` over for inference (``detection.model.fold_batchnorm``): faster, but
        it cannot be trained afterwards, so a training loop's validation leaves it False. ``text_scale``: a page
        whose characters would come out too large at ``input_size`` (a close-up) is read smaller (see
        ``text_scale``); None reads every page at ``input_size``. ``fragments``: boxes that touch or overlap along
        their line are joined into one word (``fragments.merge_fragments``: broken dot-matrix letters); None
        keeps the DB boxes as they are. ``low_precision``: bf16 on CPUs with native bf16 as well as on GPUs
        (``accel.low_precision_dtype``; about half the fp32 time, same boxes to a few pixels of the map)."""
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        if fold_batchnorm:
            fold_model_batchnorm(self.model)
        self.input_size = input_size
        self.text_scale = text_scale
        self.fragments = fragments
        self.low_precision = low_precision
        on_cpu = self.device.type == "cpu"
        # batch_size None: 2 pages on a CPU, 16 on a GPU (then sized from the free memory, halved on OOM)
        self.batch_size = batch_size or (CPU_BATCH if on_cpu else GPU_BATCH)
        self.max_batch_size = max_batch_size or (self.batch_size if on_cpu else max(self.batch_size, GPU_MAX_BATCH))
        cfg = getattr(model, "cfg", None) or {}
        self.mean = torch.tensor(cfg.get("mean", DEFAULT_MEAN), dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", DEFAULT_STD), dtype=torch.float32).view(1, 3, 1, 1)
        self.postprocessor = RotatedDBPostprocessor.like(model.postprocessor)
        if bin_thresh is not None:
            self.postprocessor.bin_thresh = bin_thresh
        if box_thresh is not None:
            self.postprocessor.box_thresh = box_thresh

    @classmethod
    def from_weights(cls, weights_path: str | Path, arch: str = DEFAULT_ARCH, device: str = "cpu",
                     input_size: int | None = None, **kwargs) -> "DetectionPredictor":
        """``input_size`` None: the size stored in the weights by the tuner, else the architecture's default."""
        model = load_detector(weights_path, arch, device, assume_straight_pages=False)
        kwargs.setdefault("fold_batchnorm", True)
        return cls(model, inference_size(model, arch, input_size), device=device, **kwargs)

    def prob_maps(self, batch_u8: torch.Tensor) -> np.ndarray:
        if self.device.type == "cuda":  # uint8 from pinned memory, normalised on the GPU
            batch_u8 = batch_u8.pin_memory()
        x = batch_u8.to(self.device, non_blocking=True).float().div_(255.0)
        x = (x - self.mean.to(self.device)) / self.std.to(self.device)
        with torch.inference_mode(), accel.autocast(self.device, low_precision_cpu=self.low_precision):
            # docTR's models return bare logits when ``exportable``: no postprocessing of the padded batch here
            exportable = self.model.exportable
            self.model.exportable = True
            try:
                logits = self.model(x)["logits"]
            finally:
                self.model.exportable = exportable
            prob = torch.sigmoid(logits.float())
        return prob.permute(0, 2, 3, 1).cpu().numpy()  # N,H,W,C

    def page_input_size(self, page: np.ndarray) -> int:
        """The longer side ``page`` is read at: ``input_size``, smaller for a close-up (``text_scale``)."""
        if self.text_scale is None:
            return self.input_size
        return fitting_input_size(page, self.input_size, self.text_scale)

    def iter_maps(self, pages: list[np.ndarray]):
        """Probability maps of ``pages`` in batches, for ``polygons_from_map`` (one forward pass can serve several
        postprocessing settings); yields (pages of the batch, maps N,H,W,C, resize metas). An out-of-memory error
        halves the batch and retries the same pages; on a GPU the batch grows while the memory per page fits."""
        start = 0
        while start < len(pages):
            chunk = pages[start : start + self.batch_size]
            batch, metas = resize_and_pad(chunk, [self.page_input_size(page) for page in chunk])
            baseline = accel.start_peak(self.device)
            try:
                maps = self.prob_maps(batch)
            except Exception as exc:
                if not accel.is_oom(exc) or self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                accel.release_cached(self.device)
                continue
            peak, free = accel.peak_since(self.device, baseline), accel.free_memory(self.device)
            if peak is not None and free is not None and len(chunk) == self.batch_size:
                self.batch_size = accel.fit_batch(peak / len(chunk), free, self.batch_size, self.max_batch_size)
            start += len(chunk)
            yield chunk, maps, metas

    def predict(self, pages: list[np.ndarray]) -> list[list[tuple[Polygon, float]]]:
        results: list[list[tuple[Polygon, float]]] = []
        for chunk, maps, metas in self.iter_maps(pages):
            for page, pmap, meta in zip(chunk, maps, metas):
                results.append(self.polygons_from_map(pmap, meta, page.shape[:2]))
        return results

    def polygons_from_map(self, pmap: np.ndarray, meta: tuple[int, int, float],
                          page_shape: tuple[int, int]) -> list[tuple[Polygon, float]]:
        """The DB postprocessor on one page's probability map -> (polygon in page pixels, score) per word."""
        nh, nw, _scale = meta
        # crop the map to the un-padded region so that relative coords map onto the page
        crop = np.ascontiguousarray(pmap[:nh, :nw])
        preds = self.postprocessor.boxes(crop[..., 0])  # (N, 5, 2): corners, then (0, score)
        H, W = page_shape
        words = []
        for pred in preds:
            quad = np.asarray(pred[:4], dtype=np.float64) * np.array([W, H])
            quad[:, 0] = quad[:, 0].clip(0, W)
            quad[:, 1] = quad[:, 1].clip(0, H)
            quad = order_quad(quad)
            words.append((Polygon(tuple((float(x), float(y)) for x, y in quad)), float(pred[4][1])))
        return words if self.fragments is None else merge_fragments(words, self.fragments)

    __call__ = predict
