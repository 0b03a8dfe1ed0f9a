"""Train a CLIP4STR recognizer on the pre-rendered word cache; resumable, CPU or CUDA (bf16 autocast).

python -m ocrapp.training.recognizer.train --config clip4str-s --data ~/.cache/ocrapp/crops/synth \
    --out runs/rec --minutes 120 --threads 1 [--workers 2]

``--workers N`` trains data-parallel in N CPU processes of ``--threads`` threads each (gloo all-reduce of the
gradients once per step; ``--batch-size`` stays the global batch). On our 2-core machine two 1-thread workers
beat one 2-thread process: torch's OpenMP threads spin badly when anything else runs beside them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ocrapp.recognition.clip4str.config import CONFIGS, Clip4StrConfig
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.preprocess import images_to_tensor
from ocrapp.recognition.weights import load_recognizer
from ocrapp.training.data.crop_blur import CropBlurConfig, blur_batch
from ocrapp.training.data.shards import ShardStream, list_shards, load_shard
from ocrapp.training.recognizer.system import PermutationSampler, PsmConfig, parameter_groups, psm_loss
from ocrapp.training.stop import SigtermStop
from ocrapp.training.weight_average import WeightAverage


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
    # Train the decoders and the text tower on a fixed image tower (its weights frozen, its BatchNorms in eval
    # mode): no backward pass through the convolutions, so more samples per CPU hour reach the decoders.
    freeze_image_tower: bool = False
    minutes: float = 60.0
    threads: int = 2
    device: str = "auto"
    eval_every: int = 500
    save_every_minutes: float = 5.0
    val_limit: int = 1000
    seed: int = 0
    init_weights: Path | None = None  # start from these weights (e.g. the shipped model) when not resuming
    workers: int = 1  # data-parallel CPU processes (see the module docstring)
    # Give a model that was trained without it the image-token position embedding (zeros: same function); the
    # optimizer then starts afresh and the learning rate warms up again over ``warmup_steps``.
    add_image_pos_embed: bool = False
    # The last ``anneal_minutes`` of the budget decay the learning rate linearly to ``min_lr_ratio`` of its value
    # (a warm-up/stable/decay schedule across sessions): last.pt keeps the state from before the decay, which the
    # next run resumes, and the decayed state goes to annealed.pt (best.pt picks the best of either).
    anneal_minutes: float = 0.0
    # Share of the crops of each batch blurred on the fly (defocus or motion smear, ``data.crop_blur``).
    blur_share: float = 0.0
    # Keep an exponential moving average of the weights with this decay (0: none); saved in the checkpoints as
    # "ema", scored beside the model's own weights, exported with ``export --ema``.
    ema_decay: float = 0.0


def lr_factor(step: int, cfg: TrainConfig, rewarm_from: int | None = None) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if rewarm_from is not None and step - rewarm_from < cfg.warmup_steps:
        return lr_factor(step, cfg) * (step - rewarm_from + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Anneal:
    start_step: int
    steps: int

    def factor(self, step: int, floor: float) -> float:
        return 1.0 - (1.0 - floor) * min(1.0, (step - self.start_step) / self.steps)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.inference_mode()
def evaluate(model: Clip4Str, val_sets: dict[str, tuple[np.ndarray, list[str]]], device: torch.device,
             batch_size: int = 256, **forward_options) -> dict[str, float]:
    """Exact accuracy per set; ``forward_options`` go to the model's inference forward. Every module is left in
    the mode it was found in (a frozen image tower stays in eval mode)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    scores = {}
    for name, (images, labels) in val_sets.items():
        correct = 0
        for i in range(0, len(labels), batch_size):
            x = images_to_tensor(images[i:i + batch_size], model.cfg, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x, **forward_options)
            texts, _ = model.tokenizer.decode(logits.float().softmax(-1))
            correct += sum(t == y for t, y in zip(texts, labels[i:i + batch_size]))
        scores[name] = correct / max(1, len(labels))
    for module, training in modes:
        module.training = training
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


def load_with_additions(model: Clip4Str, weights: dict[str, torch.Tensor], added: list[str]) -> None:
    """Load ``weights``; only the parameters named in ``added`` may be missing (they keep their init)."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or set(missing) - set(added):
        raise RuntimeError(f"checkpoint does not fit {model.cfg.name}: missing {missing}, unexpected {unexpected}")


def save_checkpoint(path: Path, model: Clip4Str, opt: torch.optim.Optimizer, step: int, seen: int,
                    elapsed: float, best: float, history: list[dict], ema: WeightAverage | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "seen": seen,
                "elapsed": elapsed, "best": best, "history": history, "config": model.cfg.to_dict(),
                "ema": ema.state_dict() if ema else None}, tmp)
    os.replace(tmp, path)


class GradientSync:
    """Data parallelism without DDP's forward hooks (the PSM loss calls the model's parts directly): after
    ``backward`` every worker's gradients are averaged with one all-reduce of a flat buffer."""

    def __init__(self, world: int) -> None:
        self.world = world

    def average(self, params: list[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        grads = [p.grad for p in params if p.grad is not None]  # the same set on every worker
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world
        for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
            grad.copy_(synced)

    def _max(self, values: list[float]) -> list[float]:
        """Element-wise maximum over the workers, on every worker, in one all-reduce."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Per flag: True on every worker when it is true on one (to stop or start annealing together)."""
        return tuple(v > 0 for v in self._max([1.0 if f else 0.0 for f in flags]))

    def max_int(self, value: int) -> int:
        """The largest of the workers' values, on every worker."""
        return int(self._max([float(value)])[0])

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor.data, src=0)


def train(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Path:
    """One training process; ``rank``/``world`` > 1 only inside ``train_data_parallel``'s workers."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed + rank)
    sync = GradientSync(world)
    lead = rank == 0
    device = pick_device(cfg.device)
    cfg.out.mkdir(parents=True, exist_ok=True)
    last, best_path = cfg.out / "last.pt", cfg.out / "best.pt"
    save_path = last  # annealed.pt once the decay begins
    state = torch.load(last, map_location="cpu", weights_only=False) if last.exists() else None
    if state:
        weights, model_cfg = state["model"], Clip4StrConfig.from_dict(state["config"])
    elif cfg.init_weights:
        start = load_recognizer(cfg.init_weights)
        weights, model_cfg = start.state_dict(), start.cfg
    else:
        weights, model_cfg = None, CONFIGS[cfg.model]
    added: list[str] = []
    if cfg.add_image_pos_embed and model_cfg.vision == "resnet" and not model_cfg.image_pos_embed:
        model_cfg = replace(model_cfg, image_pos_embed=True)
        added = ["token_pos_embed"]
    model = Clip4Str(model_cfg)
    if weights is not None:
        load_with_additions(model, weights, added)
    model = model.to(device)
    groups = parameter_groups(model, cfg.lr, cfg.decoder_lr_scale, cfg.weight_decay, cfg.text_freeze_layers,
                              cfg.freeze_image_tower)
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-6, fused=True)
    step = seen = 0
    elapsed, best = 0.0, -1.0
    history: list[dict] = []
    rewarm_from = None
    if state:
        step, seen, elapsed, best, history = state["step"], state["seen"], state["elapsed"], state["best"], state["history"]
        if added:  # the saved optimizer state does not cover the new parameter
            rewarm_from = step
        else:
            opt.load_state_dict(state["opt"])
        if lead:
            print(f"[train] resumed at step {step}, {seen} samples, {elapsed / 3600:.2f} h"
                  + (f"; added {', '.join(added)}, optimizer restarted" if added else ""), flush=True)
    sync.broadcast_parameters(model)
    ema = WeightAverage(model, cfg.ema_decay) if lead and cfg.ema_decay > 0 else None  # the workers agree
    if ema and state and state.get("ema"):
        ema.load_state_dict(state["ema"])
    if lead:
        (cfg.out / "train_config.json").write_text(json.dumps(asdict(cfg), default=str, indent=2))
    val_sets = load_val_sets(cfg.val, cfg.val_limit) if lead else {}
    local_batch = max(1, cfg.batch_size // world)
    data_seed = cfg.seed + step + 7919 * rank  # a resumed run and each worker draw anew
    stream = iter(ShardStream(cfg.data, local_batch, cfg.data_weights, seed=data_seed,
                              max_label_length=model_cfg.max_label_length))
    sampler = PermutationSampler(PsmConfig(), seed=data_seed)
    blur_cfg, blur_rng = CropBlurConfig(share=cfg.blur_share), np.random.default_rng(data_seed)
    model.train()
    if cfg.freeze_image_tower:
        model.clip_model.visual.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    t_start, t_save = time.time(), time.time()
    cpu_before = history[-1]["cpu_hours"] if history else 0.0
    budget = cfg.minutes * 60
    log_loss, log_n = 0.0, 0
    stop = SigtermStop()  # stops after the current step and still saves (last.pt or annealed.pt)
    anneal: Anneal | None = None
    first_step = step

    def validate(now: float) -> float:
        """Score the validation sets, log them in ``history``, keep best.pt; returns the best mean so far."""
        scores = evaluate(model, val_sets, device)
        mean = float(np.mean(list(scores.values())))
        if ema:
            with ema.applied(model):
                scores.update({f"ema_{k}": v for k, v in evaluate(model, val_sets, device).items()})
        history.append({"step": step, "seen": seen, "hours": (elapsed + now - t_start) / 3600,
                        "cpu_hours": time.process_time() * world / 3600 + cpu_before, **scores})
        print(f"[eval] step {step} {scores}", flush=True)
        if mean <= best:
            return best
        save_checkpoint(best_path, model, opt, step, seen, elapsed + now - t_start, mean, history, ema)
        return mean

    while True:
        running = time.time() - t_start
        to_anneal = cfg.anneal_minutes > 0 and anneal is None and running >= budget - cfg.anneal_minutes * 60
        # one all-reduce per step decides both, so that the workers stop and start annealing at the same step
        done, to_anneal = sync.any(running >= budget or stop.requested, to_anneal)
        if done:
            break
        if to_anneal:
            steps_per_s = (step - first_step) / max(1e-6, time.time() - t_start)
            anneal = Anneal(step, max(1, sync.max_int(int(cfg.anneal_minutes * 60 * steps_per_s))))
            if lead:  # the state before the decay: the next run resumes from it
                save_checkpoint(last, model, opt, step, seen, elapsed + time.time() - t_start, best, history, ema)
                print(f"[train] annealing from step {step} over ~{anneal.steps} steps; last.pt keeps step {step}",
                      flush=True)
            save_path = cfg.out / "annealed.pt"
        images, labels = next(stream)
        images = blur_batch(images, blur_rng, blur_cfg)
        x = images_to_tensor(images, model_cfg, device)
        decay = anneal.factor(step, cfg.min_lr_ratio) if anneal else 1.0
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(step, cfg, rewarm_from) * decay
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, parts = psm_loss(model, x, labels, sampler, PsmConfig())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sync.average(params)
        torch.nn.utils.clip_grad_norm_(params, 20.0)
        opt.step()
        if ema:
            ema.update(model)
        step += 1
        seen += len(labels) * world
        log_loss += float(loss.detach())
        log_n += 1
        now = time.time()
        if not lead:
            continue
        if step % 50 == 0:
            rate = seen / max(1e-6, elapsed + now - t_start)
            print(f"[train] step {step} seen {seen} loss {log_loss / log_n:.3f} "
                  f"(visual {parts['visual_loss']:.3f} cross {parts['cross_loss']:.3f}) "
                  f"lr {opt.param_groups[0]['lr']:.2e} {rate:.1f} samples/s", flush=True)
            log_loss, log_n = 0.0, 0
        # while the rate decays the model changes fastest for the better: validate 4x as often
        every = max(1, cfg.eval_every // 4) if anneal else cfg.eval_every
        if step % every == 0 and val_sets:
            best = validate(now)
        if now - t_save > cfg.save_every_minutes * 60:
            save_checkpoint(save_path, model, opt, step, seen, elapsed + now - t_start, best, history, ema)
            t_save = now
    if not lead:
        return best_path
    if val_sets and (not history or history[-1]["step"] != step):
        best = validate(time.time())  # the final state is a candidate too
    save_checkpoint(save_path, model, opt, step, seen, elapsed + time.time() - t_start, best, history, ema)
    if not best_path.exists():
        save_checkpoint(best_path, model, opt, step, seen, elapsed + time.time() - t_start, best, history, ema)
    return best_path


def _worker(rank: int, cfg: TrainConfig, world: int, port: int) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        train(cfg, rank, world)
    finally:
        dist.destroy_process_group()


def train_data_parallel(cfg: TrainConfig) -> Path:
    """``cfg.workers`` CPU processes; worker 0 logs, evaluates and writes the checkpoints."""
    if cfg.workers <= 1:
        return train(cfg)
    if pick_device(cfg.device).type != "cpu":
        raise ValueError("--workers is for CPU training; on one GPU use a single process")
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.spawn(_worker, args=(cfg, cfg.workers, port), nprocs=cfg.workers, join=False)

    def forward_sigterm(*_args) -> None:  # the workers stop together after their step and save
        for proc in ctx.processes:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward_sigterm)
    while not ctx.join():
        pass
    return cfg.out / "best.pt"


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description="Train the CLIP4STR recognizer (resumes from OUT/last.pt).")
    p.add_argument("--config", default=defaults.model, choices=sorted(CONFIGS))
    p.add_argument("--data", type=Path, nargs="+", required=True, help="shard folders (see data engine)")
    p.add_argument("--data-weights", type=float, nargs="+", default=None, help="share of each folder in a batch")
    p.add_argument("--val", type=Path, nargs="*", default=[], help="held-out shard folders for model selection")
    p.add_argument("--out", type=Path, default=defaults.out)
    p.add_argument("--minutes", type=float, default=defaults.minutes,
                   help="this run's training time (a resumed run gets the full budget again)")
    p.add_argument("--threads", type=int, default=defaults.threads)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--total-steps", type=int, default=defaults.total_steps)
    p.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    p.add_argument("--eval-every", type=int, default=defaults.eval_every)
    p.add_argument("--val-limit", type=int, default=defaults.val_limit)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--text-freeze-layers", type=int, default=defaults.text_freeze_layers)
    p.add_argument("--freeze-image-tower", action="store_true",
                   help="train the decoders and text tower only (image tower weights and BatchNorm statistics fixed)")
    p.add_argument("--init-weights", type=Path, default=None, help="start from a recognizer .safetensors")
    p.add_argument("--workers", type=int, default=defaults.workers, help="data-parallel CPU processes")
    p.add_argument("--anneal-minutes", type=float, default=defaults.anneal_minutes,
                   help="decay the learning rate over the last M minutes (decayed state: OUT/annealed.pt)")
    p.add_argument("--add-image-pos-embed", action="store_true",
                   help="give a resumed/initial model trained without it the image-token position embedding")
    p.add_argument("--blur-share", type=float, default=defaults.blur_share,
                   help="share of each batch's crops blurred on the fly (defocus or motion smear)")
    p.add_argument("--seed", type=int, default=defaults.seed,
                   help="seeds the data order and permutations (two fine-tunes of one file can then be averaged)")
    p.add_argument("--ema-decay", type=float, default=defaults.ema_decay,
                   help="keep a moving average of the weights with this decay, e.g. 0.998 (export it with --ema)")
    a = p.parse_args(argv)
    if a.anneal_minutes >= a.minutes:  # the decay's length in steps is measured on the steps before it
        p.error("--anneal-minutes must be shorter than --minutes")
    return TrainConfig(model=a.config, data=a.data, data_weights=a.data_weights, val=a.val, out=a.out,
                       minutes=a.minutes, threads=a.threads, batch_size=a.batch_size, lr=a.lr,
                       total_steps=a.total_steps, warmup_steps=a.warmup_steps, eval_every=a.eval_every,
                       val_limit=a.val_limit, device=a.device,
                       text_freeze_layers=a.text_freeze_layers, freeze_image_tower=a.freeze_image_tower,
                       init_weights=a.init_weights, workers=a.workers,
                       add_image_pos_embed=a.add_image_pos_embed, anneal_minutes=a.anneal_minutes, seed=a.seed,
                       blur_share=a.blur_share, ema_decay=a.ema_decay)


if __name__ == "__main__":
    train_data_parallel(parse_args())
