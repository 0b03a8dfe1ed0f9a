"""docTR DBNet builders and weight loading.

Every model is built with ``pretrained=False, pretrained_backbone=False``: no download is ever attempted (a failed
download would leave a 0-byte file in docTR's cache). Weights come from files on disk only:

* our own fp16 safetensors (``models/detector_<arch>.safetensors``), cast to float32 on load;
* docTR's official checkpoint layout: a plain torch ``state_dict`` saved with ``torch.save`` (``.pt``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ocrapp.errors import ModelError
from ocrapp.safetensors_io import fp16_state, read_safetensors, write_safetensors


@dataclass(frozen=True)
class DetectorConfig:
    """A named detector: the docTR architecture and its default inference size."""

    name: str
    doctr_arch: str
    input_size: int = 1024
    note: str = ""
    head_chans: int | None = None  # None: docTR's default (256), i.e. compatible with docTR's checkpoints


DETECTOR_CONFIGS: dict[str, DetectorConfig] = {
    cfg.name: cfg
    for cfg in (
        DetectorConfig("db_mobilenet_v3_large_h96", "db_mobilenet_v3_large", 1024,
                       "~3.2M params, DB head with 96 channels (like PP-OCR's mobile DB): ~2.5x cheaper than the "
                       "256-channel head on CPU; the default, trained here", head_chans=96),
        DetectorConfig("db_mobilenet_v3_large", "db_mobilenet_v3_large", 1024,
                       "~4.2M params; docTR's layout (loads docTR checkpoints)"),
        DetectorConfig("db_resnet34", "db_resnet34", 1024, "~22M params"),
        DetectorConfig("db_resnet50", "db_resnet50", 1024, "~25M params; docTR's default, for GPU training"),
        DetectorConfig("linknet_resnet18", "linknet_resnet18", 1024, "LinkNet, ~12M params"),
    )
}
DEFAULT_ARCH = "db_mobilenet_v3_large_h96"
POSTPROCESS_KEY = "postprocess"  # safetensors metadata: the DB postprocessing the weights were tuned with
INPUT_SIZE_KEY = "input_size"  # ... and the inference size (longer page side, px) chosen with it


@dataclass(frozen=True)
class PostprocessConfig:
    """DB postprocessing (docTR's DBPostProcessor): threshold of the probability map, minimum mean probability
    of a kept box, and the ratio by which the shrunk text kernel is grown back (Vatti offset = area*ratio/perimeter).
    The defaults are docTR's; ``python -m ocrapp.detection.tune`` picks them for given weights on held-out pages of
    the training data, and the export writes them into the weight file."""

    bin_thresh: float = 0.3
    box_thresh: float = 0.1
    unclip_ratio: float = 1.5

    def apply(self, postprocessor) -> None:
        postprocessor.bin_thresh = self.bin_thresh
        postprocessor.box_thresh = self.box_thresh
        postprocessor.unclip_ratio = self.unclip_ratio

    def to_metadata(self) -> dict[str, str]:
        return {POSTPROCESS_KEY: json.dumps(asdict(self))}

    @staticmethod
    def from_metadata(meta: dict[str, str] | None) -> "PostprocessConfig":
        if not meta or POSTPROCESS_KEY not in meta:
            return PostprocessConfig()
        try:
            return PostprocessConfig(**json.loads(meta[POSTPROCESS_KEY]))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"bad {POSTPROCESS_KEY!r} entry in detector weights: {exc}") from exc


def build_detector(arch: str = DEFAULT_ARCH, assume_straight_pages: bool = False) -> nn.Module:
    """A randomly initialised docTR detection model (no download). ``assume_straight_pages=False`` makes the
    model's postprocessor return rotated quadrilaterals instead of axis-aligned boxes."""
    if arch not in DETECTOR_CONFIGS:
        raise ModelError(f"unknown detector architecture {arch!r}; known: {', '.join(DETECTOR_CONFIGS)}")
    from doctr.models import detection

    cfg = DETECTOR_CONFIGS[arch]
    builder = getattr(detection, cfg.doctr_arch)
    kwargs = {"head_chans": cfg.head_chans} if cfg.head_chans else {}
    return builder(pretrained=False, pretrained_backbone=False, assume_straight_pages=assume_straight_pages, **kwargs)


def read_detector_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state_dict, metadata); docTR/torch checkpoints have no metadata."""
    if path.suffix == ".safetensors" or path.name.endswith(".index.json") or not path.is_file():
        return read_safetensors(path, "detector weights")
    return _read_torch_state(path), {}


def _read_torch_state(path: Path) -> dict[str, torch.Tensor]:
    if path.stat().st_size == 0:
        raise ModelError(f"detector weights file is empty: {path}")
    import pathlib

    try:
        # our training checkpoints may carry their argparse paths: allow exactly that class, nothing else
        with torch.serialization.safe_globals([pathlib.PosixPath, pathlib.WindowsPath]):
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt / truncated / wrong format
        raise ModelError(f"cannot read detector weights {path}: {exc}") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # our training checkpoints
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a state_dict of tensors")
    # torch.compile / DataParallel prefixes
    return {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in state.items()}


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Strictly load ``state`` (any float dtype; cast to the model's dtype) or raise ModelError naming ``path``."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or bad_shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if bad_shapes:
            parts.append(f"{len(bad_shapes)} shape mismatches (e.g. {bad_shapes[0]})")
        raise ModelError(f"detector weights {path} do not match the architecture: " + "; ".join(parts))
    cast = {k: (v.to(own[k].dtype) if v.is_floating_point() else v.to(own[k].dtype)) for k, v in state.items()}
    model.load_state_dict(cast, strict=True)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Inference only: fold each BatchNorm that follows a (transposed) convolution in a Sequential into it; docTR's
    DBNets build every conv-BN pair that way. Same outputs; ~20% less forward time on a CPU (1280 px, 2 threads:
    0.40 -> 0.32 s). The model can no longer be trained afterwards."""
    if model.training:
        raise RuntimeError("fold_batchnorm() is for inference: call .eval() first")
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, norm = module[i], module[i + 1]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(norm, nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(conv, norm, transpose=isinstance(conv, nn.ConvTranspose2d))
                module[i + 1] = nn.Identity()
    return model


def load_detector(weights_path: str | Path, arch: str = DEFAULT_ARCH, device: str | torch.device = "cpu",
                  assume_straight_pages: bool = False) -> nn.Module:
    """Build ``arch`` and load weights from our fp16 safetensors or a docTR-style ``.pt`` state_dict.

    Raises ModelError (naming the file) when the file is missing, unreadable or does not match ``arch``."""
    path = Path(weights_path)
    state, meta = read_detector_weights(path)
    model = build_detector(arch, assume_straight_pages=assume_straight_pages)
    load_state_into(model, state, path)
    PostprocessConfig.from_metadata(meta).apply(model.postprocessor)
    model.tuned_input_size = stored_input_size(meta, path)
    return model.to(device).eval()


def inference_size(model: nn.Module, arch: str, requested: int | None = None) -> int:
    """The input size to run ``model`` at: ``requested``, else the one its weights were tuned at, else the
    architecture's default."""
    return requested or getattr(model, "tuned_input_size", None) or DETECTOR_CONFIGS[arch].input_size


def stored_input_size(meta: dict[str, str] | None, path: Path | None = None) -> int | None:
    """The inference size the weights were tuned at (``python -m ocrapp.detection.tune``), None if not stored."""
    if not meta or INPUT_SIZE_KEY not in meta:
        return None
    try:
        size = int(meta[INPUT_SIZE_KEY])
    except ValueError as exc:
        raise ModelError(f"bad {INPUT_SIZE_KEY!r} entry in detector weights {path or ''}: {exc}") from exc
    if not 128 <= size <= 4096 or size % 32:
        raise ModelError(f"bad {INPUT_SIZE_KEY!r} entry in detector weights {path or ''}: {size}")
    return size


def load_doctr_checkpoint(checkpoint_path: str | Path, arch: str = DEFAULT_ARCH,
                          device: str | torch.device = "cpu", assume_straight_pages: bool = False) -> nn.Module:
    """Load docTR's published checkpoint layout (``torch.save(model.state_dict())``, e.g. db_resnet50-*.pt)."""
    return load_detector(checkpoint_path, arch, device, assume_straight_pages)


def export_fp16_safetensors(model: nn.Module, out: str | Path, metadata: dict[str, str] | None = None,
                            max_shard_bytes: int | None = None) -> list[Path]:
    """The model's weights as fp16 safetensors; split into shards + index past ``max_shard_bytes``
    (``load_detector(out)`` reads either form). Returns the files written."""
    return write_safetensors(fp16_state(model), Path(out), metadata, max_shard_bytes)
