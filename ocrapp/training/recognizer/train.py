"""Train a CLIP4STR recognizer on the pre-rendered word cache; resumable, CPU or CUDA (bf16 autocast).

python -m ocrapp.training.recognizer.train --config clip4str-s --data ~/.cache/ocrapp/crops/synth \
    --out runs/rec --minutes 120 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ocrapp.recognition.clip4str.config import CONFIGS, Clip4StrConfig
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.preprocess import images_to_tensor
from ocrapp.recognition.weights import load_recognizer
from ocrapp.training.data.shards import ShardStream, list_shards, load_shard
from ocrapp.training.recognizer.system import PermutationSampler, PsmConfig, parameter_groups, psm_loss


@dataclass
class TrainConfig:
    model: str = "clip4str-s"
    data: list[Path] = field(default_factory=list)
    data_weights: list[float] | None = None
    val: list[Path] = field(default_factory=list)
    out: Path = Path("runs/rec")
    batch_size: int = 96
    lr: float = 5e-4
    decoder_lr_scale: float = 2.5
    weight_decay: float = 0.05
    warmup_steps: int = 300
    total_steps: int = 60000
    min_lr_ratio: float = 0.05
    text_freeze_layers: int = 0
    minutes: float = 60.0
    threads: int = 2
    device: str = "auto"
    eval_every: int = 500
    save_every_minutes: float = 5.0
    val_limit: int = 1000
    seed: int = 0
    init_weights: Path | None = None  # start from these weights (e.g. the shipped model) when not resuming


def lr_factor(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.inference_mode()
def evaluate(model: Clip4Str, val_sets: dict[str, tuple[np.ndarray, list[str]]], device: torch.device,
             batch_size: int = 256) -> dict[str, float]:
    model.eval()
    scores = {}
    for name, (images, labels) in val_sets.items():
        correct = 0
        for i in range(0, len(labels), batch_size):
            x = images_to_tensor(images[i:i + batch_size], model.cfg, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x)
            texts, _ = model.tokenizer.decode(logits.float().softmax(-1))
            correct += sum(t == y for t, y in zip(texts, labels[i:i + batch_size]))
        scores[name] = correct / max(1, len(labels))
    model.train()
    return scores


def load_val_sets(paths: list[Path], limit: int) -> dict[str, tuple[np.ndarray, list[str]]]:
    sets = {}
    for path in paths:
        images, labels = [], []
        for npy in list_shards(path):
            shard = load_shard(npy)
            images.append(np.asarray(shard.images))
            labels.extend(shard.labels)
            if len(labels) >= limit:
                break
        if labels:
            sets[path.name] = (np.concatenate(images)[:limit], labels[:limit])
    return sets


def save_checkpoint(path: Path, model: Clip4Str, opt: torch.optim.Optimizer, step: int, seen: int,
                    elapsed: float, best: float, history: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "seen": seen,
                "elapsed": elapsed, "best": best, "history": history, "config": model.cfg.to_dict()}, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig) -> Path:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = pick_device(cfg.device)
    cfg.out.mkdir(parents=True, exist_ok=True)
    last, best_path = cfg.out / "last.pt", cfg.out / "best.pt"
    state = torch.load(last, map_location="cpu", weights_only=False) if last.exists() else None
    if state:
        model = Clip4Str(Clip4StrConfig.from_dict(state["config"]))
    elif cfg.init_weights:
        model = load_recognizer(cfg.init_weights).train()
    else:
        model = Clip4Str(CONFIGS[cfg.model])
    model_cfg = model.cfg
    model = model.to(device)
    groups = parameter_groups(model, cfg.lr, cfg.decoder_lr_scale, cfg.weight_decay, cfg.text_freeze_layers)
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-6, fused=True)
    step = seen = 0
    elapsed, best = 0.0, -1.0
    history: list[dict] = []
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, seen, elapsed, best, history = state["step"], state["seen"], state["elapsed"], state["best"], state["history"]
        print(f"[train] resumed at step {step}, {seen} samples, {elapsed / 3600:.2f} h", flush=True)
    (cfg.out / "train_config.json").write_text(json.dumps(asdict(cfg), default=str, indent=2))
    val_sets = load_val_sets(cfg.val, cfg.val_limit)
    stream = iter(ShardStream(cfg.data, cfg.batch_size, cfg.data_weights, seed=cfg.seed + step,
                              max_label_length=model_cfg.max_label_length))
    sampler = PermutationSampler(PsmConfig(), seed=cfg.seed + step)
    model.train()
    t_start, t_save = time.time(), time.time()
    cpu_before = history[-1]["cpu_hours"] if history else 0.0
    budget = cfg.minutes * 60
    log_loss, log_n = 0.0, 0
    stop = {"requested": False}
    # SIGTERM (kill, a session ending) stops after the current step and still saves last.pt.
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    while time.time() - t_start < budget and not stop["requested"]:
        images, labels = next(stream)
        x = images_to_tensor(images, model_cfg, device)
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(step, cfg)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, parts = psm_loss(model, x, labels, sampler, PsmConfig())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 20.0)
        opt.step()
        step += 1
        seen += len(labels)
        log_loss += float(loss.detach())
        log_n += 1
        now = time.time()
        if step % 50 == 0:
            rate = seen / max(1e-6, elapsed + now - t_start)
            print(f"[train] step {step} seen {seen} loss {log_loss / log_n:.3f} "
                  f"(visual {parts['visual_loss']:.3f} cross {parts['cross_loss']:.3f}) "
                  f"lr {opt.param_groups[0]['lr']:.2e} {rate:.1f} samples/s", flush=True)
            log_loss, log_n = 0.0, 0
        if step % cfg.eval_every == 0 and val_sets:
            scores = evaluate(model, val_sets, device)
            mean = float(np.mean(list(scores.values())))
            history.append({"step": step, "seen": seen, "hours": (elapsed + now - t_start) / 3600,
                            "cpu_hours": time.process_time() / 3600 + cpu_before, **scores})
            print(f"[eval] step {step} {scores}", flush=True)
            if mean > best:
                best = mean
                save_checkpoint(best_path, model, opt, step, seen, elapsed + now - t_start, best, history)
        if now - t_save > cfg.save_every_minutes * 60:
            save_checkpoint(last, model, opt, step, seen, elapsed + now - t_start, best, history)
            t_save = now
    save_checkpoint(last, model, opt, step, seen, elapsed + time.time() - t_start, best, history)
    if not best_path.exists():
        save_checkpoint(best_path, model, opt, step, seen, elapsed + time.time() - t_start, best, history)
    return best_path


def parse_args() -> TrainConfig:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description="Train the CLIP4STR recognizer (resumes from OUT/last.pt).")
    p.add_argument("--config", default=defaults.model, choices=sorted(CONFIGS))
    p.add_argument("--data", type=Path, nargs="+", required=True, help="shard folders (see data engine)")
    p.add_argument("--data-weights", type=float, nargs="+", default=None, help="share of each folder in a batch")
    p.add_argument("--val", type=Path, nargs="*", default=[], help="held-out shard folders for model selection")
    p.add_argument("--out", type=Path, default=defaults.out)
    p.add_argument("--minutes", type=float, default=defaults.minutes)
    p.add_argument("--threads", type=int, default=defaults.threads)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--total-steps", type=int, default=defaults.total_steps)
    p.add_argument("--eval-every", type=int, default=defaults.eval_every)
    p.add_argument("--val-limit", type=int, default=defaults.val_limit)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--text-freeze-layers", type=int, default=defaults.text_freeze_layers)
    p.add_argument("--init-weights", type=Path, default=None, help="start from a recognizer .safetensors")
    a = p.parse_args()
    return TrainConfig(model=a.config, data=a.data, data_weights=a.data_weights, val=a.val, out=a.out,
                       minutes=a.minutes, threads=a.threads, batch_size=a.batch_size, lr=a.lr,
                       total_steps=a.total_steps, eval_every=a.eval_every, val_limit=a.val_limit, device=a.device,
                       text_freeze_layers=a.text_freeze_layers, init_weights=a.init_weights)


if __name__ == "__main__":
    train(parse_args())
