"""The recognizer's data engine, training loop, export and GPU recipe, run at a tiny size on CPU."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ocrapp.recognition.charset import DOCUMENT_CHARSET
from ocrapp.recognition.weights import load_recognizer
from ocrapp.training.data.fonts import discover_fonts
from ocrapp.training.data.shards import ShardStream, list_shards
from ocrapp.training.data.synth_words import PROFILES, WordRenderer, build_cache
from ocrapp.training.recognizer.gpu_recipe import DataMix, run


def test_synth_cache_shards_are_complete_and_in_charset(tmp_path: Path) -> None:
    build_cache(tmp_path, count=300, workers=1, shard_size=100, seed=3)
    shards = list_shards(tmp_path)
    assert len(shards) == 3
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    images, labels = next(iter(ShardStream([tmp_path], batch_size=64)))
    assert images.shape == (64, 32, 128, 3) and images.dtype == np.uint8
    assert all(0 < len(t) <= 25 and all(c in DOCUMENT_CHARSET for c in t) for t in labels)
    all_labels = [t for npy in shards for t in npy.with_suffix(".txt").read_text().splitlines()]
    assert len(all_labels) == 300 and len(set(all_labels)) > 200  # varied text, not one word repeated
    # a batch mixes label lengths: one-length batches let BatchNorm's batch statistics leak the length
    assert max(map(len, labels)) - min(map(len, labels)) > 6
    assert images.std() > 10  # something was drawn


def test_receipts_profile_draws_upper_case_fields() -> None:
    renderer = WordRenderer(PROFILES["receipts"], seed=4)
    labels = [renderer.sample()[1] for _ in range(300)]
    upper = [t for t in labels if any(c.isalpha() for c in t) and t == t.upper()]
    fields = [t for t in labels if ":" in t and any(c.isdigit() for c in t.split(":")[-1])]
    assert len(upper) > 0.5 * len(labels) and len(fields) > 0.15 * len(labels)
    general = WordRenderer(PROFILES["general"], seed=4)
    general_labels = [general.sample()[1] for _ in range(300)]
    assert sum(t == t.upper() and any(c.isalpha() for c in t) for t in general_labels) < 0.35 * len(labels)


def test_pixel_print_draws_enlarged_bitmap_glyphs() -> None:
    """A thermal printer's glyphs: two colours only (no anti-aliasing) in blocks of 1.4-3.2 pixels per dot."""
    renderer = WordRenderer(PROFILES["receipts"], seed=6)
    face = next(f for f in renderer.fonts if f.covers("TOTAL RM 12.50"))
    font = renderer._font(face, 16)
    ink, paper = (0, 0, 0), (255, 255, 255)
    smooth, _ = renderer._draw("TOTAL RM 12.50", font, ink, paper, pixel_print=False)
    pixel, layout = renderer._draw("TOTAL RM 12.50", font, ink, paper, pixel_print=True)
    assert len(np.unique(smooth.reshape(-1, 3), axis=0)) > 2  # anti-aliased edges
    assert len(np.unique(pixel.reshape(-1, 3), axis=0)) == 2
    scale = pixel.shape[0] / smooth.shape[0]
    assert 1.35 < scale < 3.25 and layout.line_height == pytest.approx(sum(font.getmetrics()) * scale, rel=0.05)
    # every row is a copy of a printer-dot row: far fewer distinct rows than image rows
    ink_rows = [r.tobytes() for r in pixel[:, :, 0] if r.min() == 0]
    assert len(set(ink_rows)) < 0.8 * len(ink_rows)
    assert PROFILES["general"].pixel_print_share == 0 and PROFILES["receipts"].pixel_print_share > 0.2


def test_binarised_scan_is_bilevel_at_the_crop_size() -> None:
    renderer = WordRenderer(PROFILES["scans"], seed=7)
    face = next(f for f in renderer.fonts if f.covers("Account effect"))
    crop, _ = renderer._draw("Account effect", renderer._font(face, 40), (20, 20, 20), (235, 235, 235))
    grays = []
    for _ in range(6):
        scan = renderer._binarised_scan(crop)
        assert scan.shape == crop.shape
        grays.append(scan[..., 0])
    assert any(set(np.unique(g)) <= {0, 255} for g in grays)  # enlarged by nearest neighbour: two levels only
    # a low resolution: every scan is blockier than the drawn crop (fewer distinct rows of ink)
    rows = lambda img: len({r.tobytes() for r in img})  # noqa: E731
    assert all(rows(g) < rows(crop[..., 0]) for g in grays)


def test_typewriter_strikes_each_letter_on_its_own() -> None:
    """Typewritten words: a fixed-pitch face, each letter at its own height and strength; a smooth draw of the
    same word has one baseline and one strength."""
    from ocrapp.training.data.val_sets import SYNTH_VAL_SETS

    renderer = WordRenderer(PROFILES["scans"], seed=8)
    fixed = renderer.fixed_pitch_faces()
    assert fixed and all("Mono" in f.path.name for f in fixed)
    font = renderer._font(fixed[0], 60)
    pitch, word = font.getlength("H"), "HHHHHHHHHH"

    def letters(image: np.ndarray, left: float) -> tuple[set[int], set[int]]:
        """Per letter cell: the lowest row holding ink and the darkest value."""
        gray = image[..., 0].astype(int)
        bottoms, darkest = set(), set()
        for i in range(len(word)):
            cell = gray[:, int(left + i * pitch + pitch * 0.15):int(left + (i + 1) * pitch - pitch * 0.15)]
            rows = np.nonzero((cell < 215).any(axis=1))[0]
            bottoms.add(int(rows.max()))
            darkest.add(int(cell.min()))
        return bottoms, darkest

    smooth, layout = renderer._draw(word, font, (0, 0, 0), (255, 255, 255))
    bottoms, darkest = letters(smooth, layout.left)
    assert len(bottoms) == 1 and darkest == {0}
    uneven = 0
    for _ in range(5):
        typed, layout = renderer._draw_typewritten(word, font, (0, 0, 0), (255, 255, 255))
        bottoms, darkest = letters(typed, layout.left)
        uneven += len(bottoms) > 1 and max(darkest) - min(darkest) > 5
    assert uneven >= 4
    assert PROFILES["general"].typewriter_share == 0 < PROFILES["scans"].typewriter_share
    # the held-out scans folder keeps the words and renders it had before the style existed
    scans_val = next(v for v in SYNTH_VAL_SETS if v.name == "scans_val")
    assert scans_val.cfg == replace(PROFILES["scans"], typewriter_share=0.0, neighbour_share=0.0)


def test_neighbours_are_cut_by_the_crop_edge() -> None:
    """A one-letter word ("O", one blob of ink): cropped alone it stays one blob (but for a rare rule under it);
    with neighbours the crop also holds pieces of them. Pinned held-out folders draw no neighbours, but for the one
    that measures them, where every crop has some."""
    import cv2

    from ocrapp.training.data.val_sets import SYNTH_VAL_SETS

    renderer = WordRenderer(PROFILES["scans"], seed=9)
    face = next(f for f in renderer.fonts if f.covers("O") and "Mono" not in f.path.name)
    font = renderer._font(face, 40)

    def blobs(with_neighbours: bool) -> list[int]:
        """Per crop, how many blobs of ink it holds."""
        found = []
        for _ in range(40):
            image, layout = renderer._draw("O", font, (0, 0, 0), (255, 255, 255))
            if with_neighbours:
                image, layout = renderer._add_neighbours(image, layout, font, (0, 0, 0))
            ink = (renderer._crop(image, layout)[..., 0] < 128).astype(np.uint8)
            count, _, stats, _ = cv2.connectedComponentsWithStats(ink)
            found.append(sum(stats[i, cv2.CC_STAT_AREA] >= 3 for i in range(1, count)))
        return found

    assert sum(n == 1 for n in blobs(False)) >= 36
    assert sum(n >= 2 for n in blobs(True)) >= 34
    assert PROFILES["scans"].neighbour_share > PROFILES["general"].neighbour_share > 0
    shares = {v.name: v.cfg.neighbour_share for v in SYNTH_VAL_SETS}
    assert shares.pop("neighbours_val") == 1.0
    assert set(shares.values()) == {0.0}


def test_form_rules_run_across_the_crop_and_the_crop_takes_them_in() -> None:
    """The word drawn in the paper's colour leaves only the form's rules as ink: nearly every crop holds a row of
    them (solid, dashed or dotted) running from its left third to its right third. Only the forms profile and its
    held-out folder draw rules."""
    from ocrapp.training.data.val_sets import SYNTH_VAL_SETS

    renderer = WordRenderer(PROFILES["forms"], seed=3)
    face = next(f for f in renderer.fonts if f.covers("example"))
    font = renderer._font(face, 40)
    white, black = (255, 255, 255), (0, 0, 0)
    with_rules = 0
    for _ in range(100):
        image, layout = renderer._draw("example", font, white, white)
        image, layout = renderer._add_form_rules(image, layout, font, black)
        ink = renderer._crop(image, layout)[..., 0] < 128
        third = ink.shape[1] // 3
        rows = ink[ink.mean(axis=1) > 0.2]
        with_rules += bool(len(rows)) and rows[:, :third].any() and rows[:, -third:].any()
    assert with_rules >= 97  # 0.8 of them without the layout's extension (session 27)
    shares = {v.name: v.cfg.form_rule_share for v in SYNTH_VAL_SETS}
    assert shares.pop("forms_val") == 1.0 and set(shares.values()) == {0.0}
    assert PROFILES["forms"].form_rule_share > 0
    assert all(cfg.form_rule_share == 0 for name, cfg in PROFILES.items() if name != "forms")


def test_thermal_profile_squeezes_narrow_faces_in_grey_ink() -> None:
    """Till receipts: monospaced or condensed faces, grey ink at least 60 levels below white paper, and a line
    squeezed to 0.6 of its width keeps its layout on the squeezed ink."""
    from ocrapp.training.data.synth_words import _scale_width

    renderer = WordRenderer(PROFILES["thermal"], seed=11)
    narrow = renderer.narrow_faces()
    names = [f.path.stem for f in narrow]
    assert any("Mono" in n for n in names) and any("Narrow" in n or "Condensed" in n for n in names)
    assert not any(n.startswith(("Caladea", "URWBookman")) for n in names)  # held-out families stay out
    for _ in range(50):
        ink, paper = renderer._receipt_colors()
        assert len(set(ink)) == len(set(paper)) == 1 and paper[0] >= 215 and paper[0] - ink[0] >= 60
    face = next(f for f in narrow if "Mono" in f.path.stem)
    image, layout = renderer._draw("HHHHHH", renderer._font(face, 40), (0, 0, 0), (255, 255, 255))
    squeezed, squeezed_layout = _scale_width(image, layout, 0.6)

    def ink_span(img: np.ndarray) -> tuple[int, int]:
        cols = np.flatnonzero((img[..., 0] < 128).any(axis=0))
        return int(cols[0]), int(cols[-1]) + 1

    (l0, r0), (l1, r1) = ink_span(image), ink_span(squeezed)
    assert abs((r1 - l1) - 0.6 * (r0 - l0)) <= 2 and squeezed.shape[0] == image.shape[0]
    assert squeezed_layout.left <= l1 + 2 and squeezed_layout.left + squeezed_layout.width >= r1 - 2
    assert squeezed_layout.width == pytest.approx(0.6 * layout.width)
    assert PROFILES["thermal"].narrow_face_share > 0 == PROFILES["receipts"].narrow_face_share
    # marked zeros: ink inside each zero's counter, none added to the other letters
    font = renderer._font(face, 40)
    plain, _ = renderer._draw("0O0", font, (0, 0, 0), (255, 255, 255))
    counter_ink = []
    for mark in ("slash", "dot"):
        marked, layout = renderer._draw("0O0", font, (0, 0, 0), (255, 255, 255), zero_mark=mark)
        added = (marked[..., 0] < 128) & ~(plain[..., 0] < 128)
        cols = np.flatnonzero(added.any(axis=0)) - layout.left
        advance = font.getlength("0")
        assert len(cols) and set((cols // advance).astype(int).tolist()) <= {0, 2}
        counter_ink.append(int(added.sum()))
    assert min(counter_ink) > 0


def test_printer_profile_sets_receipt_words_in_printer_faces() -> None:
    """The terminal/programming faces (scripts/install.sh installs them) stay out of the document faces, are all
    upright and fixed-pitch, split into training and held-out families, and the printer profile draws them."""
    from ocrapp.training.data.fonts import HELD_OUT_PRINTER_FAMILIES, discover_printer_faces

    printer, held_out = discover_printer_faces(), discover_printer_faces(held_out=True)
    assert len(printer) >= 20 and held_out
    assert all(f.path.stem.startswith(HELD_OUT_PRINTER_FAMILIES) for f in held_out)
    assert not any(f.path.stem.startswith(HELD_OUT_PRINTER_FAMILIES) for f in printer)
    assert not {f.path for f in printer + held_out} & {f.path for f in discover_fonts() + discover_fonts(True)}
    for cfg, faces in ((PROFILES["printer"], printer), (replace(PROFILES["printer"], held_out_fonts=True), held_out)):
        renderer = WordRenderer(replace(cfg, printer_face_share=1.0), seed=5)
        for face in faces:
            font = renderer._font(face, 24)
            assert len({font.getlength(ch) for ch in "iMW.1m"}) == 1, face.path.name
        renderer.narrow_faces()  # found once, through _font, before the faces drawn are recorded
        used = []
        draw_font = renderer._font
        renderer._font = lambda face, size: (used.append(face), draw_font(face, size))[1]
        for _ in range(20):
            renderer.render("TOTAL AMOUNT RM 10.00", renderer.fonts[0])
        assert used and set(used) <= set(faces)
    assert PROFILES["printer"].printer_face_share > 0 == PROFILES["thermal"].printer_face_share


def _debian_like_pdf_root(root: Path) -> Path:
    """An unpacked-package folder as pdf_crops leaves it (``<package>/.unpacked``) with one training-split PDF."""
    fpdf = pytest.importorskip("fpdf")
    from ocrapp.training.data.pdf_crops import document_split

    package = root / "texlive-test-doc"
    package.mkdir(parents=True)
    (package / ".unpacked").touch()
    name = next(f"doc{i}.pdf" for i in range(100) if document_split(f"texlive-test-doc/doc{i}.pdf") == "train")
    pdf = fpdf.FPDF(unit="pt", format=(420, 300))
    for page in range(3):
        pdf.add_page()
        pdf.set_font("Helvetica", size=16)
        for line in range(5):
            pdf.set_xy(20, 30 + 45 * line)
            pdf.cell(text=f"Invoice number {page}{line}7 Total: amount due")
    pdf.output(str(package / name))
    return root


def test_crops_are_blurred_on_the_fly_at_the_chosen_share() -> None:
    """A share of a batch is smeared (a horizontal motion kernel is one row; defocus and smear both lower the
    crops' sharpness), the rest and the cached array are left as they were."""
    import cv2

    from ocrapp.training.data.crop_blur import CropBlurConfig, blur_batch, motion_kernel

    kernel = motion_kernel(7, 0.0)
    assert kernel.sum() == pytest.approx(1.0) and np.count_nonzero(kernel.sum(axis=1)) == 1
    assert np.count_nonzero(motion_kernel(7, 90.0).sum(axis=0)) == 1  # turned upright: one column
    dots = np.full((32, 128, 3), 255, np.uint8)
    dots[8:24:4, ::4] = 0  # ink dots 4 px apart: a smear in any direction blurs them
    images = np.stack([dots] * 400)
    cached = images.copy()

    def sharpness(img: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())

    for motion_share in (0.0, 1.0):
        out = blur_batch(images, np.random.default_rng(1), CropBlurConfig(share=0.25, motion_share=motion_share))
        changed = [i for i in range(len(out)) if not np.array_equal(out[i], images[i])]
        assert 60 <= len(changed) <= 140  # about a quarter
        assert all(sharpness(out[i]) < 0.7 * sharpness(dots) for i in changed)
    assert np.array_equal(images, cached)
    assert blur_batch(images, np.random.default_rng(1), CropBlurConfig(share=0.0)) is images


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_gpu_recipe_runs_at_tiny_size_on_cpu(tmp_path: Path) -> None:
    pdfs = _debian_like_pdf_root(tmp_path / "debian")
    mix = DataMix(workers=6, receipt_workers=1, receipt_share=0.25, scan_workers=1, scan_share=0.1,
                  thermal_workers=1, thermal_share=0.1, words=600, pdf_root=pdfs, pdf_workers=1, pdf_share=0.25,
                  blur_share=0.2, forms_workers=1, forms_share=0.1)
    report = run(out=tmp_path / "out", minutes=0.6, work=tmp_path / "work", mix=mix, batch_size=16,
                 config="clip4str-tiny", init=None)
    files = sorted((tmp_path / "out").glob("*.safetensors*"))
    assert files and all(f.stat().st_size <= 16 * 2**20 for f in files)
    assert report["steps"] > 0 and set(report["exact_accuracy"]) == {"val", "held_out_fonts"}
    assert report["blur_share"] == 0.2
    # the weights and their moving average both scored; the one written reads the most held-out words
    by_weights = report["exact_accuracy_by_weights"]
    assert set(by_weights) == {"trained", "moving average"} and report["ema_decay"] == 0.998
    assert report["exact_accuracy"] == by_weights[report["weights"]]
    assert sum(report["exact_accuracy"].values()) == max(sum(v.values()) for v in by_weights.values())
    # one data engine per source, all feeding the batches: general, receipts, scan, printer and form words, real
    # PDF words
    assert report["data_weights"] == pytest.approx({"synth": 0.2, "synth_receipts": 0.25, "synth_scans": 0.1,
                                                    "synth_printer": 0.1, "synth_forms": 0.1, "pdf": 0.25})
    assert all(report["words_rendered"][name] > 0
               for name in ("synth", "synth_receipts", "synth_scans", "synth_printer", "synth_forms", "pdf"))
    receipt_shards = list_shards(tmp_path / "work" / "synth_receipts")
    receipt_labels = "".join(p.with_suffix(".txt").read_text() for p in receipt_shards)
    assert sum(c.isupper() for c in receipt_labels) > sum(c.islower() for c in receipt_labels)
    pdf_labels = {t for p in list_shards(tmp_path / "work" / "pdf") for t in p.with_suffix(".txt").read_text().split()}
    assert {"Invoice", "number", "Total:"} <= pdf_labels
    pdf_shards = list_shards(tmp_path / "work" / "pdf")
    pdf_crops = [t for p in pdf_shards for t in p.with_suffix(".txt").read_text().splitlines()]
    assert any(" " in t for t in pdf_crops) and any(" " not in t for t in pdf_crops)  # phrases beside single words
    assert json.loads((tmp_path / "out" / "recognizer_report.json").read_text())["files"] == [f.name for f in files]
    model = load_recognizer(tmp_path / "out" / "recognizer_clip4str-s.safetensors")
    assert model.cfg.name == "clip4str-tiny"


def test_two_cpu_workers_train_one_model_and_resume(tmp_path: Path) -> None:
    import torch

    from ocrapp.training.recognizer.train import TrainConfig, train_data_parallel

    build_cache(tmp_path / "data", count=200, workers=1, shard_size=100, seed=5)
    cfg = TrainConfig(model="clip4str-tiny", data=[tmp_path / "data"], out=tmp_path / "run", batch_size=16,
                      minutes=0.15, threads=1, workers=2, warmup_steps=5, eval_every=10**6, blur_share=0.3)
    train_data_parallel(cfg)
    first = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert first["step"] > 0 and first["seen"] == first["step"] * 16  # the global batch, 8 per worker
    train_data_parallel(cfg)  # resumes from last.pt in both workers
    second = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert second["step"] > first["step"]
    changed = [k for k in first["model"] if not torch.equal(first["model"][k], second["model"][k])]
    assert changed  # the resumed run kept training


def test_export_scores_every_output_branch(tmp_path: Path) -> None:
    from ocrapp.recognition.clip4str.config import CONFIGS
    from ocrapp.recognition.clip4str.model import Clip4Str
    from ocrapp.training.recognizer.export import BRANCHES, branch_scores

    build_cache(tmp_path / "val", count=40, workers=1, shard_size=40, seed=11)
    scores = branch_scores(Clip4Str(CONFIGS["clip4str-tiny"]), [tmp_path / "val"], limit=40)
    assert set(scores) == set(BRANCHES) and all(0.0 <= v <= 1.0 for v in scores.values())


def test_image_position_embedding_is_added_to_a_model_trained_without_it(tmp_path: Path) -> None:
    import torch

    from ocrapp.recognition.clip4str.config import CONFIGS
    from ocrapp.recognition.clip4str.model import Clip4Str
    from ocrapp.recognition.weights import save_recognizer
    from ocrapp.training.recognizer.train import TrainConfig, lr_factor, train

    torch.manual_seed(0)
    old = Clip4Str(replace(CONFIGS["clip4str-tiny"], image_pos_embed=False)).eval()
    assert not hasattr(old, "token_pos_embed")
    save_recognizer(old, tmp_path / "old.safetensors")
    build_cache(tmp_path / "data", count=100, workers=1, shard_size=100, seed=5)
    cfg = TrainConfig(model="clip4str-tiny", data=[tmp_path / "data"], out=tmp_path / "run", batch_size=16,
                      minutes=0.05, threads=1, warmup_steps=5, eval_every=10**6,
                      init_weights=tmp_path / "old.safetensors", add_image_pos_embed=True)
    train(cfg)
    state = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert state["config"]["image_pos_embed"] and "token_pos_embed" in state["model"]
    assert state["model"]["token_pos_embed"].abs().sum() > 0  # it trained

    new = Clip4Str(replace(old.cfg, image_pos_embed=True)).eval()
    new.load_state_dict({**old.state_dict(), "token_pos_embed": torch.zeros_like(new.token_pos_embed)})
    x = torch.randn(2, 3, *old.cfg.image_size)
    with torch.no_grad():
        assert torch.allclose(new.encode_image(x), old.encode_image(x))  # zeros: the same function at first
    # the optimizer restarts, so the learning rate warms up again from the step the embedding was added at
    assert lr_factor(1000, cfg, rewarm_from=1000) < 0.25 * lr_factor(1000, cfg)
    assert lr_factor(1010, cfg, rewarm_from=1000) == lr_factor(1010, cfg)


def test_annealing_decays_the_rate_and_keeps_the_state_before_it(tmp_path: Path) -> None:
    import torch

    from ocrapp.training.recognizer.train import Anneal, TrainConfig, lr_factor, parse_args, train_data_parallel

    with pytest.raises(SystemExit):  # a decay as long as the run would have no steps to measure its length on
        parse_args(["--data", str(tmp_path), "--minutes", "20", "--anneal-minutes", "20"])

    build_cache(tmp_path / "data", count=200, workers=1, shard_size=100, seed=5)
    cfg = TrainConfig(model="clip4str-tiny", data=[tmp_path / "data"], val=[tmp_path / "data"], val_limit=16,
                      out=tmp_path / "run", batch_size=16, minutes=0.2, threads=1, workers=2, warmup_steps=5,
                      eval_every=10**6, anneal_minutes=0.1)
    train_data_parallel(cfg)
    stable = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    annealed = torch.load(tmp_path / "run" / "annealed.pt", map_location="cpu", weights_only=False)
    assert 0 < stable["step"] < annealed["step"]
    assert stable["history"] == [] and [h["step"] for h in annealed["history"]] == [annealed["step"]]  # final state scored
    assert (tmp_path / "run" / "best.pt").exists()
    full_rate = lr_factor(annealed["step"] - 1, cfg) * cfg.lr
    assert annealed["opt"]["param_groups"][0]["lr"] < 0.9 * full_rate  # decayed
    assert Anneal(100, 50).factor(100, 0.05) == 1.0 and Anneal(100, 50).factor(150, 0.05) == pytest.approx(0.05)
    train_data_parallel(cfg)  # the next run resumes the state from before the decay
    again = torch.load(tmp_path / "run" / "annealed.pt", map_location="cpu", weights_only=False)
    assert again["step"] > stable["step"] and [h["step"] for h in again["history"]] == [again["step"]]


def test_average_of_two_recognizers_is_a_loadable_model(tmp_path: Path) -> None:
    import torch

    from ocrapp.errors import ModelError
    from ocrapp.recognition.clip4str.config import CONFIGS
    from ocrapp.recognition.clip4str.model import Clip4Str
    from ocrapp.recognition.weights import save_recognizer
    from ocrapp.safetensors_io import fp16_state, read_safetensors
    from ocrapp.training.average import average_states, main

    torch.manual_seed(0)
    a, b = Clip4Str(CONFIGS["clip4str-tiny"]), Clip4Str(CONFIGS["clip4str-tiny"])
    save_recognizer(a, tmp_path / "a.safetensors")
    save_recognizer(b, tmp_path / "b.safetensors")
    out = main([str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--share", "0.25",
                "--out", str(tmp_path / "soup.safetensors")])
    soup = load_recognizer(out)
    key = "visual_decoder.head.weight"
    sa, sb = fp16_state(a), fp16_state(b)
    expected = (0.75 * sa[key].float() + 0.25 * sb[key].float()).half()
    assert torch.equal(soup.state_dict()[key].half(), expected)
    assert not torch.equal(sa[key], sb[key])  # the two differ, so the mean is a third model
    assert "a.safetensors x 0.75" in read_safetensors(out)[1]["averaged_from"]
    bad = dict(sb)
    bad[key] = torch.zeros(3, 3, dtype=torch.float16)
    with pytest.raises(ModelError, match=key):
        average_states([sa, bad], [0.5, 0.5])


def test_evaluate_compares_weight_files_per_folder_and_branch(tmp_path: Path) -> None:
    from ocrapp.recognition.clip4str.config import CONFIGS
    from ocrapp.recognition.clip4str.model import Clip4Str
    from ocrapp.recognition.weights import save_recognizer
    from ocrapp.training.recognizer.evaluate import main

    build_cache(tmp_path / "held", count=30, workers=1, shard_size=30, seed=12)
    save_recognizer(Clip4Str(CONFIGS["clip4str-tiny"]), tmp_path / "a.safetensors")
    table = main([str(tmp_path / "a.safetensors"), "--on", str(tmp_path / "held"), "--limit", "30", "--threads", "1",
                  "--json", str(tmp_path / "t.json")])
    scores = table[str(tmp_path / "a.safetensors")]["held"]
    assert set(scores) == {"cross", "visual", "confident"} and all(0.0 <= v <= 1.0 for v in scores.values())
    assert json.loads((tmp_path / "t.json").read_text()) == table


def test_weight_average_follows_the_training_and_is_exported(tmp_path: Path) -> None:
    import torch

    from ocrapp.safetensors_io import read_safetensors
    from ocrapp.training.recognizer.export import main as export
    from ocrapp.training.recognizer.train import TrainConfig, train
    from ocrapp.training.weight_average import WeightAverage

    layer = torch.nn.Linear(2, 1)
    torch.nn.init.zeros_(layer.weight)
    average = WeightAverage(layer, 0.5)
    for value in (4.0, 8.0):
        torch.nn.init.constant_(layer.weight, value)
        average.update(layer)
    assert torch.equal(average.shadow["weight"], torch.full((1, 2), 5.0))  # 0.5 * (0.5 * 0 + 0.5 * 4) + 0.5 * 8
    with average.applied(layer):
        assert torch.equal(layer.weight, torch.full((1, 2), 5.0))
    assert torch.equal(layer.weight, torch.full((1, 2), 8.0))  # its own weights again

    build_cache(tmp_path / "data", count=100, workers=1, shard_size=100, seed=5)
    cfg = TrainConfig(model="clip4str-tiny", data=[tmp_path / "data"], val=[tmp_path / "data"], val_limit=16,
                      out=tmp_path / "run", batch_size=16, minutes=0.05, threads=1, warmup_steps=5,
                      eval_every=10**6, ema_decay=0.9)
    train(cfg)
    first = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert first["ema"]["updates"] == first["step"] > 0
    assert "ema_data" in first["history"][-1] and "data" in first["history"][-1]  # both scored
    key = "visual_decoder.head.weight"
    assert not torch.equal(first["ema"]["shadow"][key], first["model"][key])
    train(cfg)  # resumed: the average goes on from where it was
    second = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert second["ema"]["updates"] == second["step"] > first["step"]

    out = export([str(tmp_path / "run" / "last.pt"), str(tmp_path / "ema.safetensors"), "--ema"])
    assert torch.equal(load_recognizer(out).state_dict()[key].half(), second["ema"]["shadow"][key].half())
    assert read_safetensors(out)[1]["weights"] == "moving average, decay 0.9"
    train(replace(cfg, out=tmp_path / "plain", ema_decay=0.0))
    with pytest.raises(SystemExit, match="without --ema-decay"):
        export([str(tmp_path / "plain" / "last.pt"), str(tmp_path / "x.safetensors"), "--ema"])


def test_a_frozen_image_tower_keeps_its_weights_and_statistics_while_the_decoders_train(tmp_path: Path) -> None:
    import torch

    from ocrapp.recognition.clip4str.config import CONFIGS
    from ocrapp.recognition.clip4str.model import Clip4Str
    from ocrapp.recognition.weights import save_recognizer
    from ocrapp.training.recognizer.train import TrainConfig, train

    torch.manual_seed(0)
    save_recognizer(Clip4Str(CONFIGS["clip4str-tiny"]).eval(), tmp_path / "start.safetensors")
    start = load_recognizer(tmp_path / "start.safetensors").state_dict()
    build_cache(tmp_path / "data", count=100, workers=1, shard_size=100, seed=5)
    # eval_every=2: evaluations between steps must not put the tower's BatchNorms back into training mode
    cfg = TrainConfig(model="clip4str-tiny", data=[tmp_path / "data"], val=[tmp_path / "data"], val_limit=16,
                      out=tmp_path / "run", batch_size=16, minutes=0.05, threads=1, warmup_steps=5, eval_every=2,
                      init_weights=tmp_path / "start.safetensors", freeze_image_tower=True)
    train(cfg)
    state = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert state["step"] > 2
    tower = [k for k in state["model"] if k.startswith("clip_model.visual.")]
    assert any("running_mean" in k for k in tower)
    assert all(torch.equal(state["model"][k], start[k].to(state["model"][k].dtype)) for k in tower)
    assert not torch.equal(state["model"]["visual_decoder.head.weight"], start["visual_decoder.head.weight"].float())
    assert not torch.equal(state["model"]["token_proj.weight"], start["token_proj.weight"].float())
