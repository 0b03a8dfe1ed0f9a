"""One command for a lent GPU: benchmark, then train the weakest embedded model in the time left.

    python -m ocrapp.training.gpu_run --out $OUT --minutes 9

1. ``benchmarks/gpu_benchmark.py`` (about 2 minutes, ``--bench-s``): recognizer crops/s at batch 64/256/1024,
   detector pages/s, end-to-end pages/s, time per stage, peak GPU memory -> OUT/gpu_benchmark.{json,md};
2. picks the model to train by the rule below (or ``--model``) and runs its GPU recipe with the minutes left
   (``ocrapp.training.recognizer.gpu_recipe`` or ``scripts/gpu_train_detector.py``), killed at the deadline;
3. writes OUT/gpu_run.json (choice, scores, timings, files) and OUT/train.log; weights land in OUT/<model>/ in
   files of at most 16 MiB (the device tool returns at most 8 files of 16 MiB, 64 MiB together, 2 folders deep).

Which model is weakest (``choose_model``): each model's shortfall from its target, as a fraction of the target.
Recognizer: exact-word accuracy on held-out-font words (``held_out_fonts`` in models/recognizer_report.json, or
the recognizer card) against ``REC_TARGET`` = 0.90. Detector: mean hmean of the dev sets in
models/detector_report.json ``dev_eval`` (the recipe's report.json), or in the detector card's "Dev-set
evaluation" table, against ``DET_TARGET`` = 0.80. A model whose weights or score are missing has shortfall 1.
The larger shortfall is trained; a tie goes to the recognizer (the larger model, whose training gains most from
a GPU).

``--tiny``: tiny benchmark and recipe sizes, for the CPU test (tests/test_gpu_path.py).
``--fonts DIR``: font files carried with the repo (scripts/gpu_pack.py), copied to
/usr/share/fonts/truetype/ocrapp-carried (the data engines render with Debian fonts; root on the device machine).
The exact device call: scripts/gpu_session.md.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REC_TARGET = 0.90
DET_TARGET = 0.80
MAX_FILES, MAX_FILE_MIB, MAX_TOTAL_MIB = 8, 16, 64


# -- which model ----------------------------------------------------------------------------------------------
def recognizer_score(models: Path) -> float | None:
    """Held-out-font exact accuracy of the shipped recognizer, or None if not recorded."""
    report = models / "recognizer_report.json"
    if report.exists():
        acc = json.loads(report.read_text()).get("exact_accuracy", {})
        value = acc.get("held_out_fonts", acc.get("val")) if isinstance(acc, dict) else acc
        if value is not None:
            return float(value)
    for card in sorted(models.glob("recognizer_*.md")):
        value = _shipped_held_out_fonts(card.read_text().splitlines())
        if value is not None:
            return value
    return None


def _table_cells(line: str) -> list[str]:
    return [c.strip().strip("*").strip() for c in line.strip().strip("|").split("|")]


def _shipped_held_out_fonts(lines: list[str]) -> float | None:
    """The card's first table with a "held-out fonts" column: the value in the row marked "shipped"."""
    column = None
    for line in lines:
        if not line.lstrip().startswith("|"):
            column = None
            continue
        cells = _table_cells(line)
        if column is None:
            column = next((k for k, c in enumerate(cells) if c.lower() == "held-out fonts"), None)
        elif "shipped" in cells[0].lower() and column < len(cells):
            try:
                return float(cells[column])
            except ValueError:
                continue
    return None


def detector_score(models: Path, arch: str) -> float | None:
    """Mean dev-set hmean of the shipped detector, or None if not recorded."""
    for name in ("detector_report.json", "report.json"):  # the recipe's report.json, renamed when shipped
        report = models / name
        if report.exists():
            dev = json.loads(report.read_text()).get("dev_eval", {})
            values = [v["hmean"] for k, v in dev.items() if not k.startswith("_") and "hmean" in v]
            if values:
                return sum(values) / len(values)
    card = models / f"detector_{arch}.md"
    if not card.exists():
        return None
    lines = card.read_text().splitlines()
    values, in_table = [], False
    for line in lines:
        if line.startswith("| set |") and "hmean" in line:
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            cells = _table_cells(line)
            try:
                values.append(float(cells[-1]))
            except ValueError:
                continue
    return sum(values) / len(values) if values else None


def choose_model(models: Path) -> dict:
    from ocrapp.detection.model import DEFAULT_ARCH
    from ocrapp.models_registry import DEFAULT_RECOGNIZER

    rec = recognizer_score(models) if (models / DEFAULT_RECOGNIZER).exists() else None
    det = detector_score(models, DEFAULT_ARCH) if (models / f"detector_{DEFAULT_ARCH}.safetensors").exists() else None
    rec_gap = 1.0 if rec is None else max(0.0, REC_TARGET - rec) / REC_TARGET
    det_gap = 1.0 if det is None else max(0.0, DET_TARGET - det) / DET_TARGET
    model = "recognizer" if rec_gap >= det_gap else "detector"
    return {"model": model, "recognizer_held_out_exact": rec, "detector_dev_hmean": det,
            "recognizer_shortfall": round(rec_gap, 4), "detector_shortfall": round(det_gap, 4),
            "rule": f"train the larger shortfall from target (recognizer held-out exact {REC_TARGET}, detector mean "
                    f"dev hmean {DET_TARGET}); missing weights or score = 1; tie -> recognizer"}


# -- the steps ------------------------------------------------------------------------------------------------
def install_fonts(fonts: Path | None) -> str:
    from ocrapp.training.data.fonts import FONT_ROOTS

    have = any(any(root.rglob("*.[ot]tf")) for root in FONT_ROOTS if root.exists())
    if fonts is None or not fonts.exists():
        return "system" if have else "none"
    target = FONT_ROOTS[0] / "ocrapp-carried"  # beside any system fonts (the held-out families must be there)
    target.mkdir(parents=True, exist_ok=True)
    for f in fonts.rglob("*"):
        if f.suffix.lower() in (".ttf", ".otf"):  # printer faces keep their folder: fonts.PRINTER_FACE_DIRS
            dest = target / f.relative_to(fonts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
    return f"carried ({sum(1 for p in target.rglob('*') if p.is_file())} files)"


def _run(cmd: list[str], deadline: float, log, env: dict) -> int:
    """Run ``cmd`` in its own process group, output to ``log``; killed (TERM, then KILL) at ``deadline``."""
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        log.write("\n[gpu_run] deadline reached: stopping\n")
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait()


def recipe_command(model: str, out: Path, minutes: float, tiny: bool, device: str | None,
                   pdfs: Path | None = None) -> list[str]:
    py = sys.executable
    if model == "recognizer":
        cmd = [py, "-m", "ocrapp.training.recognizer.gpu_recipe", "--out", str(out), "--minutes", f"{minutes:.2f}",
               "--work", str(Path(os.environ.get("TMPDIR", "/tmp")) / "ocrapp_gpu_run_rec")]
        if pdfs is not None:
            cmd += ["--pdf-root", str(pdfs)]
        if tiny:
            cmd += ["--config", "clip4str-tiny", "--workers", "1", "--words", "400", "--init", "none",
                    "--batch-size", "16"]
        return cmd
    cmd = [py, str(REPO / "scripts" / "gpu_train_detector.py"), "--out", str(out), "--minutes", f"{minutes:.2f}",
           "--work", str(Path(os.environ.get("TMPDIR", "/tmp")) / "ocrapp_gpu_run_det")]
    if device:
        cmd += ["--device", device]
    if tiny:
        cmd += ["--pages", "3", "--min-pages", "2", "--gen-workers", "1", "--crop", "128", "--batch", "1",
                "--input-size", "256", "--real-share", "0", "--threads", "1", "--eval-limit", "1", "--eval-sets",
                "mmocr-wildreceipt-toy"]
    return cmd


def check_outputs(out: Path) -> list[str]:
    """What the device tool would not bring back."""
    problems = []
    files = [p for p in out.rglob("*") if p.is_file()]
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files > {MAX_FILES}")
    for p in files:
        if p.stat().st_size > MAX_FILE_MIB * 2**20:
            problems.append(f"{p.relative_to(out)} > {MAX_FILE_MIB} MiB")
        if len(p.relative_to(out).parts) > 3:
            problems.append(f"{p.relative_to(out)} deeper than 2 folders")
    total = sum(p.stat().st_size for p in files) / 2**20
    if total > MAX_TOTAL_MIB:
        problems.append(f"{total:.1f} MiB in all > {MAX_TOTAL_MIB}")
    return problems


def run(out: Path, minutes: float = 9.0, bench_s: float = 120.0, model: str = "auto", tiny: bool = False,
        device: str | None = None, fonts: Path | None = None, models: Path | None = None,
        skip_benchmark: bool = False, pdfs: Path | None = None) -> dict:
    t0 = time.time()
    deadline = t0 + minutes * 60
    out.mkdir(parents=True, exist_ok=True)
    from ocrapp.models_registry import models_dir

    models = models or models_dir()
    report: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "minutes": minutes,
                    "tiny": tiny, "fonts": install_fonts(fonts)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep), "PYTHONUNBUFFERED": "1"}
    with open(out / "train.log", "w") as log:
        # 1. benchmark, in its own process (a crash there must not cost the training run)
        if not skip_benchmark:
            bench = [sys.executable, str(REPO / "benchmarks" / "gpu_benchmark.py"), "--out", str(out),
                     "--budget-s", str(bench_s)] + (["--tiny"] if tiny else []) + (["--device", device] if device
                                                                                 else [])
            t = time.time()
            report["benchmark_rc"] = _run(bench, min(deadline, t + bench_s * 1.5 + 30), log, env)
            report["benchmark_s"] = round(time.time() - t, 1)
            if (out / "gpu_benchmark.json").exists():
                b = json.loads((out / "gpu_benchmark.json").read_text())
                report["benchmark"] = {k: b.get(k) for k in ("device_name", "recognizer", "detector", "end_to_end",
                                                             "stages", "peak_mib")}
        # 2. which model, and its recipe with the time left (a minute kept for its evaluation and export)
        try:
            choice = choose_model(models)
        except ImportError as exc:  # a pack for one model (gpu_pack --model recognizer) has no docTR
            if model == "auto":
                raise
            choice = {"choice_error": f"{type(exc).__name__}: {exc}"}
        if model != "auto":
            choice["model"], choice["forced"] = model, True
        report["choice"] = choice
        left = (deadline - time.time()) / 60
        # the detector's postprocess tuning and export after training need longer (session 9: over 40 s)
        reserve = 0.25 if tiny else (2.0 if choice["model"] == "detector" else 1.25)
        train_min = max(0.1, left - reserve)
        target = out / choice["model"]
        target.mkdir(exist_ok=True)
        cmd = recipe_command(choice["model"], target, train_min, tiny, device, pdfs)
        t = time.time()
        report["train_minutes_given"] = round(train_min, 2)
        report["train_rc"] = _run(cmd, deadline, log, env)
        report["train_s"] = round(time.time() - t, 1)
    for name in ("recognizer_report.json", "report.json"):
        if (target / name).exists():
            report["train_report"] = json.loads((target / name).read_text())
    n_files = sum(1 for p in out.rglob("*") if p.is_file()) + (0 if (out / "gpu_run.json").exists() else 1)
    if n_files > MAX_FILES and (out / "gpu_benchmark.md").exists():
        (out / "gpu_benchmark.md").unlink()  # its text is also in gpu_benchmark.json ("markdown")
    report["files"] = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    report["total_s"] = round(time.time() - t0, 1)
    report["output_problems"] = check_outputs(out)  # gpu_run.json itself is counted below
    (out / "gpu_run.json").write_text(json.dumps(report, indent=2))
    report["output_problems"] = check_outputs(out)
    (out / "gpu_run.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=9.0, help="whole run, benchmark included")
    p.add_argument("--bench-s", type=float, default=120.0, help="benchmark budget in seconds")
    p.add_argument("--model", choices=["auto", "recognizer", "detector"], default="auto")
    p.add_argument("--device", default=None, help="default: cuda if available")
    p.add_argument("--fonts", type=Path, default=None, help="carried font files, used when the machine has none")
    p.add_argument("--skip-benchmark", action="store_true")
    p.add_argument("--pdfs", type=Path, default=None,
                   help="unpacked Debian PDFs (gpu_pack --model recognizer): the recognizer recipe cuts real words")
    p.add_argument("--tiny", action="store_true")
    a = p.parse_args(argv)
    report = run(a.out, a.minutes, a.bench_s, a.model, a.tiny, a.device, a.fonts, skip_benchmark=a.skip_benchmark,
                 pdfs=a.pdfs)
    summary = {k: report.get(k) for k in ("choice", "benchmark_s", "train_rc", "train_s", "total_s", "files",
                                          "output_problems")}
    print(json.dumps(summary, indent=2))
    if (a.out / "gpu_benchmark.md").exists():
        print((a.out / "gpu_benchmark.md").read_text())
    return report


if __name__ == "__main__":
    main()
