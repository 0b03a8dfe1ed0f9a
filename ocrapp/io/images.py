"""Raster image input: JPEG, PNG, TIFF (multi-page, 1-bit, 16-bit), WebP, BMP -> RGB uint8 arrays.

The pixel limit is checked from the header, before anything is decoded, so a decompression bomb costs
nothing. PIL's own global bomb check (``Image.MAX_IMAGE_PIXELS``) is left alone; its error is mapped to
the same one-line InputFileError.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ocrapp.errors import InputFileError

DEFAULT_MAX_PIXELS = 200_000_000
SUPPORTED_IMAGE_FORMATS = frozenset({"JPEG", "PNG", "TIFF", "WEBP", "BMP", "MPO"})
_MULTI_PAGE_FORMATS = frozenset({"TIFF"})


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: enough to validate before decoding."""

    format: str
    frame_count: int
    width: int
    height: int
    dpi: float | None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputFileError(f"{path}: image too large ({_reason(exc)})") from exc
    except UnidentifiedImageError as exc:
        raise InputFileError(f"{path}: not a supported image (cannot identify the format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read image: {_reason(exc)}") from exc
    if img.format not in SUPPORTED_IMAGE_FORMATS:
        img.close()
        raise InputFileError(f"{path}: unsupported image format {img.format}")
    return img


def _dpi(img: Image.Image) -> float | None:
    dpi = img.info.get("dpi")
    try:
        value = float(dpi[0]) if isinstance(dpi, (tuple, list)) else float(dpi)
    except (TypeError, ValueError, IndexError):
        return None
    # 1 dpi (or 0) is what many writers store for "unknown"; absurd values are ignored too.
    return value if 10.0 <= value <= 10000.0 else None


def _check_pixels(path: Path, width: int, height: int, max_pixels: int, what: str = "image") -> None:
    if width <= 0 or height <= 0:
        raise InputFileError(f"{path}: {what} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputFileError(
            f"{path}: {what} is {width}x{height} = {width * height / 1e6:.0f} MP, over the limit of "
            f"{max_pixels / 1e6:.0f} MP"
        )


def probe_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read the header only; raises InputFileError for unreadable, unsupported or over-limit images."""
    with _open(path) as img:
        frames = getattr(img, "n_frames", 1) if img.format in _MULTI_PAGE_FORMATS else 1
        _check_pixels(path, img.width, img.height, max_pixels)
        return ImageInfo(img.format or "", int(frames), img.width, img.height, _dpi(img))


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> HxWx3 uint8. Transparency is flattened onto white (text on a transparent
    background would otherwise turn black on black); 16-bit and float images are rescaled."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def iter_image_frames(
    path: Path, frames: Sequence[int] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[tuple[int, np.ndarray, float | None]]:
    """Yield (frame index, RGB uint8 array, dpi) for the selected frames (all when None), one at a time.

    EXIF orientation is applied. Truncated or corrupt data raise InputFileError when the frame is decoded.
    """
    with _open(path) as img:
        count = getattr(img, "n_frames", 1) if img.format in _MULTI_PAGE_FORMATS else 1
        wanted = list(range(count)) if frames is None else [i for i in frames if 0 <= i < count]
        for index in wanted:
            try:
                img.seek(index)
                _check_pixels(path, img.width, img.height, max_pixels, f"page {index + 1}")
                img.load()
                frame = ImageOps.exif_transpose(img)
                yield index, to_rgb_array(frame), _dpi(img)
            except InputFileError:
                raise
            except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
                where = f" (page {index + 1})" if count > 1 else ""
                raise InputFileError(f"{path}: corrupt or truncated image{where}: {_reason(exc)}") from exc


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The first page of an image file as RGB uint8."""
    for _, array, _ in iter_image_frames(Path(path), [0], max_pixels):
        return array
    raise InputFileError(f"{path}: image has no pages")
