"""Word detection: docTR DBNet models trained here (see models/detector_*.md)."""

from ocrapp.detection.model import (
    DEFAULT_ARCH,
    DETECTOR_CONFIGS,
    DetectorConfig,
    build_detector,
    export_fp16_safetensors,
    load_detector,
    load_doctr_checkpoint,
)
from ocrapp.detection.predictor import DetectionPredictor, order_quad

__all__ = [
    "DEFAULT_ARCH", "DETECTOR_CONFIGS", "DetectorConfig", "DetectionPredictor", "build_detector",
    "export_fp16_safetensors", "load_detector", "load_doctr_checkpoint", "order_quad",
]
