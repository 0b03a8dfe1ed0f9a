"""Scan / phone-photo simulation for whole pages. Geometric steps move the word quadrilaterals with the pixels.

quads: float32 array (N, 4, 2) in page pixels. Every function returns (image, quads).
"""

from __future__ import annotations

import random

import cv2
import numpy as np

from ocrapp.training.data.crop_blur import motion_kernel


def _warp_quads(quads: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    if len(quads) == 0:
        return quads.reshape(0, 4, 2).astype(np.float32)
    pts = quads.reshape(-1, 1, 2).astype(np.float32)
    if matrix.shape == (2, 3):
        matrix = np.vstack([matrix, [0, 0, 1]])
    return cv2.perspectiveTransform(pts, matrix.astype(np.float64)).reshape(-1, 4, 2)


def rotate90(img: np.ndarray, quads: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by k*90 degrees counter-clockwise."""
    k %= 4
    if k == 0:
        return img, quads
    h, w = img.shape[:2]
    out = np.ascontiguousarray(np.rot90(img, k))
    q = quads.copy()
    x, y = quads[..., 0], quads[..., 1]
    if k == 1:
        q[..., 0], q[..., 1] = y, w - x
    elif k == 2:
        q[..., 0], q[..., 1] = w - x, h - y
    else:
        q[..., 0], q[..., 1] = h - y, x
    return out, q


def _background(rng: random.Random, h: int, w: int) -> np.ndarray:
    base = np.array([rng.randint(20, 200) for _ in range(3)], dtype=np.float32)
    small = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(5, 40), (max(2, h // 64), max(2, w // 64), 3))
    tex = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base + tex, 0, 255).astype(np.uint8)


def skew(img: np.ndarray, quads: np.ndarray, rng: random.Random, max_deg: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    angle = rng.uniform(-max_deg, max_deg)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    fill = tuple(int(v) for v in np.median(img.reshape(-1, 3)[:: 97], axis=0)) if rng.random() < 0.7 else (
        rng.randint(0, 255),) * 3
    out = cv2.warpAffine(img, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=fill)
    return out, _warp_quads(quads, m)


def perspective_photo(img: np.ndarray, quads: np.ndarray, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Page photographed by a phone: page corners jittered, page placed on a textured background."""
    h, w = img.shape[:2]
    pad = rng.uniform(0.03, 0.15)
    W, H = int(w * (1 + 2 * pad)), int(h * (1 + 2 * pad))
    j = rng.uniform(0.02, 0.08)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    base = np.float32([[w * pad, h * pad], [w * (1 + pad), h * pad], [w * (1 + pad), h * (1 + pad)], [w * pad, h * (1 + pad)]])
    dst = base + np.float32([[rng.uniform(-j, j) * w, rng.uniform(-j, j) * h] for _ in range(4)])
    m = cv2.getPerspectiveTransform(src, dst)
    bg = _background(rng, H, W)
    warped = cv2.warpPerspective(img, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, (W, H))
    out = np.where(mask[..., None] > 127, warped, bg)
    return out, _warp_quads(quads, m)


def lighting(img: np.ndarray, rng: random.Random) -> np.ndarray:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h:8, 0:w:8].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / max(h, w)
    gain = 1.0 - rng.uniform(0.1, 0.5) * d
    if rng.random() < 0.5:  # cast shadow: a darker half-plane with soft edge
        a = rng.uniform(0, 2 * np.pi)
        s = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
        gain *= 1 - rng.uniform(0.15, 0.45) / (1 + np.exp(-s / rng.uniform(5, 60)))
    gain = cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
    tint = np.array([rng.uniform(0.9, 1.05) for _ in range(3)], np.float32)
    return np.clip(img.astype(np.float32) * gain[..., None] * tint, 0, 255).astype(np.uint8)


def blur(img: np.ndarray, rng: random.Random) -> np.ndarray:
    if rng.random() < 0.6:
        k = rng.choice([3, 3, 5])
        return cv2.GaussianBlur(img, (k, k), rng.uniform(0.4, 1.4))
    k = rng.choice([3, 5, 7])
    return cv2.filter2D(img, -1, motion_kernel(k, rng.uniform(0, 180)))


def noise(img: np.ndarray, rng: random.Random) -> np.ndarray:
    g = np.random.default_rng(rng.randrange(1 << 30))
    n = g.normal(0, rng.uniform(3, 14), img.shape[:2])[..., None]
    return np.clip(img.astype(np.float32) + n, 0, 255).astype(np.uint8)


def low_dpi(img: np.ndarray, quads: np.ndarray, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Down-sample (a low-resolution scan); the page keeps its lower pixel size."""
    f = rng.uniform(0.45, 0.8)
    h, w = img.shape[:2]
    out = cv2.resize(img, (max(32, int(w * f)), max(32, int(h * f))), interpolation=cv2.INTER_AREA)
    return out, quads * np.float32([out.shape[1] / w, out.shape[0] / h])


def binarise(img: np.ndarray, rng: random.Random) -> np.ndarray:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if rng.random() < 0.5:
        _, b = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    else:
        b = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 31, rng.uniform(5, 15))
    return cv2.cvtColor(b, cv2.COLOR_GRAY2RGB)


def jpeg(img: np.ndarray, rng: random.Random) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, rng.randint(25, 85)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy() if ok else img


def text_height(quads: np.ndarray) -> float:
    """Median height of the word quads (TL-BL edge), in pixels."""
    if len(quads) == 0:
        return 0.0
    return float(np.median(np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1)))


def dot_matrix(img: np.ndarray, letter_height: float, rng: random.Random) -> np.ndarray:
    """Dot-matrix print (till receipts, old printers): the ink is redrawn as round dots on a square grid of 6.5-9
    dots per letter height, so that strokes break into separate dots. Pages whose text is too small for a grid of
    at least 3 px are returned unchanged."""
    pitch = int(round(letter_height / rng.uniform(6.5, 9.0)))
    if pitch < 3:
        return img
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    _, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    ink = ink.astype(bool)
    if not ink.any() or ink.all():
        return img
    h, w = ink.shape
    gh, gw = h // pitch, w // pitch
    cells = ink[:gh * pitch, :gw * pitch].reshape(gh, pitch, gw, pitch).mean(axis=(1, 3)) > 0.12
    yy, xx = np.mgrid[0:pitch, 0:pitch] + 0.5
    radius = rng.uniform(0.28, 0.42) * pitch  # below half the pitch: the dots do not touch
    stamp = (yy - pitch / 2) ** 2 + (xx - pitch / 2) ** 2 <= radius ** 2
    dots = np.zeros_like(ink)
    dots[:gh * pitch, :gw * pitch] = np.kron(cells, stamp).astype(bool)
    out = img.copy()
    out[ink] = np.median(img[~ink], axis=0).astype(np.uint8)  # the paper where the ink was
    out[dots] = np.median(img[ink], axis=0).astype(np.uint8)
    return out


def simulate(img: np.ndarray, quads: np.ndarray, rng: random.Random, strength: float | None = None,
             dot_matrix_p: float = 0.03) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Random scan/photo pipeline. ~25% of pages stay clean (born-digital look). Returns (img, quads, ops).
    ``dot_matrix_p``: the chance that the page was printed in dot matrix (higher for receipts)."""
    ops: list[str] = []
    quads = quads.astype(np.float32)
    s = rng.random() if strength is None else strength
    if rng.random() < dot_matrix_p:
        dotted = dot_matrix(img, text_height(quads), rng)
        if dotted is not img:
            img = dotted
            ops.append("dot_matrix")
    if s < 0.25:
        pass
    else:
        if rng.random() < 0.2:
            img, quads = low_dpi(img, quads, rng)
            ops.append("low_dpi")
        r = rng.random()
        if r < 0.25:
            img, quads = perspective_photo(img, quads, rng)
            ops.append("photo")
        elif r < 0.6:
            img, quads = skew(img, quads, rng, 10.0 if rng.random() < 0.5 else 3.0)
            ops.append("skew")
        if rng.random() < 0.35 or "photo" in ops:
            img = lighting(img, rng)
            ops.append("light")
        if rng.random() < 0.1 and "photo" not in ops:
            img = binarise(img, rng)
            ops.append("binarise")
        if rng.random() < 0.35:
            img = blur(img, rng)
            ops.append("blur")
        if rng.random() < 0.3:
            img = noise(img, rng)
            ops.append("noise")
        if rng.random() < 0.4:
            img = jpeg(img, rng)
            ops.append("jpeg")
    if rng.random() < 0.12:
        k = rng.choice([1, 2, 3])
        img, quads = rotate90(img, quads, k)
        ops.append(f"rot{90 * k}")
    return np.ascontiguousarray(img), quads, ops
