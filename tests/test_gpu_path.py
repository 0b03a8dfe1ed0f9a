"""The GPU path, exercised on CPU: OOM halving + retry, memory-sized batches, the benchmark and gpu_run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ocrapp import accel
from ocrapp.detection.model import DEFAULT_ARCH, build_detector
from ocrapp.detection.predictor import DetectionPredictor
from ocrapp.recognition.clip4str.config import CONFIGS
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.predictor import Recognizer, RecognizerConfig
from ocrapp.training import gpu_run

REPO = Path(__file__).resolve().parents[1]


def _crops(n: int) -> list[np.ndarray]:
    """Noise crops of varied sizes, all narrower than 4 heights (one piece each: see long_crops)."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (24 + i % 5, 40 + 3 * i, 3), dtype=np.uint8) for i in range(n)]


def _pages(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    pages = []
    for i in range(n):
        page = np.full((200 + 20 * i, 160, 3), 255, np.uint8)
        for _ in range(6):
            y, x = rng.integers(10, page.shape[0] - 20), rng.integers(5, 100)
            page[y:y + 8, x:x + 50] = 0
        pages.append(page)
    return pages


@pytest.fixture(scope="module")
def recognizer_model() -> Clip4Str:
    torch.manual_seed(0)
    return Clip4Str(CONFIGS["clip4str-tiny"]).eval()


@pytest.fixture(scope="module")
def detector_model():
    torch.manual_seed(0)
    return build_detector(DEFAULT_ARCH).eval()


def _fail_first(monkeypatch, obj, name: str, exc: BaseException) -> list[int]:
    calls: list[int] = []
    real = getattr(obj, name)

    def flaky(batch, *args, **kwargs):
        calls.append(len(batch))
        if len(calls) == 1:
            raise exc
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(obj, name, flaky)
    return calls


def _same_readings(a, b) -> None:
    assert [t for t, _ in a] == [t for t, _ in b]
    assert np.allclose([c for _, c in a], [c for _, c in b], atol=1e-4)


def test_recognizer_oom_halves_the_batch_and_retries(monkeypatch, recognizer_model) -> None:
    crops = _crops(12)
    once = RecognizerConfig(batch_size=8, reread_below=None)  # one read per crop: the batches below add up to 12
    reference = Recognizer(recognizer_model, torch.device("cpu"), once).read(crops)
    rec = Recognizer(recognizer_model, torch.device("cpu"), once)
    calls = _fail_first(monkeypatch, rec, "_read_batch", torch.OutOfMemoryError("CUDA out of memory (simulated)"))
    _same_readings(rec.read(crops), reference)
    assert calls[:2] == [8, 4] and rec._batch_size == 4 and sum(calls[1:]) == 12


def test_recognizer_other_errors_propagate(monkeypatch, recognizer_model) -> None:
    rec = Recognizer(recognizer_model, torch.device("cpu"), RecognizerConfig(batch_size=4))
    _fail_first(monkeypatch, rec, "_read_batch", RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        rec.read(_crops(3))
    assert rec._batch_size == 4


def test_recognizer_batch_grows_with_free_memory(monkeypatch, recognizer_model) -> None:
    crops = _crops(20)
    reference = Recognizer(recognizer_model, torch.device("cpu"), RecognizerConfig(batch_size=2)).read(crops)
    # pretend to be a GPU: 1 MB per crop measured, 1 GB free -> grows by powers of two up to max_batch_size
    monkeypatch.setattr(accel, "start_peak", lambda device: 0)
    monkeypatch.setattr(accel, "peak_since", lambda device, base: 2 * 2**20)
    monkeypatch.setattr(accel, "free_memory", lambda device: 2**30)
    rec = Recognizer(recognizer_model, torch.device("cpu"), RecognizerConfig(batch_size=2, max_batch_size=8))
    _same_readings(rec.read(crops), reference)
    assert rec._batch_size == 8


def test_fit_batch() -> None:
    assert accel.fit_batch(2**20, 2**30, 16, 1024) == 512  # 0.6 GiB / 1 MiB = 614 -> 512
    assert accel.fit_batch(2**20, 2**30, 16, 256) == 256
    assert accel.fit_batch(2**30, 2**30, 16, 1024) == 16  # never shrinks
    assert accel.is_oom(torch.OutOfMemoryError("x")) and accel.is_oom(RuntimeError("CUDA error: out of memory"))
    assert not accel.is_oom(RuntimeError("shape mismatch"))
    cpu = torch.device("cpu")
    assert accel.autocast_dtype(cpu) is None and accel.free_memory(cpu) is None


def test_detector_oom_halves_the_batch_and_retries(monkeypatch, detector_model) -> None:
    pages = _pages(5)
    reference = DetectionPredictor(detector_model, input_size=128, batch_size=4).predict(pages)
    pred = DetectionPredictor(detector_model, input_size=128, batch_size=4)
    calls = _fail_first(monkeypatch, pred, "prob_maps", torch.OutOfMemoryError("CUDA out of memory (simulated)"))
    got = pred.predict(pages)
    assert calls[:2] == [4, 2] and pred.batch_size == 2 and sum(calls[1:]) == 5
    assert len(got) == len(reference)
    for a, b in zip(got, reference):
        assert len(a) == len(b)
        for (pa, sa), (pb, sb) in zip(a, b):
            assert np.allclose(pa.points, pb.points, atol=1e-3) and abs(sa - sb) < 1e-4


def test_detector_batch_defaults_and_growth(monkeypatch, detector_model) -> None:
    assert DetectionPredictor(detector_model, input_size=128).batch_size == 2  # CPU default unchanged
    monkeypatch.setattr(accel, "start_peak", lambda device: 0)
    monkeypatch.setattr(accel, "peak_since", lambda device, base: 2**20)
    monkeypatch.setattr(accel, "free_memory", lambda device: 2**30)
    pred = DetectionPredictor(detector_model, input_size=128, batch_size=1, max_batch_size=4)
    assert len(pred.predict(_pages(6))) == 6 and pred.batch_size == 4


def test_benchmark_tiny_on_cpu(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_benchmark
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    report = gpu_benchmark.run(device="cpu", out=tmp_path, tiny=True, budget_s=60, random_weights=True)
    saved = json.loads((tmp_path / "gpu_benchmark.json").read_text())
    assert saved["device"] == "cpu" and saved["tiny"]
    assert [r["batch"] for r in report["recognizer"]] == [4, 8, 16]
    assert all(r.get("crops_per_s", 0) > 0 for r in report["recognizer"])
    assert report["detector"]["pages_per_s"] > 0 and report["end_to_end"]["pages"] == 2
    stages = report["stages"]
    assert set(stages["s_per_page"]) == {"rasterisation", "detection", "rectification", "recognition", "layout"}
    assert stages["bound_by"] in stages["s_per_page"]
    assert "| recognizer, batch 4 |" in (tmp_path / "gpu_benchmark.md").read_text()


def test_choose_model_rule(tmp_path: Path) -> None:
    models = tmp_path
    assert gpu_run.choose_model(models)["model"] == "recognizer"  # nothing shipped: tie -> recognizer
    (models / f"detector_{DEFAULT_ARCH}.safetensors").write_bytes(b"x")
    (models / f"detector_{DEFAULT_ARCH}.md").write_text(
        "## Dev-set evaluation\n\n| set | pages | gt words | predictions | recall | precision | hmean |\n"
        "|---|---|---|---|---|---|---|\n| a | 1 | 2 | 3 | 0.5 | 0.5 | 0.70 |\n| b | 1 | 2 | 3 | 0.5 | 0.5 | 0.50 |\n\n")
    assert gpu_run.detector_score(models, DEFAULT_ARCH) == pytest.approx(0.60)
    assert gpu_run.choose_model(models)["model"] == "recognizer"  # recognizer missing: shortfall 1
    (models / "recognizer_clip4str-s.safetensors").write_bytes(b"x")
    (models / "recognizer_report.json").write_text(json.dumps({"exact_accuracy": {"held_out_fonts": 0.85}}))
    choice = gpu_run.choose_model(models)  # recognizer 0.05/0.9 = 0.056 < detector 0.2/0.8 = 0.25
    assert choice["model"] == "detector" and choice["recognizer_held_out_exact"] == 0.85
    (models / "recognizer_report.json").write_text(json.dumps({"exact_accuracy": {"held_out_fonts": 0.40}}))
    assert gpu_run.choose_model(models)["model"] == "recognizer"


def test_recognizer_score_from_the_cards_shipped_row(tmp_path: Path) -> None:
    (tmp_path / "recognizer_x.md").write_text(
        "Trained 5 sessions (held-out words, below).\n\n| weights | pdf_val | held-out fonts | mean |\n|---|---:|---:|---:|\n"
        "| session 7 file | 0.959 | 0.842 | 0.80 |\n| **mean of a and b (shipped)** | **0.961** | **0.837** | 0.81 |\n")
    assert gpu_run.recognizer_score(tmp_path) == pytest.approx(0.837)
    (tmp_path / "recognizer_x.md").write_text("no table; held-out fonts 0.03 in a sentence\n")
    assert gpu_run.recognizer_score(tmp_path) is None
    shipped = gpu_run.recognizer_score(REPO / "models")  # the real card states its held-out-font accuracy
    assert shipped is not None and 0.5 < shipped < 1


_STUB = ("import sys, time, json, pathlib; out = pathlib.Path(sys.argv[1]); time.sleep(float(sys.argv[2])); "
         "(out / 'recognizer-00001-of-00001.safetensors').write_bytes(b'w' * 1000); "
         "(out / 'recognizer_report.json').write_text(json.dumps({'steps': 3}))")


def test_gpu_run_tiny_on_cpu(tmp_path: Path, monkeypatch) -> None:
    """Orchestration at a tiny size: fonts, choice, recipe with the time left, outputs within the tool's limits.
    (The recipes themselves are tested at a tiny size by test_recognizer_recipes.py / test_detection.py.)"""
    seen = {}

    def stub(model, out, minutes, tiny, device, pdfs=None):
        seen.update(model=model, minutes=minutes, tiny=tiny, pdfs=pdfs)
        return [sys.executable, "-c", _STUB, str(out), "0"]

    monkeypatch.setattr(gpu_run, "recipe_command", stub)
    report = gpu_run.run(tmp_path / "out", minutes=0.5, model="auto", tiny=True, device="cpu", models=tmp_path,
                         skip_benchmark=True, pdfs=tmp_path / "pdfs")
    assert seen["model"] == "recognizer" and seen["tiny"] and 0 < seen["minutes"] <= 0.5
    assert seen["pdfs"] == tmp_path / "pdfs"
    assert report["train_rc"] == 0 and report["train_report"] == {"steps": 3}
    assert report["output_problems"] == []
    saved = json.loads((tmp_path / "out" / "gpu_run.json").read_text())
    assert saved["choice"]["model"] == "recognizer" and "recognizer/recognizer_report.json" in saved["files"]


def test_gpu_run_stops_the_recipe_at_the_deadline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(gpu_run, "recipe_command",
                        lambda model, out, minutes, tiny, device, pdfs=None: [sys.executable, "-c", _STUB, str(out),
                                                                               "120"])
    report = gpu_run.run(tmp_path / "out", minutes=0.05, model="detector", tiny=True, device="cpu",
                         models=tmp_path, skip_benchmark=True)
    assert report["choice"]["model"] == "detector" and report["choice"]["forced"]
    assert report["train_rc"] != 0 and report["total_s"] < 30
    assert "deadline reached" in (tmp_path / "out" / "train.log").read_text()


def test_gpu_run_forced_model_needs_no_detector_packages(tmp_path: Path, monkeypatch) -> None:
    """A pack for the recognizer alone (gpu_pack --model recognizer) has no docTR: a forced choice still runs."""
    command = gpu_run.recipe_command("recognizer", tmp_path, 5.0, False, None, tmp_path / "pdfs")
    assert command[command.index("--pdf-root") + 1] == str(tmp_path / "pdfs")

    def no_doctr(models):
        raise ImportError("No module named 'doctr'")

    monkeypatch.setattr(gpu_run, "choose_model", no_doctr)
    monkeypatch.setattr(gpu_run, "recipe_command",
                        lambda model, out, minutes, tiny, device, pdfs=None: [sys.executable, "-c", _STUB, str(out),
                                                                               "0"])
    report = gpu_run.run(tmp_path / "out", minutes=0.3, model="recognizer", tiny=True, device="cpu",
                         models=tmp_path, skip_benchmark=True)
    assert report["choice"]["model"] == "recognizer" and "doctr" in report["choice"]["choice_error"]
    assert report["train_rc"] == 0
    with pytest.raises(ImportError):  # without a forced model there is nothing to fall back on
        gpu_run.run(tmp_path / "out2", minutes=0.3, model="auto", tiny=True, device="cpu", models=tmp_path,
                    skip_benchmark=True)


def test_carried_fonts_keep_printer_faces_apart(tmp_path: Path, monkeypatch) -> None:
    """gpu_pack packs document faces flat and printer faces in their folder; installed on the device, the printer
    face is found as one and the document face is not."""
    import shutil
    import tarfile

    from ocrapp.training.data import fonts

    sys.path.insert(0, str(REPO / "scripts"))
    import gpu_pack

    system = Path("/usr/share/fonts/truetype")
    root = tmp_path / "system"
    for rel in ("liberation/LiberationMono-Regular.ttf", "jetbrains-mono/JetBrainsMono-Regular.ttf"):
        (root / "truetype" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(system / rel, root / "truetype" / rel)
    assert gpu_pack.pack_fonts(tmp_path / "fonts.tar.gz", 2**24, root) == 2
    with tarfile.open(tmp_path / "fonts.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["LiberationMono-Regular.ttf", "jetbrains-mono/JetBrainsMono-Regular.ttf"]
        tar.extractall(tmp_path / "carried", filter="data")
    device_roots = (tmp_path / "device" / "truetype", tmp_path / "device" / "opentype")
    monkeypatch.setattr(fonts, "FONT_ROOTS", device_roots)
    assert gpu_run.install_fonts(tmp_path / "carried") == "carried (2 files)"
    printer = fonts.discover_printer_faces(roots=device_roots)
    assert [f.path.name for f in printer] == ["JetBrainsMono-Regular.ttf"]
