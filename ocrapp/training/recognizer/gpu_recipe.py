"""GPU recipe for the recognizer: one bounded run on a single CUDA GPU with many host cores.

Host cores make data into shards while the GPU trains on whatever is there (the stream rescans for new shards every
pass): most workers render the "general" profile, ``--receipt-workers`` the "receipts" one (upper case, fields,
dot-matrix and thermal print), drawn at ``--receipt-share`` of each batch, ``--scan-workers`` the "scans" one
(low-resolution bilevel scans) at ``--scan-share``, ``--thermal-workers`` till-receipt print at ``--thermal-share``,
``--forms-workers`` form fields (words on and under a form's rules) at ``--forms-share``; with ``--pdf-root`` (Debian
PDFs carried by ``scripts/gpu_pack.py --model recognizer``) ``--pdf-workers`` cut real-word crops from them
(``ocrapp.training.data.pdf_crops``), drawn at ``--pdf-share``: without real words a run drifts from them. Starts from
the shipped weights when they fit (lr 4e-4 at batch 512, flat after 100 warm-up steps), else from scratch (7e-4, 200
steps); the rate scales with the square root of the batch. The last ``--anneal-share`` of the time decays the rate, so
that the weights are annealed whatever the GPU's speed. A moving average of the weights is kept beside them
(``--ema-decay``, session 22: on the CPU it beat the weights it followed by 0.2-0.7 points on held-out words); of the
best checkpoint's weights and their average, the one that reads more held-out words is written. Then it writes fp16
weights to OUT in files of at most 16 MiB, with a JSON report.

python -m ocrapp.training.recognizer.gpu_recipe --out $OUT --minutes 8
Tiny CPU check (the test does this): --minutes 0.5 --config clip4str-tiny --workers 1 --words 400 --init none
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ocrapp.models_registry import default_recognizer_path
from ocrapp.training.data.shards import list_shards
from ocrapp.training.data.synth_words import RenderConfig, build_cache
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.weights import load_recognizer, save_recognizer
from ocrapp.training.recognizer.export import load_checkpoint, model_from_state, training_summary
from ocrapp.training.recognizer.train import TrainConfig, evaluate, load_val_sets, train


def _start_renderer(out: Path, workers: int, words: int, seed: int, profile: str = "general") -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ocrapp.training.data.synth_words", "--out", str(out), "--count", str(words),
           "--workers", str(workers), "--shard-size", "1000", "--seed", str(seed), "--profile", profile]
    return subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _start_pdf_cutter(out: Path, pdf_root: Path, seed: int, phrase_share: float = 0.0) -> subprocess.Popen:
    """Real-word crops of the unpacked Debian PDFs under ``pdf_root`` (no download: only the packages there);
    ``phrase_share`` of them hold 2-3 words of a line with their spaces."""
    packages = sorted(d.name for d in pdf_root.iterdir() if (d / ".unpacked").exists())
    cmd = [sys.executable, "-m", "ocrapp.training.data.pdf_crops", "--out", str(out), "--pdf-root", str(pdf_root),
           "--packages", *packages, "--max-crops", str(10**7), "--seed", str(seed), "--pages-per-pdf", "60",
           "--shard-size", "500", "--split", "train", "--phrase-share", str(phrase_share)]
    return subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL)


@dataclass(frozen=True)
class DataMix:
    workers: int  # data processes in all
    receipt_workers: int = 0  # of which render the "receipts" profile
    receipt_share: float = 0.2  # of each batch, once receipt shards exist
    scan_workers: int = 0  # of which render the "scans" profile
    scan_share: float = 0.1
    # of which render till-receipt print: the "printer" profile (the "thermal" one set mostly in the carried
    # printer faces, session 23; where none were carried it draws as "thermal" does)
    thermal_workers: int = 0
    thermal_share: float = 0.1
    words: int = 3_000_000
    pdf_root: Path | None = None  # unpacked Debian PDFs (scripts/gpu_pack.py --model recognizer)
    pdf_workers: int = 0  # of which cut real-word crops from them
    pdf_share: float = 0.4
    pdf_phrase_share: float = 0.25  # of the PDF crops: 2-3 words of a line, read with their spaces (session 17)
    blur_share: float = 0.25  # of each batch, blurred as drawn (defocus or motion smear, data.crop_blur; session 20)
    forms_workers: int = 0  # of which render the "forms" profile (words on and under a form's rules; session 27)
    forms_share: float = 0.1


def better_of_weights_and_average(checkpoint: Path, val_sets: dict, device: torch.device
                                  ) -> tuple[Clip4Str, dict, bool, dict[str, dict[str, float]]]:
    """The checkpoint's weights or their moving average (when it has one), whichever reads more of ``val_sets``:
    (model, checkpoint state, whether it is the average, scores of each)."""
    state = load_checkpoint(checkpoint)
    candidates = {"trained": model_from_state(state)}
    if state.get("ema"):
        candidates["moving average"] = model_from_state(state, ema=True)
    scores = {name: evaluate(model.to(device), val_sets, device) for name, model in candidates.items()}
    chosen = max(scores, key=lambda name: (sum(scores[name].values()), name == "trained"))  # ties: as trained
    return candidates[chosen], state, chosen == "moving average", scores


def run(out: Path, minutes: float, work: Path, mix: DataMix, batch_size: int, config: str, init: Path | None,
        anneal_share: float = 0.4, ema_decay: float = 0.998) -> dict:
    t0 = time.time()
    init = init if init and init.exists() else None  # a missing file means from scratch (and the scratch lr)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "run", ignore_errors=True)  # one bounded run: never resume another run's checkpoint
    train_dir, val_dir, held_dir = work / "synth", work / "val", work / "held_out_fonts"
    build_cache(val_dir, 1000, 1, shard_size=1000, seed=424242)
    build_cache(held_dir, 1000, 1, shard_size=1000, seed=525252, cfg=RenderConfig(held_out_fonts=True))
    pdf_dir = work / "pdf"
    pdf_workers = mix.pdf_workers if mix.pdf_root is not None else 0
    profiles = (("receipts", mix.receipt_workers, mix.receipt_share, 8),
                ("scans", mix.scan_workers, mix.scan_share, 9),
                ("printer", mix.thermal_workers, mix.thermal_share, 10),
                ("forms", mix.forms_workers, mix.forms_share, 11))
    general_workers = max(1, mix.workers - sum(workers for _, workers, _, _ in profiles) - pdf_workers)
    producers = [_start_renderer(train_dir, general_workers, mix.words, seed=7)]
    data, weights = [train_dir], [1.0]
    for profile, workers, share, seed in profiles:
        if workers > 0:
            folder = work / f"synth_{profile}"
            producers.append(_start_renderer(folder, workers, mix.words, seed=seed, profile=profile))
            data.append(folder)
            weights.append(share)
    if pdf_workers > 0:  # one cutter per process, each into its own folder (a cache is one writer's)
        producers += [_start_pdf_cutter(pdf_dir / f"cutter{i}", mix.pdf_root, seed=100 + i,
                                        phrase_share=mix.pdf_phrase_share)
                      for i in range(pdf_workers)]
        data.append(pdf_dir)
        weights.append(mix.pdf_share)
    weights[0] = 1.0 - sum(weights[1:])
    while len(list_shards(train_dir)) < 2 and producers[0].poll() is None:
        time.sleep(1)
    remaining = max(0.05, minutes - (time.time() - t0) / 60 - 0.5)  # keep time for evaluation and writing
    cfg = TrainConfig(model=config, data=data, data_weights=weights, val=[val_dir], out=work / "run",
                      batch_size=batch_size, minutes=remaining, threads=max(1, (os.cpu_count() or 2) - mix.workers),
                      eval_every=250, init_weights=init, lr=(4e-4 if init else 7e-4) * (batch_size / 512) ** 0.5,
                      warmup_steps=100 if init else 200,
                      total_steps=4000 if init is None else 10**9, anneal_minutes=anneal_share * remaining,
                      blur_share=mix.blur_share, ema_decay=ema_decay)
    try:
        best = train(cfg)
    finally:
        for producer in producers:
            _stop(producer)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    val_sets = load_val_sets([val_dir, held_dir], 1000)
    model, state, averaged, scores_by_weights = better_of_weights_and_average(best, val_sets, device)
    scores = scores_by_weights["moving average" if averaged else "trained"]
    baseline = evaluate(load_recognizer(init).to(device).eval(), val_sets, device) if init else None
    files = save_recognizer(model.cpu(), out / "recognizer_clip4str-s.safetensors", training_summary(state, averaged),
                            max_shard_bytes=16 * 2**20)
    report = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
              "date": time.strftime("%Y-%m-%d"), "minutes": (time.time() - t0) / 60, "steps": state["step"],
              "samples_seen": state["seen"],
              "words_rendered": {d.name: sum(len(p.with_suffix(".txt").read_text().splitlines())
                                             for p in list_shards(d)) for d in data},
              "data_weights": dict(zip([d.name for d in data], weights)), "lr": cfg.lr,
              "anneal_minutes": round(cfg.anneal_minutes, 2), "batch_size": batch_size, "blur_share": cfg.blur_share,
              "exact_accuracy": scores, "init_exact_accuracy": baseline, "init": str(cfg.init_weights),
              "weights": "moving average" if averaged else "trained", "ema_decay": ema_decay,
              "exact_accuracy_by_weights": scores_by_weights,
              "files": [p.name for p in files]}
    (out / "recognizer_report.json").write_text(json.dumps(report, indent=2))
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--work", type=Path, default=Path("/tmp/ocrapp_gpu_recognizer"))
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2), help="render processes")
    p.add_argument("--receipt-workers", type=int, default=None,
                   help="of which render the receipts profile (default: a quarter of them, none below 4)")
    p.add_argument("--receipt-share", type=float, default=0.2)
    p.add_argument("--scan-workers", type=int, default=None,
                   help="of which render the scans profile (default: an eighth of them, none below 8)")
    p.add_argument("--scan-share", type=float, default=0.1)
    p.add_argument("--thermal-workers", type=int, default=None,
                   help="of which render till-receipt print (the printer profile; default: an eighth of them, "
                        "none below 8)")
    p.add_argument("--thermal-share", type=float, default=0.1)
    p.add_argument("--forms-workers", type=int, default=None,
                   help="of which render form fields (the forms profile; default: an eighth of them, none below 8)")
    p.add_argument("--forms-share", type=float, default=0.1)
    p.add_argument("--pdf-root", type=Path, default=None, help="unpacked Debian PDFs to cut real-word crops from")
    p.add_argument("--pdf-workers", type=int, default=None, help="of the workers (default: a third with --pdf-root)")
    p.add_argument("--pdf-share", type=float, default=0.4)
    p.add_argument("--blur-share", type=float, default=DataMix(0).blur_share,
                   help="share of each batch blurred as it is drawn (defocus or motion smear)")
    p.add_argument("--anneal-share", type=float, default=0.4, help="share of the training time spent decaying")
    p.add_argument("--ema-decay", type=float, default=0.998,
                   help="decay of the moving average of the weights kept while training (0: none)")
    p.add_argument("--words", type=int, default=3_000_000)
    # 512 ran at 840 samples/s on an H100 (launch-bound: the loss loops over label-length groups and permutations)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--config", default="clip4str-s")
    p.add_argument("--init", default=str(default_recognizer_path()), help="weights to start from, or 'none'")
    a = p.parse_args()
    init = None if a.init == "none" else Path(a.init)
    receipt_workers = a.receipt_workers if a.receipt_workers is not None else (a.workers // 4 if a.workers >= 4 else 0)
    scan_workers = a.scan_workers if a.scan_workers is not None else a.workers // 8
    pdf_workers = a.pdf_workers if a.pdf_workers is not None else (max(1, a.workers // 3) if a.pdf_root else 0)
    thermal_workers = a.thermal_workers if a.thermal_workers is not None else a.workers // 8
    forms_workers = a.forms_workers if a.forms_workers is not None else a.workers // 8
    mix = DataMix(a.workers, receipt_workers, a.receipt_share, scan_workers, a.scan_share, thermal_workers,
                  a.thermal_share, a.words, a.pdf_root, pdf_workers, a.pdf_share, blur_share=a.blur_share,
                  forms_workers=forms_workers, forms_share=a.forms_share)
    print(json.dumps(run(a.out, a.minutes, a.work, mix, a.batch_size, a.config, init, a.anneal_share,
                         a.ema_decay), indent=2))


if __name__ == "__main__":
    main()
