"""Resumable DBNet trainer (CPU or CUDA) on the page cache.

    python -m ocrapp.training.detector.train --data ~/.cache/ocrapp/pages --out runs/det --minutes 600 --threads 1

* loss: the docTR model's own DB loss (``model(x, target=[{"words": quads}])["loss"]``);
* input: random ``--crop`` squares cut from pages scaled like the ``--infer-size`` predictor input (jittered);
* AdamW (fused on CPU / CUDA), warm-up then cosine decay over the ``--minutes`` budget (measured training time,
  carried across resumes), gradient clipping; CUDA runs under autocast (bf16);
* every ``--ckpt-minutes``: ``last.pt`` (model, optimiser, counters) and, when validation improves, ``best.pt``;
  validation = detection hmean at IoU 0.5 on held-out cache pages (ids divisible by 50), predictor at infer size,
  DB postprocessing of ``--postprocess`` (a tune JSON; default: the one stored in the ``--init`` weights, else
  docTR's: a fine-tune is scored as its starting file is used). Another validation set or postprocessing
  starts a new best record: scores of different settings do not compare.
* a second run with the same ``--out`` resumes from ``last.pt``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ocrapp.detection.model import (DEFAULT_ARCH, PostprocessConfig, build_detector, load_state_into,
                                    read_detector_weights)
from ocrapp.detection.predictor import DEFAULT_MEAN, DEFAULT_STD, DetectionPredictor
from ocrapp.detection.metrics import DetCounts, match_counts
from ocrapp.detection.tune import load_tuned
from ocrapp.training.data.pages import load_item
from ocrapp.training.detector.data import CropStream, collate, list_items, precomputed_targets
from ocrapp.training.stop import SigtermStop


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def validate(model, val_items: list[Path], infer_size: int, device,
             postprocess: PostprocessConfig = PostprocessConfig()) -> dict:
    """Detection recall/precision/hmean on held-out cache pages."""
    was_training = model.training
    pred = DetectionPredictor(model, input_size=infer_size, batch_size=1, device=device)
    postprocess.apply(pred.postprocessor)
    total = DetCounts()
    for path in val_items:
        img, quads, _ = load_item(path)
        found = pred.predict([img])[0]
        total = total.add(match_counts(list(quads), [p for p, _ in found]))
    model.train(was_training)
    return total.as_dict()


def lr_at(step: int, elapsed_s: float, budget_s: float, base_lr: float, warmup: int) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    t = min(1.0, elapsed_s / max(budget_s, 1.0))
    return base_lr * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * t)))


def train(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train.log"
    log = open(log_path, "a", buffering=1)

    def say(msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        print(line, flush=True)
        log.write(line + "\n")

    model = build_detector(args.arch, assume_straight_pages=False).to(device)
    fused_ok = device.type in ("cpu", "cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                            fused=fused_ok)
    state = {"step": 0, "elapsed_s": 0.0, "pages_seen": 0, "best_hmean": -1.0, "history": []}
    last = out / "last.pt"
    init_state, init_metadata = read_detector_weights(args.init) if args.init else ({}, {})
    if last.exists() and not args.fresh:
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        state.update(ck["state"])
        say(f"resumed from {last}: step {state['step']}, {state['elapsed_s'] / 60:.1f} min trained")
    elif args.init:
        load_state_into(model, init_state, args.init)
        say(f"started from the weights {args.init}")
    val_file = out / "val_items.json"
    if val_file.exists():
        val_items = [Path(p) for p in json.loads(val_file.read_text())]
        val_items = [p for p in val_items if p.exists()]
    else:
        val_items = list_items(Path(args.data), "val")[: args.val_pages]
        val_file.write_text(json.dumps([str(p) for p in val_items]))
    postprocess = load_tuned(args.postprocess) or PostprocessConfig.from_metadata(init_metadata)

    def best_checkpoint_score() -> float:
        """best.pt's hmean on the current validation pages (-1 without best.pt or pages)."""
        if not (out / "best.pt").exists() or not val_items:
            return -1.0
        best = build_detector(args.arch, assume_straight_pages=False).to(device)
        best.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"])
        return validate(best.eval(), val_items, args.infer_size, device, postprocess)["hmean"]

    def renew_record_if_validation_changed() -> None:
        """The best score only compares like with like: on another validation set or postprocessing, best.pt is
        scored again, so that a later, worse checkpoint cannot replace it."""
        signature = json.dumps([[str(p) for p in val_items], asdict(postprocess)])
        if state.get("val_signature") != signature:
            state["val_signature"], state["best_hmean"] = signature, best_checkpoint_score()

    renew_record_if_validation_changed()
    say(f"arch={args.arch} device={device} threads={args.threads} crop={args.crop} batch={args.batch} "
        f"lr={args.lr} budget={args.minutes} min; {len(list_items(Path(args.data)))} train pages now, "
        f"{len(val_items)} val pages")

    # with loader workers, they build the DB targets too (the main process would otherwise spend most of a GPU step)
    stream = CropStream(Path(args.data), crop=args.crop, infer_size=args.infer_size, seed=state["step"] + 1,
                        target_arch=args.arch if args.loader_workers > 0 else None)
    loader = torch.utils.data.DataLoader(stream, batch_size=args.batch, collate_fn=collate,
                                         num_workers=args.loader_workers,
                                         persistent_workers=args.loader_workers > 0,
                                         prefetch_factor=4 if args.loader_workers > 0 else None,
                                         pin_memory=device.type == "cuda")
    mean = torch.tensor(DEFAULT_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(DEFAULT_STD, device=device).view(1, 3, 1, 1)
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else contextlib.nullcontext
    budget_s = args.minutes * 60
    session_start = time.monotonic()
    base_elapsed = state["elapsed_s"]
    last_ckpt = time.monotonic()
    last_val = time.monotonic() if state["step"] else -math.inf
    losses: list[float] = []
    model.train()

    def checkpoint(do_val: bool) -> None:
        nonlocal last_val
        metrics = None
        if do_val and len(val_items) < args.val_pages:  # the cache was still filling up at start
            val_items[:] = list_items(Path(args.data), "val")[: args.val_pages]
            val_file.write_text(json.dumps([str(p) for p in val_items]))
            renew_record_if_validation_changed()
        if do_val and val_items:
            metrics = validate(model, val_items, args.infer_size, device, postprocess)
            last_val = time.monotonic()
            state["history"].append({"step": state["step"], "minutes": round(state["elapsed_s"] / 60, 1),
                                     "pages_seen": state["pages_seen"], **metrics})
            say(f"val step {state['step']}: {metrics}")
        ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "state": dict(state), "arch": args.arch,
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
        _atomic_save(ck, last)
        if metrics is not None and metrics["hmean"] > state["best_hmean"]:
            state["best_hmean"] = metrics["hmean"]
            ck["state"] = dict(state)
            _atomic_save(ck, out / "best.pt")
            say(f"new best hmean {metrics['hmean']:.4f} -> {out / 'best.pt'}")
        elif not (out / "best.pt").exists():
            _atomic_save(ck, out / "best.pt")
        _atomic_save(ck, last)

    if state["step"] == 0 and args.init and val_items:
        checkpoint(do_val=True)  # the starting weights are the first candidate: a fine-tune never ships worse ones
    stop = SigtermStop()  # stops after the current step and still saves last.pt
    t_log = time.monotonic()
    for imgs, targets, *db_targets in loader:
        if state["elapsed_s"] >= budget_s or stop.requested:
            break
        if sum(len(q) for q in targets) == 0:
            continue  # docTR's DB loss is undefined for a batch without any word (UnboundLocalError)
        lr = lr_at(state["step"], state["elapsed_s"], budget_s, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        x = (imgs.to(device, non_blocking=True).float() / 255.0 - mean) / std
        try:
            with amp(), precomputed_targets(model, db_targets[0] if db_targets else None):
                out_d = model(x, target=[{"words": q} for q in targets])
        except UnboundLocalError:
            # docTR's DB loss leaves its L1 term undefined when no word survives the target shrinking (all too
            # small or cut off by the crop): nothing to learn from this batch.
            continue
        loss = out_d["loss"]
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(float(loss.detach()))
        state["step"] += 1
        state["pages_seen"] += len(targets)
        state["elapsed_s"] = base_elapsed + (time.monotonic() - session_start)
        if time.monotonic() - t_log > args.log_seconds:
            say(f"step {state['step']} loss {np.mean(losses[-50:]):.4f} lr {lr:.2e} crops {state['pages_seen']} "
                f"trained {state['elapsed_s'] / 60:.1f}/{args.minutes} min")
            t_log = time.monotonic()
        if time.monotonic() - last_ckpt > args.ckpt_minutes * 60:
            checkpoint(do_val=time.monotonic() - last_val > args.val_minutes * 60)
            last_ckpt = time.monotonic()
    checkpoint(do_val=not stop.requested)
    stop.release()
    say(f"{'stopped' if stop.requested else 'done'}: step {state['step']}, best hmean {state['best_hmean']}")
    log.close()
    return state


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache/ocrapp/pages")
    ap.add_argument("--out", type=Path, default=Path("runs/det"))
    ap.add_argument("--arch", default=DEFAULT_ARCH)
    ap.add_argument("--minutes", type=float, default=60.0, help="training-time budget (sets the lr schedule)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--infer-size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--loader-workers", type=int, default=0)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--val-minutes", type=float, default=15.0)
    ap.add_argument("--postprocess", type=Path, default=None,
                    help="validate with the DB postprocessing of this tune JSON (default: --init's, else docTR's)")
    ap.add_argument("--val-pages", type=int, default=10)
    ap.add_argument("--log-seconds", type=float, default=60.0)
    ap.add_argument("--fresh", action="store_true", help="ignore an existing last.pt")
    ap.add_argument("--init", type=Path, default=None,
                    help="weights to start from (safetensors or .pt state_dict) when there is no last.pt to resume")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
