"""Where the embedded default weights live: one file per model in ``models/``."""

from __future__ import annotations

import os
from pathlib import Path

MODELS_DIR = Path(os.environ.get("OCRAPP_MODELS_DIR", Path(__file__).resolve().parent.parent / "models"))

DEFAULT_RECOGNIZER = "recognizer_clip4str-s.safetensors"
# Words and their frequencies for correcting unsure readings (recognition.lexicon); built by
# ``python -m ocrapp.training.data.build_lexicon``.
DEFAULT_LEXICON = "lexicon.tsv.gz"


def models_dir() -> Path:
    return MODELS_DIR


def default_recognizer_path() -> Path:
    return MODELS_DIR / DEFAULT_RECOGNIZER


def default_lexicon_path() -> Path:
    return MODELS_DIR / DEFAULT_LEXICON


def default_detector_path(arch: str) -> Path:
    return MODELS_DIR / f"detector_{arch}.safetensors"
