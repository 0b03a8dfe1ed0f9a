"""CLIP4STR (Zhao et al. 2023) on open_clip towers.

visual branch:      CLIP image encoder -> PARSeq-style visual decoder -> first guess
cross-modal branch: CLIP text encoder(first guess) ++ image tokens (detached) -> cross-modal decoder -> final

``clip_model`` is an open_clip ``CLIP`` so that its state dict has the OpenAI/OpenCLIP layout, and the whole
module has the official CLIP4STR layout (clip_model.*, visual_decoder.*, cross_decoder.*).
"""

from __future__ import annotations

import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.tokenizer import SimpleTokenizer
from torch import Tensor, nn

from ocrapp.recognition.charset import CharTokenizer
from ocrapp.recognition.clip4str.config import CROSS_DECODINGS, OUTPUT_BRANCHES, Clip4StrConfig
from ocrapp.recognition.clip4str.modules import Decoder, IncrementalDecoding


def _build_clip(cfg: Clip4StrConfig) -> CLIP:
    if cfg.vision == "vit":
        vision = CLIPVisionCfg(layers=cfg.vision_layers, width=cfg.vision_width, head_width=cfg.vision_head_width,
                               patch_size=cfg.patch_size, image_size=cfg.image_size)
    elif cfg.vision == "resnet":
        # ModifiedResNet sizes its (unused) attention pool from an int image size; we read the feature map.
        vision = CLIPVisionCfg(layers=cfg.vision_layers, width=cfg.vision_width, head_width=cfg.vision_head_width,
                               image_size=32)
    else:
        raise ValueError(f"unknown image tower {cfg.vision!r}")
    text = CLIPTextCfg(context_length=cfg.context_length, vocab_size=cfg.vocab_size, width=cfg.text_width,
                       heads=cfg.text_heads, layers=cfg.text_layers)
    clip = CLIP(embed_dim=cfg.embed_dim, vision_cfg=vision, text_cfg=text)
    if cfg.vision == "resnet":
        _keep_horizontal_resolution(clip.visual, cfg.resnet_late_stride)
        clip.visual.attnpool = nn.Identity()
    return clip


def _keep_horizontal_resolution(resnet: nn.Module, stride: tuple[int, int]) -> None:
    """Text lines are wide and short: pool only vertically in layer3/layer4 so columns stay distinct."""
    for layer in (resnet.layer3, resnet.layer4):
        block = layer[0]
        block.avgpool = nn.AvgPool2d(stride)
        if block.downsample is not None:
            block.downsample[0] = nn.AvgPool2d(stride)


def resnet_token_count(cfg: Clip4StrConfig) -> int:
    """Columns of the ModifiedResNet's last feature map (one row): the stem and layer2 halve the width, layer3 and
    layer4 divide it by ``resnet_late_stride``'s width."""
    return cfg.image_size[1] // (4 * 2 * cfg.resnet_late_stride[1] ** 2)


class Clip4Str(nn.Module):
    def __init__(self, cfg: Clip4StrConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = CharTokenizer(cfg.charset)
        self.text_tokenizer = SimpleTokenizer(context_length=cfg.context_length)
        self.clip_model = _build_clip(cfg)
        # Inference decodes with IncrementalDecoding (same logits, faster); False uses the full-prefix decoder.
        self.incremental_decoding = True
        # Inference may run the image tower under autocast in this dtype (the predictor sets bf16 on CPUs with native
        # bf16 instructions: half the tower's time); the decoders stay in the surrounding precision.
        self.image_autocast: torch.dtype | None = None
        if cfg.vision == "resnet":
            self.token_proj = nn.Linear(cfg.vision_width * 32, cfg.embed_dim)
            self.token_norm = nn.LayerNorm(cfg.embed_dim)
            if cfg.image_pos_embed:
                # zeros: a checkpoint trained without it keeps its function when it is added (see train.py)
                self.token_pos_embed = nn.Parameter(torch.zeros(1, resnet_token_count(cfg), cfg.embed_dim))
        steps = cfg.max_label_length + 1
        tok = self.tokenizer
        self.visual_decoder = Decoder(cfg.embed_dim, cfg.dec_heads, cfg.dec_mlp_ratio, cfg.dec_depth,
                                      tok.vocab_size, tok.num_classes, steps, cfg.dropout)
        self.cross_decoder = Decoder(cfg.embed_dim, cfg.dec_heads, cfg.dec_mlp_ratio, cfg.dec_depth,
                                     tok.vocab_size, tok.num_classes, steps, cfg.dropout)

    def fold_batchnorm(self) -> "Clip4Str":
        """Inference only: fold the ModifiedResNet's BatchNorms into the convolutions before them (same outputs,
        ~17% less image-encoder time on CPU). The model can no longer be trained afterwards."""
        if self.training:
            raise RuntimeError("fold_batchnorm() is for inference: call .eval() first")
        if self.cfg.vision != "resnet":
            return self
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        visual = self.clip_model.visual
        blocks = [visual] + [b for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4) for b in layer]
        for block in blocks:
            for i in (1, 2, 3):
                conv, bn = getattr(block, f"conv{i}"), getattr(block, f"bn{i}")
                if isinstance(bn, nn.BatchNorm2d):
                    setattr(block, f"conv{i}", fuse_conv_bn_eval(conv, bn))
                    setattr(block, f"bn{i}", nn.Identity())
            down = getattr(block, "downsample", None)
            if down is not None and isinstance(down[2], nn.BatchNorm2d):
                down[1] = fuse_conv_bn_eval(down[1], down[2])
                down[2] = nn.Identity()
        return self

    # -- encoders -----------------------------------------------------------------------------------------
    def encode_image(self, images: Tensor) -> Tensor:
        """All image tokens in the joint space: (B, N, embed_dim)."""
        if self.image_autocast is None or self.training:
            return self._encode_image(images)
        with torch.autocast(images.device.type, dtype=self.image_autocast):
            tokens = self._encode_image(images)
        return tokens.to(images.dtype)

    def _encode_image(self, images: Tensor) -> Tensor:
        visual = self.clip_model.visual
        if self.cfg.vision == "vit":
            x = visual._embeds(images)
            x = visual.transformer(x)
            x = visual.ln_post(x)
            return x @ visual.proj
        x = visual.stem(images) if hasattr(visual, "stem") else images
        x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))
        tokens = self.token_norm(self.token_proj(x.flatten(2).transpose(1, 2)))
        return tokens + self.token_pos_embed if self.cfg.image_pos_embed else tokens

    def encode_text_tokens(self, captions: list[str]) -> Tensor:
        """All token features of the CLIP text encoder for the given strings: (B, context, embed_dim)."""
        clip = self.clip_model
        ids = self.text_tokenizer(captions, context_length=self.cfg.context_length).to(clip.positional_embedding.device)
        x = clip.token_embedding(ids) + clip.positional_embedding[: ids.shape[1]]
        x = clip.transformer(x, attn_mask=clip.attn_mask[: ids.shape[1], : ids.shape[1]])
        x = clip.ln_final(x)
        return x @ clip.text_projection

    def cross_memory(self, image_tokens: Tensor, visual_logits: Tensor) -> Tensor:
        captions, _ = self.tokenizer.decode(visual_logits.detach().softmax(-1))
        text = self.encode_text_tokens(captions).to(image_tokens.dtype)
        return torch.cat([image_tokens.detach(), text], dim=1)

    # -- inference ----------------------------------------------------------------------------------------
    def _ar_decode(self, decoder: Decoder, memory: Tensor, num_steps: int, stop_early: bool) -> Tensor:
        bs, device = memory.shape[0], memory.device
        tok = self.tokenizer
        queries = decoder.pos_queries[:, :num_steps].expand(bs, -1, -1)
        mask = torch.triu(torch.full((num_steps, num_steps), float("-inf"), device=device), 1)
        tgt = torch.full((bs, num_steps), tok.pad_id, dtype=torch.long, device=device)
        tgt[:, 0] = tok.bos_id
        logits = []
        use_cache = self.incremental_decoding and len(decoder.layers) == 1 and not self.training
        incremental = IncrementalDecoding(decoder, memory, num_steps) if use_cache else None
        for i in range(num_steps):
            j = i + 1
            if incremental is not None:
                step = incremental.step(i, tgt[:, i])
            else:
                step = decoder(tgt[:, :j], memory, queries[:, i:j], mask[i:j, :j], mask[:j, :j])
            logits.append(step)
            if j < num_steps:
                tgt[:, j] = step.squeeze(1).argmax(-1)
                # One host sync every 4 steps instead of every step.
                if stop_early and i % 4 == 3 and (tgt[:, 1 : j + 1] == tok.eos_id).any(-1).all():
                    break
        return torch.cat(logits, dim=1)

    def _refine(self, decoder: Decoder, memory: Tensor, logits: Tensor) -> Tensor:
        """One cloze-mask refinement pass: every position sees the previous guess on both sides."""
        bs, steps = logits.shape[:2]
        device = memory.device
        tok = self.tokenizer
        mask = torch.triu(torch.full((steps, steps), float("-inf"), device=device), 1)
        query_mask = mask.clone()
        query_mask[torch.triu(torch.ones(steps, steps, dtype=torch.bool, device=device), 2)] = 0
        bos = torch.full((bs, 1), tok.bos_id, dtype=torch.long, device=device)
        tgt = torch.cat([bos, logits[:, :-1].argmax(-1)], dim=1)
        padding = (tgt == tok.eos_id).int().cumsum(-1) > 0
        queries = decoder.pos_queries[:, :steps].expand(bs, -1, -1)
        return decoder(tgt, memory, queries, query_mask, mask, padding)

    def sequence_confidence(self, logits: Tensor) -> Tensor:
        """Per-sequence confidence on the device: product of the greedy char probabilities up to and including
        the first EOS (as the tokenizer's decode reports it)."""
        max_p, ids = logits.float().softmax(-1).max(-1)
        after_eos = (ids == self.tokenizer.eos_id).int().cumsum(-1) - (ids == self.tokenizer.eos_id).int() > 0
        return max_p.masked_fill(after_eos, 1.0).log().sum(-1).exp()

    def text_log_prob(self, memory: Tensor, texts: list[str]) -> Tensor:
        """log p(text | image) under the visual decoder, left to right (teacher forcing, EOS included): (B,).
        ``memory``: image tokens (``encode_image``), one row per text. Texts must fit ``max_label_length``."""
        tok = self.tokenizer
        tgt = tok.encode(texts, memory.device)
        tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
        steps = tgt_in.shape[1]
        causal = torch.triu(torch.full((steps, steps), float("-inf"), device=memory.device), 1)
        padding = (tgt_in == tok.pad_id) | (tgt_in == tok.eos_id)
        logits = self.visual_decoder(tgt_in, memory, None, causal, causal, padding)
        picked = logits.float().log_softmax(-1).gather(-1, tgt_out.clamp(max=logits.shape[-1] - 1)[..., None])
        return (picked[..., 0] * (tgt_out != tok.pad_id)).sum(-1)

    def forward(self, images: Tensor, max_length: int | None = None, refine_iters: int = 1,
                branch: str | None = None, cross_decoding: str = "ar",
                cross_skip_confidence: float | None = None) -> Tensor:
        """Inference: logits (B, T, num_classes).

        ``branch``: "cross" = the cross-modal decoder's prediction (the paper's output), "visual" = the visual
        decoder's, "confident" = per crop whichever of the two is more confident (useful while the cross-modal
        branch, trained on the visual branch's guesses, is still behind it); None = ``cfg.output_branch``.
        ``cross_decoding``: "ar" = the cross-modal decoder decodes autoregressively, then refines; "fast" = one
        cloze pass with the visual branch's reading as context (CLIP4STR's ``cross_fast_decode``).
        ``cross_skip_confidence`` (branch "confident" only): crops whose visual reading is at least this
        confident keep it without running the cross-modal branch, which costs ~40% of a CPU read."""
        branch = branch or self.cfg.output_branch
        if branch not in OUTPUT_BRANCHES:
            raise ValueError(f"unknown branch {branch!r}")
        if cross_decoding not in CROSS_DECODINGS:
            raise ValueError(f"unknown cross_decoding {cross_decoding!r}")
        max_length = self.cfg.max_label_length if max_length is None else min(max_length, self.cfg.max_label_length)
        memory = self.encode_image(images)
        visual = self._ar_decode(self.visual_decoder, memory, max_length + 1, stop_early=True)
        for _ in range(refine_iters):
            visual = self._refine(self.visual_decoder, memory, visual)
        if branch == "visual":
            return visual
        if branch == "cross":
            return self._cross_branch(memory, visual, refine_iters, cross_decoding)
        visual_conf = self.sequence_confidence(visual)
        rows = torch.arange(len(visual), device=visual.device)
        if cross_skip_confidence is not None:
            rows = rows[visual_conf < cross_skip_confidence]
            if len(rows) == 0:
                return visual
        cross = self._cross_branch(memory[rows], visual[rows], refine_iters, cross_decoding)
        take_visual = visual_conf[rows] > self.sequence_confidence(cross)
        out = visual.clone()
        out[rows] = torch.where(take_visual[:, None, None], visual[rows], cross)
        return out

    def _cross_branch(self, memory: Tensor, visual: Tensor, refine_iters: int, cross_decoding: str) -> Tensor:
        """The cross-modal decoder's logits over image tokens + the text encoder's features of ``visual``."""
        cross_mem = self.cross_memory(memory, visual)
        if cross_decoding == "fast":
            return self._refine(self.cross_decoder, cross_mem, visual)
        cross = self._ar_decode(self.cross_decoder, cross_mem, visual.shape[1], stop_early=False)
        for _ in range(refine_iters):
            cross = self._refine(self.cross_decoder, cross_mem, cross)
        return cross
