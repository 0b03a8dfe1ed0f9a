"""Named CLIP4STR configurations: the embedded default and the official shapes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ocrapp.recognition.charset import ASCII_PRINTABLE, DOCUMENT_CHARSET


# The readings inference can return (see Clip4Str.forward).
OUTPUT_BRANCHES = ("cross", "visual", "confident")
CROSS_DECODINGS = ("ar", "fast")  # see Clip4Str.forward


@dataclass(frozen=True)
class Clip4StrConfig:
    name: str
    charset: str = DOCUMENT_CHARSET
    image_size: tuple[int, int] = (32, 128)  # (height, width)
    # Image tower: "vit" = open_clip VisionTransformer, "resnet" = open_clip ModifiedResNet.
    vision: str = "vit"
    vision_width: int = 256
    vision_layers: int | tuple[int, int, int, int] = 6
    vision_head_width: int = 64
    patch_size: tuple[int, int] = (8, 8)
    # Pool strides of ModifiedResNet's layer3/layer4 (H, W): (2, 1) keeps horizontal resolution for text.
    resnet_late_stride: tuple[int, int] = (2, 1)
    # A learned position embedding on the ModifiedResNet's image tokens (the ViT has its own). Without it the
    # decoder can locate a column only through its content and the borders' zero padding.
    image_pos_embed: bool = False
    embed_dim: int = 256  # CLIP joint space = decoder width (CLIP4STR's use_share_dim)
    text_width: int = 256
    text_layers: int = 4
    text_heads: int = 4
    context_length: int = 16
    vocab_size: int = 49408  # CLIP BPE
    dec_heads: int = 8
    dec_mlp_ratio: int = 4
    dec_depth: int = 1
    max_label_length: int = 25
    # The reading returned at inference (see Clip4Str.forward): "cross" as in the paper, "visual" or "confident".
    output_branch: str = "cross"
    dropout: float = 0.1  # the small CPU configs use 0: on CPU dropout costs ~15% of a training step
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "Clip4StrConfig":
        data = dict(data)
        for key in ("image_size", "patch_size", "resnet_late_stride", "mean", "std"):
            if key in data:
                data[key] = tuple(data[key])
        if isinstance(data.get("vision_layers"), list):
            data["vision_layers"] = tuple(data["vision_layers"])
        return Clip4StrConfig(**data)


CONFIGS: dict[str, Clip4StrConfig] = {
    # Embedded default, trained here on CPU: a ModifiedResNet image tower (see models/recognizer card).
    "clip4str-s": Clip4StrConfig(
        name="clip4str-s", vision="resnet", vision_width=32, vision_layers=(1, 2, 2, 1), embed_dim=192,
        text_width=192, text_layers=3, text_heads=4, dec_heads=4, dropout=0.0, image_pos_embed=True,
    ),
    # The same size class with a ViT tower (patch 8x8 -> 4x16 tokens), kept for the tower comparison.
    "clip4str-s-vit": Clip4StrConfig(
        name="clip4str-s-vit", vision="vit", vision_width=256, vision_layers=6, vision_head_width=64,
        patch_size=(8, 8), embed_dim=192, text_width=192, text_layers=3, text_heads=4, dec_heads=4, dropout=0.0,
    ),
    # A minimal shape for tests and CPU checks of the recipes.
    "clip4str-tiny": Clip4StrConfig(
        name="clip4str-tiny", vision="resnet", vision_width=16, vision_layers=(1, 1, 1, 1), embed_dim=64,
        text_width=64, text_layers=1, text_heads=2, dec_heads=2, dec_mlp_ratio=2, dropout=0.0, max_label_length=12,
        image_pos_embed=True,
    ),
    # Official shapes (CLIP4STR-B and -L on OpenAI CLIP ViT-B/16 and ViT-L/14, 224x224, 94-char charset).
    "clip4str-b16": Clip4StrConfig(
        name="clip4str-b16", charset=ASCII_PRINTABLE, image_size=(224, 224), vision="vit", vision_width=768,
        vision_layers=12, vision_head_width=64, patch_size=(16, 16), embed_dim=512, text_width=512, text_layers=12,
        text_heads=8, context_length=16, dec_heads=8,
    ),
    "clip4str-l14": Clip4StrConfig(
        name="clip4str-l14", charset=ASCII_PRINTABLE, image_size=(224, 224), vision="vit", vision_width=1024,
        vision_layers=24, vision_head_width=64, patch_size=(14, 14), embed_dim=768, text_width=768,
        text_layers=12, text_heads=12, context_length=16, dec_heads=12,
    ),
}
