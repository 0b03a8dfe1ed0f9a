"""Export a training checkpoint to ``models/detector_<arch>.safetensors`` (fp16) + a model card.

    python -m ocrapp.training.detector.export --ckpt runs/det/best.pt --out models \
        [--metrics dev_eval.json] [--data ~/.cache/ocrapp/pages] [--postprocess tune.json]
        [--notes status.md]

The card records arch, data mix, pages (crops) seen, training time, hardware, validation history and the dev-set
numbers of ``python -m ocrapp.detection.evaluate`` (pass its ``--json`` output as ``--metrics``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter
from pathlib import Path

import torch

from ocrapp.detection.model import (DETECTOR_CONFIGS, INPUT_SIZE_KEY, PostprocessConfig, build_detector,
                                   export_fp16_safetensors, load_state_into)
from ocrapp.detection.tune import load_tuned, load_tuned_input_size

MAX_BYTES = 60 * 1024 * 1024


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def data_mix(data_dir: Path) -> dict:
    page_dir = data_dir / "pages" if (data_dir / "pages").is_dir() else data_dir
    kinds: Counter = Counter()
    layouts: Counter = Counter()
    ops: Counter = Counter()
    n = 0
    for path in sorted(page_dir.glob("*.json")):
        try:
            meta = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        n += 1
        kinds[meta.get("kind", "?")] += 1
        if meta.get("kind") == "synth":
            layouts[meta.get("source", "synth:?").split(":", 1)[-1]] += 1
        for op in meta.get("ops", []) or ["clean"]:
            ops[op] += 1
    return {"pages": n, "kinds": dict(kinds), "synth_layouts": dict(layouts), "augment_ops": dict(ops)}


def write_card(path: Path, arch: str, ck_state: dict, ck_args: dict, mix: dict | None, metrics: dict | None,
               weights: Path, postprocess: PostprocessConfig = PostprocessConfig(), notes: str | None = None,
               input_size: int | None = None) -> None:
    cfg = DETECTOR_CONFIGS[arch]
    size = input_size or cfg.input_size
    hist = ck_state.get("history", [])
    lines = [
        f"# Detector `{arch}` (docTR DBNet, trained here)",
        "",
        f"- Weights: `{weights.name}` ({weights.stat().st_size / 1e6:.1f} MB, fp16 safetensors; loaded as float32 by "
        "`ocrapp.detection.load_detector`).",
        f"- Architecture: docTR `{cfg.doctr_arch}`" + (f" with `head_chans={cfg.head_chans}`" if cfg.head_chans else "")
        + f", built with `pretrained=False, pretrained_backbone=False` (no ImageNet backbone: trained from scratch). {cfg.note}.",
        "- Why this arch: the machine that trained it has 2 CPU cores shared with the recognizer run. MobileNetV3-large"
        " is docTR's cheapest DBNet backbone; docTR's default 256-channel DB head dominates the cost at full "
        "resolution (measured on one shared thread, 384x384 forward+backward: ~4.5 s with 256 head channels, ~1.9 s "
        "with 128, ~1.4 s with 64), so the head is reduced to 96 channels (PP-OCR's mobile DB uses 96 too). db_resnet50 is the GPU choice.",
        f"- Inference: `DetectionPredictor` resizes the longer page side to {size} px (aspect kept, white padding"
        + ("; the size is stored in the file, chosen by the tuner" if input_size else "") + "), "
        "runs docTR's DB postprocessing for rotated words (`assume_straight_pages=False`: minimum-area quads), "
        "returns TL,TR,BR,BL polygons in page pixels. A close-up whose letters would come out taller than 24 px is "
        "read smaller (`ocrapp.detection.text_scale`).",
        f"- Postprocessing stored in the file: bin_thresh {postprocess.bin_thresh}, box_thresh "
        f"{postprocess.box_thresh}, unclip_ratio {postprocess.unclip_ratio} (chosen by `python -m "
        "ocrapp.detection.tune` on held-out pages of the training cache; docTR's defaults are 0.3 / 0.1 / 1.5).",
        "",
    ]
    if notes:
        lines += [notes.strip(), ""]
    lines += [
        "## Training",
        f"- Command args: `{json.dumps({k: str(v) for k, v in ck_args.items()})}`",
        f"- Steps: {ck_state.get('step')}, crops seen: {ck_state.get('pages_seen')} "
        f"({ck_args.get('crop')}x{ck_args.get('crop')} crops from pages scaled like a {ck_args.get('infer_size')} px "
        f"input, x0.7-1.35 jitter), training time: {ck_state.get('elapsed_s', 0) / 60:.1f} min.",
        f"- Hardware: {_cpu_name()}, {ck_args.get('threads')} torch thread(s), shared machine "
        f"(device: {ck_args.get('device') or 'cpu'}).",
        "- Loss: docTR's DB loss (focal + dice on the probability map, L1 on the threshold map); AdamW "
        f"lr {ck_args.get('lr')}, warm-up then cosine over {ck_args.get('minutes')} min.",
        "- Data: `python -m ocrapp.training.data.pages` cache: real pages of Debian documentation PDFs "
        "(DEFAULT_PACKAGES of `pdf_words`; held-out dev packages refused) rendered at 72-200 dpi + synthetic fpdf2 "
        "documents (invoice/form/letter/table/receipt/article), boxes from pdftotext's text layer for both, then "
        "scan/photo simulation (skew, perspective photo on a background, light/shadow, blur, noise, JPEG, low dpi, "
        "binarisation, 90/180/270 rotations). Never trained on ../shared/data.",
    ]
    if mix:
        lines.append(f"- Page cache when exported: {json.dumps(mix)}")
    if hist:
        lines += ["", "## Validation (held-out cache pages, ids divisible by 50; IoU 0.5)", "",
                  "| step | minutes | crops | recall | precision | hmean |", "|---|---|---|---|---|---|"]
        for h in hist[-12:]:
            lines.append(f"| {h['step']} | {h['minutes']} | {h['pages_seen']} | {h['recall']} | {h['precision']} | "
                         f"{h['hmean']} |")
    lines += ["", "## Dev-set evaluation", ""]
    if metrics:
        conf = metrics.get("_config", {})
        lines += [f"`python -m ocrapp.detection.evaluate --weights {conf.get('weights')} --arch {arch} "
                  f"--max-pages-per-pdf {conf.get('max_pages_per_pdf')} --postprocess runs/det/postprocess.json` "
                  f"(input {conf.get('input_size')} px, postprocessing {conf.get('postprocess', 'docTR defaults')}, "
                  "one-to-one polygon IoU >= 0.5 vs word boxes):", "",
                  "| set | pages | gt words | predictions | recall | precision | hmean |", "|---|---|---|---|---|---|---|"]
        for name, r in metrics.items():
            if name.startswith("_"):
                continue
            lines.append(f"| {name} | {r['pages']} | {r['gt']} | {r['pred']} | {r['recall']} | {r['precision']} | "
                         f"{r['hmean']} |")
    else:
        lines.append("Not evaluated yet: run `python -m ocrapp.detection.evaluate` and re-export with `--metrics`.")
    lines += ["", f"Exported {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", ""]
    path.write_text("\n".join(lines))


def export(ckpt: Path, out_dir: Path, metrics_path: Path | None = None, data_dir: Path | None = None,
           arch: str | None = None, max_shard_bytes: int | None = None, card: bool = True,
           postprocess: PostprocessConfig | None = None, notes: str | None = None,
           input_size: int | None = None) -> Path:
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    arch = arch or ck.get("arch")
    model = build_detector(arch)
    load_state_into(model, ck["model"], ckpt)
    weights = out_dir / f"detector_{arch}.safetensors"
    postprocess = postprocess or PostprocessConfig()
    metadata = {"arch": arch, "step": str(ck["state"].get("step")), **postprocess.to_metadata()}
    if input_size:
        metadata[INPUT_SIZE_KEY] = str(input_size)
    files = export_fp16_safetensors(model, weights, metadata=metadata, max_shard_bytes=max_shard_bytes)
    for f in files:
        f.chmod(0o644)
    if weights.exists() and weights.stat().st_size > MAX_BYTES:
        raise RuntimeError(f"{weights} is {weights.stat().st_size} bytes (> 60 MB)")
    if not card:
        return weights
    metrics = json.loads(metrics_path.read_text()) if metrics_path and metrics_path.exists() else None
    mix = data_mix(data_dir) if data_dir and data_dir.exists() else None
    write_card(out_dir / f"detector_{arch}.md", arch, ck["state"], ck.get("args", {}), mix, metrics,
               weights if weights.exists() else weights.with_name(weights.name + ".index.json"), postprocess, notes,
               input_size)
    return weights


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, default=Path("runs/det/best.pt"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--arch", default=None)
    ap.add_argument("--metrics", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache/ocrapp/pages")
    ap.add_argument("--postprocess", type=Path, default=None, help="JSON of `python -m ocrapp.detection.tune`")
    ap.add_argument("--notes", type=Path, default=None, help="Markdown section (status, caveats) for the card")
    args = ap.parse_args(argv)
    notes = args.notes.read_text() if args.notes else None
    print(export(args.ckpt, args.out, args.metrics, args.data, args.arch, postprocess=load_tuned(args.postprocess),
                 notes=notes, input_size=load_tuned_input_size(args.postprocess)))


if __name__ == "__main__":
    main()
