"""GPU recipe for the recognizer: one bounded run on a single CUDA GPU with many host cores.

Host cores render synthetic words into shards while the GPU trains on whatever is there (the stream rescans
for new shards every pass); then it evaluates on held-out words and writes fp16 weights to OUT in files of at
most 16 MiB, with a JSON report. Starts from the shipped weights when they fit, else from scratch.

python -m ocrapp.training.recognizer.gpu_recipe --out $OUT --minutes 8
Tiny CPU check (the test does this): --minutes 0.5 --config clip4str-tiny --workers 1 --words 400 --init none
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from ocrapp.models_registry import default_recognizer_path
from ocrapp.training.data.shards import list_shards
from ocrapp.training.data.synth_words import RenderConfig, build_cache
from ocrapp.recognition.weights import save_recognizer
from ocrapp.training.recognizer.export import model_from_checkpoint, training_summary
from ocrapp.training.recognizer.train import TrainConfig, evaluate, load_val_sets, train


def _start_renderer(out: Path, workers: int, words: int, seed: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ocrapp.training.data.synth_words", "--out", str(out), "--count", str(words),
           "--workers", str(workers), "--shard-size", "1000", "--seed", str(seed)]
    return subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def run(out: Path, minutes: float, work: Path, workers: int, words: int, batch_size: int, config: str,
        init: Path | None) -> dict:
    t0 = time.time()
    init = init if init and init.exists() else None  # a missing file means from scratch (and the scratch lr)
    out.mkdir(parents=True, exist_ok=True)
    train_dir, val_dir, held_dir = work / "synth", work / "val", work / "held_out_fonts"
    build_cache(val_dir, 1000, 1, shard_size=1000, seed=424242)
    build_cache(held_dir, 1000, 1, shard_size=1000, seed=525252, cfg=RenderConfig(held_out_fonts=True))
    producer = _start_renderer(train_dir, workers, words, seed=7)
    while len(list_shards(train_dir)) < 2 and producer.poll() is None:
        time.sleep(1)
    remaining = minutes - (time.time() - t0) / 60 - 0.5  # keep time for evaluation and writing
    cfg = TrainConfig(model=config, data=[train_dir], val=[val_dir], out=work / "run", batch_size=batch_size,
                      minutes=max(0.05, remaining), threads=max(1, (os.cpu_count() or 2) - workers), eval_every=250,
                      init_weights=init, lr=3e-4 if init else 7e-4,
                      warmup_steps=200, total_steps=4000)
    try:
        best = train(cfg)
    finally:
        _stop(producer)
    model, state = model_from_checkpoint(best)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    scores = evaluate(model.to(device), load_val_sets([val_dir, held_dir], 1000), device)
    files = save_recognizer(model.cpu(), out / "recognizer_clip4str-s.safetensors", training_summary(state),
                            max_shard_bytes=16 * 2**20)
    report = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
              "date": time.strftime("%Y-%m-%d"), "minutes": (time.time() - t0) / 60, "steps": state["step"],
              "samples_seen": state["seen"], "words_rendered": sum(len(p.with_suffix(".txt").read_text().splitlines())
                                                                  for p in list_shards(train_dir)),
              "exact_accuracy": scores, "init": str(cfg.init_weights), "files": [p.name for p in files]}
    (out / "recognizer_report.json").write_text(json.dumps(report, indent=2))
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--work", type=Path, default=Path("/tmp/ocrapp_gpu_recognizer"))
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--words", type=int, default=3_000_000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--config", default="clip4str-s")
    p.add_argument("--init", default=str(default_recognizer_path()), help="weights to start from, or 'none'")
    a = p.parse_args()
    init = None if a.init == "none" else Path(a.init)
    print(json.dumps(run(a.out, a.minutes, a.work, a.workers, a.words, a.batch_size, a.config, init), indent=2))


if __name__ == "__main__":
    main()
