"""CLIP4STR training logic (kept apart from the network, as PARSeq's system.py is).

Permuted sequence modelling: each batch is decoded under K attention-mask permutations of the target order
(forward and reverse always, the rest random, mirrored in pairs); the visual and the cross-modal decoder are
both trained on every permutation, the cross-modal one over image tokens (detached) ++ CLIP text features of
the visual branch's own first guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ocrapp.recognition.clip4str.model import Clip4Str


@dataclass(frozen=True)
class PsmConfig:
    perm_num: int = 6
    perm_forward: bool = True
    perm_mirrored: bool = True
    cross_loss_weight: float = 1.0
    # The decoders run on the batch split into this many groups of similar label length: each group is padded
    # only to its own longest label. The image tower still sees the whole, mixed batch (see ShardStream).
    length_groups: int = 3


class PermutationSampler:
    def __init__(self, cfg: PsmConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)

    def __call__(self, max_num_chars: int, device: torch.device) -> Tensor:
        """Permutations over positions [BOS, c1..cT, EOS] of shape (K, T+2); BOS stays first, EOS last."""
        cfg = self.cfg
        if max_num_chars == 1:
            return torch.arange(3, device=device).unsqueeze(0)
        max_gen = cfg.perm_num // 2 if cfg.perm_mirrored else cfg.perm_num
        total = math.factorial(max_num_chars) // (2 if cfg.perm_mirrored else 1)
        n_gen = min(max_gen, total)
        perms = [torch.arange(max_num_chars, device=device)] if cfg.perm_forward else []
        if max_num_chars < 5:
            if max_num_chars == 4 and cfg.perm_mirrored:
                selector = [0, 3, 4, 6, 9, 10, 12, 16, 17, 18, 19, 21]
            else:
                selector = list(range(total))
            pool = torch.as_tensor(list(permutations(range(max_num_chars))), device=device)[selector]
            if cfg.perm_forward:
                pool = pool[1:]
            stacked = torch.stack(perms) if perms else pool[:0]
            picks = self.rng.choice(len(pool), size=min(len(pool), n_gen - len(stacked)), replace=False)
            perm_t = torch.cat([stacked, pool[picks]])
        else:
            perms += [torch.as_tensor(self.rng.permutation(max_num_chars), device=device)
                      for _ in range(n_gen - len(perms))]
            perm_t = torch.stack(perms)
        if cfg.perm_mirrored:
            perm_t = torch.stack([perm_t, perm_t.flip(-1)]).transpose(0, 1).reshape(-1, max_num_chars)
        bos = perm_t.new_zeros((len(perm_t), 1))
        eos = perm_t.new_full((len(perm_t), 1), max_num_chars + 1)
        perm_t = torch.cat([bos, perm_t + 1, eos], dim=1)
        if len(perm_t) > 1:  # reverse direction also gives EOS a null context
            perm_t[1, 1:] = max_num_chars + 1 - torch.arange(max_num_chars + 1, device=device)
        return perm_t


def attention_masks(perm: Tensor) -> tuple[Tensor, Tensor]:
    """Content and query masks for one permutation (float, -inf = masked)."""
    size = perm.shape[0]
    mask = torch.zeros((size, size), device=perm.device)
    for i in range(size):
        mask[perm[i], perm[i + 1:]] = float("-inf")
    content_mask = mask[:-1, :-1].clone()
    mask[torch.eye(size, dtype=torch.bool, device=perm.device)] = float("-inf")
    return content_mask, mask[1:, :-1]


def length_groups(labels: list[str], groups: int) -> list[list[int]]:
    """Indices of ``labels`` in at most ``groups`` contiguous runs of the length order."""
    order = sorted(range(len(labels)), key=lambda i: len(labels[i]))
    size = max(1, math.ceil(len(order) / max(1, groups)))
    return [order[i:i + size] for i in range(0, len(order), size)]


def psm_loss(model: Clip4Str, images: Tensor, labels: list[str], sampler: PermutationSampler,
             cfg: PsmConfig) -> tuple[Tensor, dict[str, float]]:
    memory = model.encode_image(images)
    loss = images.new_zeros(())
    totals = {"visual_loss": 0.0, "cross_loss": 0.0}
    numel = 0
    for idx in length_groups(labels, cfg.length_groups):
        group_loss, group_totals, group_numel = _psm_group_loss(
            model, memory[idx], [labels[i] for i in idx], sampler, cfg)
        loss = loss + group_loss
        numel += group_numel
        for key in totals:
            totals[key] += group_totals[key]
    return loss / numel, {key: value / numel for key, value in totals.items()}


def _psm_group_loss(model: Clip4Str, memory: Tensor, labels: list[str], sampler: PermutationSampler,
                    cfg: PsmConfig) -> tuple[Tensor, dict[str, float], int]:
    """Token-summed losses of one length group under K permutations, their detached totals, the token count."""
    tok = model.tokenizer
    device = memory.device
    tgt = tok.encode(labels, device)
    perms = sampler(tgt.shape[1] - 2, device)
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    padding = (tgt_in == tok.pad_id) | (tgt_in == tok.eos_id)
    cross_mem = None
    loss = memory.new_zeros(())
    visual_total = cross_total = 0.0
    numel = 0
    n = int((tgt_out != tok.pad_id).sum())
    for i, perm in enumerate(perms):
        content_mask, query_mask = attention_masks(perm)
        visual_logits = model.visual_decoder(tgt_in, memory, None, query_mask, content_mask, padding)
        visual_loss = F.cross_entropy(visual_logits.flatten(end_dim=1), tgt_out.flatten(), ignore_index=tok.pad_id)
        if cross_mem is None:
            # CLIP4STR re-encodes the visual guess for every permutation; once per batch costs 1/K and
            # trains the same thing (the canonical order's guess is the one used at inference).
            cross_mem = model.cross_memory(memory, visual_logits)
        cross_logits = model.cross_decoder(tgt_in, cross_mem, None, query_mask, content_mask, padding)
        cross_loss = F.cross_entropy(cross_logits.flatten(end_dim=1), tgt_out.flatten(), ignore_index=tok.pad_id)
        loss = loss + n * (visual_loss + cfg.cross_loss_weight * cross_loss)
        visual_total += n * float(visual_loss.detach())
        cross_total += n * float(cross_loss.detach())
        numel += n
        if i == 1:  # EOS is learnt from the forward and reverse orders only
            tgt_out = torch.where(tgt_out == tok.eos_id, tok.pad_id, tgt_out)
            n = int((tgt_out != tok.pad_id).sum())
    return loss, {"visual_loss": visual_total, "cross_loss": cross_total}, numel


def parameter_groups(model: Clip4Str, lr: float, decoder_lr_scale: float, weight_decay: float,
                     text_freeze_layers: int = 0, freeze_image_tower: bool = False) -> list[dict]:
    """Encoder (CLIP towers) at ``lr``, decoders at ``lr * decoder_lr_scale``; no decay on norms, biases,
    embeddings and position queries. ``text_freeze_layers`` freezes the first N text transformer blocks,
    ``freeze_image_tower`` the image tower (``clip_model.visual``; the image tokens' projection still trains)."""
    for name, p in model.clip_model.named_parameters():
        if name.startswith("transformer.resblocks."):
            p.requires_grad = int(name.split(".")[2]) >= text_freeze_layers
        elif name.startswith("visual."):
            p.requires_grad = not freeze_image_tower

    def no_decay(name: str, p: Tensor) -> bool:
        return p.ndim < 2 or any(k in name for k in ("bn", "ln", "norm", "bias", "pos_queries", "embed", "logit_scale"))

    groups: dict[tuple[bool, bool], list[Tensor]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_encoder = name.startswith("clip_model.") or name.startswith("token_")
        groups.setdefault((is_encoder, no_decay(name, p)), []).append(p)
    return [
        {"params": params, "lr": lr if enc else lr * decoder_lr_scale,
         "weight_decay": 0.0 if nd else weight_decay, "base_lr": lr if enc else lr * decoder_lr_scale}
        for (enc, nd), params in groups.items()
    ]
