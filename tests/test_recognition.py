"""The CLIP4STR recognizer on real tensors: tokenizer, forward/backward, overfitting, weights, batching."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ocrapp.errors import ModelError
from ocrapp.recognition.charset import DOCUMENT_CHARSET, CharTokenizer
from ocrapp.recognition.clip4str.config import CONFIGS, Clip4StrConfig
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.clip4str.modules import IncrementalDecoding
from ocrapp.recognition.long_crops import (JOIN_NONE, JOIN_OVERLAP, SplitConfig, blank_columns, ink_mask, join_reads,
                                          split_long_crop)
from ocrapp.recognition.predictor import Recognizer, RecognizerConfig
from ocrapp.recognition.preprocess import images_to_tensor
from ocrapp.recognition.weights import load_clip_towers, load_official_clip4str, load_recognizer, save_recognizer
from ocrapp.safetensors_io import fp16_state
from ocrapp.training.data.synth_words import RenderConfig, WordRenderer
from ocrapp.training.recognizer.system import (
    PermutationSampler,
    PsmConfig,
    attention_masks,
    length_groups,
    parameter_groups,
    psm_loss,
)

TINY = CONFIGS["clip4str-tiny"]
TINY_VIT = dataclasses.replace(TINY, name="tiny-vit", vision="vit", vision_width=64, vision_layers=1,
                               vision_head_width=32)


def render_words(words: list[str], seed: int = 0) -> np.ndarray:
    renderer = WordRenderer(RenderConfig(degrade=False), seed)
    from ocrapp.recognition.preprocess import resize_crop

    font = next(f for f in renderer.fonts if "LiberationSans-Regular" in f.path.name)
    return np.stack([resize_crop(renderer.render(w, font), 32, 128) for w in words])


def test_tokenizer_round_trip() -> None:
    tok = CharTokenizer(DOCUMENT_CHARSET)
    labels = ["Straße", "€12,50", "a"]
    ids = tok.encode(labels)
    assert ids[0, 0] == tok.bos_id and ids[2, 2] == tok.eos_id and ids[2, 3] == tok.pad_id
    one_hot = torch.nn.functional.one_hot(ids[:, 1:].clamp(max=tok.num_classes - 1), tok.num_classes).float()
    texts, probs = tok.decode(one_hot)
    assert texts == labels
    assert len(probs[0]) == len("Straße") + 1


@pytest.mark.parametrize("cfg", [TINY, TINY_VIT], ids=["resnet", "vit"])
def test_forward_backward_reaches_every_trainable_parameter(cfg: Clip4StrConfig) -> None:
    torch.manual_seed(0)
    model = Clip4Str(cfg)
    images = images_to_tensor(render_words(["Invoice", "total:", "42.00"]), cfg)
    loss, parts = psm_loss(model, images, ["Invoice", "total:", "42.00"], PermutationSampler(PsmConfig()), PsmConfig())
    assert torch.isfinite(loss) and parts["visual_loss"] > 0 and parts["cross_loss"] > 0
    loss.backward()
    without_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    # Unused by design: the CLIP text pooling projection path and logit scale are not part of CLIP4STR's loss.
    assert [n for n in without_grad if "logit_scale" not in n] == []
    model.eval()
    with torch.inference_mode():
        logits = model(images)
    assert logits.shape[0] == 3 and logits.shape[-1] == model.tokenizer.num_classes


def test_length_groups_do_not_change_the_objective() -> None:
    """The decoders run on groups of similar label length; with only the forward and reverse orders (no random
    permutations) the visual branch's loss equals the ungrouped one: padding is masked, so grouping only saves
    compute. (The cross branch reads the visual guess decoded to the group's own length, so it may differ.)"""
    words = ["a", "Invoice", "total:", "42.00", "of", "Zürich-Bern", "to", "PDF"]
    images = images_to_tensor(render_words(words), TINY)
    losses = []
    for groups in (1, 3):
        torch.manual_seed(0)
        model = Clip4Str(TINY)
        cfg = PsmConfig(perm_num=2, length_groups=groups)
        _, parts = psm_loss(model, images, words, PermutationSampler(cfg), cfg)
        losses.append(parts["visual_loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert [len(g) for g in length_groups(words, 3)] == [3, 3, 2]
    assert sorted(i for g in length_groups(words, 3) for i in g) == list(range(len(words)))


def test_image_detached_from_cross_branch() -> None:
    model = Clip4Str(TINY)
    images = images_to_tensor(render_words(["word"]), TINY)
    memory = model.encode_image(images)
    cross = model.cross_memory(memory, torch.randn(1, 5, model.tokenizer.num_classes))
    cross.sum().backward()
    assert all(p.grad is None for p in model.clip_model.visual.parameters())


def test_permutation_masks_follow_the_order() -> None:
    perms = PermutationSampler(PsmConfig(), seed=1)(5, torch.device("cpu"))
    assert perms.shape == (6, 7)
    assert perms[0].tolist() == list(range(7))  # canonical
    assert perms[1].tolist() == [0, 6, 5, 4, 3, 2, 1]  # reverse, EOS with null context
    content, query = attention_masks(perms[0])
    assert torch.isinf(query[0, 1:]).all() and query[0, 0] == 0  # first char sees only BOS
    assert torch.isinf(content.diagonal()).sum() == 0


def test_tiny_recognizer_overfits_and_reads_words_back() -> None:
    torch.manual_seed(0)
    words = ["ocrapp", "Zürich", "12.50€", "PDF", "hello", "World!"]
    images = images_to_tensor(render_words(words), TINY)
    model = Clip4Str(TINY)
    opt = torch.optim.AdamW(parameter_groups(model, 2e-3, 2.0, 0.0), fused=True)
    sampler = PermutationSampler(PsmConfig(), seed=0)
    for _ in range(400):
        loss, _ = psm_loss(model, images, words, sampler, PsmConfig())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.01:
            break
    model.eval()
    with torch.inference_mode():
        texts, _ = model.tokenizer.decode(model(images).softmax(-1))
    assert texts == words


def test_weights_round_trip_and_clear_errors(tmp_path: Path) -> None:
    model = Clip4Str(TINY).eval()
    path = tmp_path / "rec.safetensors"
    save_recognizer(model, path)
    loaded = load_recognizer(path)
    x = images_to_tensor(render_words(["abc"]), TINY)
    with torch.inference_mode():
        a, b = model.encode_image(x), loaded.encode_image(x)
    assert torch.allclose(a, b, atol=2e-2)
    shards = save_recognizer(model, tmp_path / "sharded.safetensors", max_shard_bytes=7 * 2**20)
    assert len(shards) >= 3 and all(p.stat().st_size <= 7 * 2**20 for p in shards)  # shards + index
    assert load_recognizer(tmp_path / "sharded.safetensors").cfg == model.cfg
    # shards smaller than the token embedding (49408 x 64 fp16 = 6.3 MB): it travels as row blocks, joined on load
    small = save_recognizer(model, tmp_path / "small.safetensors", max_shard_bytes=4 * 2**20)
    assert all(p.stat().st_size <= 4 * 2**20 for p in small)
    index = json.loads((tmp_path / "small.safetensors.index.json").read_text())
    assert index["split_tensors"] == {"clip_model.token_embedding.weight": 2}
    joined = load_recognizer(tmp_path / "small.safetensors").state_dict()
    assert all(torch.equal(v, joined[k]) for k, v in fp16_state(model).items())
    with pytest.raises(ModelError, match="not found.*missing.safetensors"):
        load_recognizer(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError, match="junk.safetensors"):
        load_recognizer(tmp_path / "junk.safetensors")


def test_official_clip4str_layout_loads(tmp_path: Path) -> None:
    """A Lightning checkpoint shaped like the official VL4STR one (77 text positions) loads."""
    cfg = dataclasses.replace(TINY_VIT, image_size=(32, 32), patch_size=(16, 16))
    source = Clip4Str(cfg)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    pos = state["clip_model.positional_embedding"]
    state["clip_model.positional_embedding"] = torch.cat([pos, torch.randn(77 - pos.shape[0], pos.shape[1])])
    torch.save({"state_dict": state, "hyper_parameters": {}}, tmp_path / "clip4str.ckpt")
    model = load_official_clip4str(tmp_path / "clip4str.ckpt", cfg)
    assert torch.equal(model.visual_decoder.head.weight, source.visual_decoder.head.weight)
    bad = dict(state)
    bad["visual_decoder.head.weight"] = torch.zeros(3, 3)
    torch.save({"state_dict": bad}, tmp_path / "bad.ckpt")
    with pytest.raises(ModelError, match="shape mismatch.*visual_decoder.head.weight"):
        load_official_clip4str(tmp_path / "bad.ckpt", cfg)


def test_clip_towers_load_from_openclip_state_dict(tmp_path: Path) -> None:
    donor = Clip4Str(TINY_VIT)
    torch.save(donor.clip_model.state_dict(), tmp_path / "clip.pt")
    model = Clip4Str(TINY_VIT)
    load_clip_towers(model, tmp_path / "clip.pt")
    assert torch.equal(model.clip_model.visual.proj, donor.clip_model.visual.proj)
    with pytest.raises(ModelError, match="do not fit"):
        load_clip_towers(Clip4Str(TINY), tmp_path / "clip.pt")


def _ink_blocks(height: int, blocks: list[tuple[int, int]], width: int) -> np.ndarray:
    crop = np.full((height, width, 3), 250, np.uint8)
    for start, end in blocks:
        crop[height // 4: 3 * height // 4, start:end] = 20
    return crop


def _letters(start: int, count: int, width: int, gap: int) -> list[tuple[int, int]]:
    return [(start + i * (width + gap), start + i * (width + gap) + width) for i in range(count)]


def test_long_crop_is_cut_into_words() -> None:
    # five "words" of 30 px with 8 px gaps (0.8 text heights: spaces) and one 1 px gap inside the first word
    blocks = [(2, 15), (16, 32)] + [(40 + 38 * i, 70 + 38 * i) for i in range(4)]
    crop = _ink_blocks(20, blocks, 192)
    pieces, joins = split_long_crop(crop, SplitConfig())
    assert len(pieces) == 5 and all(p.shape[1] <= 4 * 20 for p in pieces)
    assert joins == ["", " ", " ", " ", " "]
    def inked_columns(image: np.ndarray) -> np.ndarray:
        return (image.min(axis=(0, 2)) < 128)

    # each piece holds one word with a margin of 0.2 text heights (2 px), not the whole gap
    assert [p.shape[1] for p in pieces] == [34, 34, 34, 34, 34]
    assert all(not inked_columns(p)[:2].any() and not inked_columns(p)[-2:].any() for p in pieces)
    assert sum(inked_columns(p).sum() for p in pieces) == inked_columns(crop).sum()  # no ink lost or read twice


def test_letter_gaps_wider_than_the_fixed_space_are_not_word_spaces() -> None:
    # scanned text: letter gaps of 3 px (0.3 text heights, above space_gap) and word gaps of 9 px
    blocks, x = [], 2
    for _word in range(4):
        for _letter in range(5):
            blocks.append((x, x + 6))
            x += 9
        x += 6  # word gap: 3 + 6 = 9 px
    crop = _ink_blocks(20, blocks, x)
    pieces, joins = split_long_crop(crop, SplitConfig())
    assert joins == ["", " ", " ", " "] and len(pieces) == 4


def test_long_crop_without_gaps_is_read_in_overlapping_windows() -> None:
    crop = _ink_blocks(20, [(0, 500)], 500)
    pieces, joins = split_long_crop(crop, SplitConfig(overlap=0.25, max_aspect=4.0))
    assert len(pieces) >= 8 and all(p.shape[1] == 80 for p in pieces)
    assert joins[1:] == [JOIN_OVERLAP] * (len(pieces) - 1)


def test_crop_of_a_few_words_is_cut_only_at_sure_spaces() -> None:
    # 6 text heights wide: too few gaps for the line's own split, so letter gaps of 0.3 text heights stay
    # inside the word (split there, words were read as "Mu Iti ple") ...
    letters = [(2 + 9 * i, 8 + 9 * i) for i in range(13)]
    pieces, joins = split_long_crop(_ink_blocks(20, letters, 120), SplitConfig())
    assert len(pieces) == 1
    # ... and a gap of 0.6 text heights is a word space
    two_words = letters[:6] + [(x + 3, y + 3) for x, y in letters[6:12]]
    pieces, joins = split_long_crop(_ink_blocks(20, two_words, 120), SplitConfig())
    assert joins == ["", " "]


def test_reads_of_pieces_are_joined() -> None:
    assert join_reads(["internationali", "nalisation"], ["", JOIN_OVERLAP]) == "internationalisation"
    assert join_reads(["abc", "xyz"], ["", JOIN_OVERLAP]) == "abcxyz"
    assert join_reads(["set up", "as", "", "it"], ["", " ", " ", ""]) == "set up asit"
    assert join_reads(["", "as"], ["", " "]) == "as"
    assert join_reads(["Thank  you ", " for"], ["", " "]) == "Thank you for"


def test_short_crop_is_one_piece() -> None:
    crop = _ink_blocks(32, [(4, 120)], 128)
    pieces, joins = split_long_crop(crop)
    assert len(pieces) == 1 and pieces[0] is crop


def test_a_few_words_cut_apart_are_also_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    letters = [(2 + 9 * i, 8 + 9 * i) for i in range(6)] + [(2 + 9 * i + 3, 8 + 9 * i + 3) for i in range(6, 12)]
    crop = _ink_blocks(20, letters, 120)  # 6 heights wide with one sure space: two pieces
    rec = Recognizer(Clip4Str(TINY), torch.device("cpu"), RecognizerConfig(reread_below=None))

    def fake_reads(whole_conf: float):
        def read_pieces(pieces):  # pieces read "ab" at 0.9 each; the whole crop "abab" at whole_conf
            return [("abab", whole_conf) if p.shape[1] == crop.shape[1] else ("ab", 0.9) for p in pieces]
        return read_pieces

    monkeypatch.setattr(rec, "_read_pieces", fake_reads(0.5))
    assert rec.read([crop]) == [("ab ab", pytest.approx(0.81))]
    monkeypatch.setattr(rec, "_read_pieces", fake_reads(0.95))
    assert rec.read([crop]) == [("abab", 0.95)]


def test_a_long_crop_is_also_read_cut_only_at_sure_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three monospaced words: letter gaps of 2 and 4 px (0.2 and 0.4 text heights), word gaps of 6 px. The line's
    own split of its gaps takes the 4 px letter gaps for spaces (12 pieces); cut only at sure spaces, 3 pieces."""
    blocks, x = [], 2
    for _word in range(3):
        for k in range(8):
            blocks.append((x, x + 6))
            x += 6 + (2 if k % 2 == 0 else 4)
        x += 2
    crop = _ink_blocks(20, blocks, x + 2)  # 11 heights wide
    assert len(split_long_crop(crop)[0]) == 12 and len(split_long_crop(crop, sure_spaces=True)[0]) == 3
    rec = Recognizer(Clip4Str(TINY), torch.device("cpu"), RecognizerConfig(reread_below=None, lexicon=None))

    def fake_reads(word_conf: float):
        def read_pieces(pieces):  # a word's half reads "ab" at 0.97, a whole word "abab" at word_conf
            return [("abab", word_conf) if p.shape[1] > 40 else ("ab", 0.97) for p in pieces]
        return read_pieces

    # compared per piece (geometric mean), reported as the product
    monkeypatch.setattr(rec, "_read_pieces", fake_reads(0.99))
    assert rec.read([crop]) == [("abab abab abab", pytest.approx(0.99 ** 3))]
    monkeypatch.setattr(rec, "_read_pieces", fake_reads(0.95))  # 0.95 ** 3 = 0.86 beats 0.97 ** 12 = 0.69: not so
    assert rec.read([crop]) == [(" ".join(["ab"] * 12), pytest.approx(0.97 ** 12))]
    off = Recognizer(rec.model, rec.device, RecognizerConfig(reread_below=None, lexicon=None,
                                                              sure_space_alternative=False))
    monkeypatch.setattr(off, "_read_pieces", fake_reads(0.99))
    assert off.read([crop])[0][0] == " ".join(["ab"] * 12)


def test_a_line_whose_spaces_are_not_sure_is_not_read_with_its_words_glued(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten words, letter gaps of 1 px, word spaces of 4 px (0.4 text heights: real, not sure). Cut only at sure
    spaces the line is one word, cut at its widest gaps (word spaces) and joined with nothing; when its pieces are
    read with spaces in them, they were runs of words and that plan is not taken. A long word without spaces (a
    path, a URL) still is."""
    blocks = [block for w in range(10) for block in _letters(2 + 31 * w, 4, width=6, gap=1)]
    crop = _ink_blocks(20, blocks, 2 + 31 * 10)
    sure_pieces, sure_joins = split_long_crop(crop, sure_spaces=True)
    assert len(sure_pieces) > 1 and set(sure_joins[1:]) == {JOIN_NONE}
    assert all(p.shape[1] > 40 for p in sure_pieces) and all(p.shape[1] <= 40 for p in split_long_crop(crop)[0])
    rec = Recognizer(Clip4Str(TINY), torch.device("cpu"), RecognizerConfig(reread_below=None, lexicon=None))

    def fake_reads(run_of_words: str):
        def read_pieces(pieces):  # a piece of the sure plan reads ``run_of_words`` at 0.99, a word "ab" at 0.9
            return [(run_of_words, 0.99) if p.shape[1] > 40 else ("ab", 0.9) for p in pieces]
        return read_pieces

    monkeypatch.setattr(rec, "_read_pieces", fake_reads("ab ab ab"))
    assert rec.read([crop])[0][0] == " ".join(["ab"] * 10)
    monkeypatch.setattr(rec, "_read_pieces", fake_reads("ab/ab/ab"))
    assert rec.read([crop])[0][0] == "ab/ab/ab" * len(sure_pieces)


def test_a_space_read_where_the_crop_has_no_gap_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """"from" read as "f rom": letter gaps of 1 px (0.1 text heights) hold no space; a 4 px gap (0.4) does."""
    word = _ink_blocks(20, _letters(2, 4, width=6, gap=1), 40)
    words = _ink_blocks(20, _letters(2, 2, width=6, gap=1) + _letters(22, 3, width=6, gap=1), 50)
    rec = Recognizer(Clip4Str(TINY), torch.device("cpu"), RecognizerConfig(reread_below=None, lexicon=None))
    monkeypatch.setattr(rec, "_read_pieces", lambda pieces: [("f rom", 0.6) if p.shape[1] == 40 else ("of the", 0.7)
                                                             for p in pieces])
    assert rec.read([word, words]) == [("from", 0.6), ("of the", 0.7)]
    off = Recognizer(rec.model, rec.device, RecognizerConfig(reread_below=None, lexicon=None, min_space_gap=None))
    monkeypatch.setattr(off, "_read_pieces", rec._read_pieces)
    assert off.read([word])[0][0] == "f rom"


def test_a_tall_crop_is_also_read_turned(monkeypatch: pytest.MonkeyPatch) -> None:
    crop = _ink_blocks(100, [(5, 15)], 20)  # 5 times taller than wide: vertical text?
    rec = Recognizer(Clip4Str(TINY), torch.device("cpu"))
    seen: list[tuple[int, int]] = []

    def read_pieces(pieces):
        seen.extend(p.shape[:2] for p in pieces)
        return [("12345", 0.9) if p.shape[1] > p.shape[0] else ("1", 0.2) for p in pieces]

    monkeypatch.setattr(rec, "_read_pieces", read_pieces)
    assert rec.read([crop]) == [("12345", 0.9)]
    assert seen == [(100, 20), (20, 100), (20, 100)]  # upright, then a quarter turn each way


def test_unsure_crops_are_read_again_with_a_wider_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    sure, tight = np.full((20, 60, 3), 255, np.uint8), np.full((20, 50, 3), 255, np.uint8)
    tight[:, :3] = 0  # ink at the edge: a widened crop repeats it outwards
    seen: list[tuple[int, int]] = []

    def reader(widened_conf: float, cfg: RecognizerConfig) -> Recognizer:
        rec = Recognizer(Clip4Str(TINY), torch.device("cpu"), cfg)

        def read_pieces(pieces):
            seen.extend(p.shape[:2] for p in pieces)
            readings = {(20, 60): ("sure", 0.95), (20, 50): ("tlght", 0.4), (24, 54): ("tight", widened_conf)}
            for p in pieces:
                if p.shape[:2] == (24, 54):
                    assert (p[:, :5] == 0).all() and (p[:, 5:] == 255).all()
            return [readings[p.shape[:2]] for p in pieces]

        monkeypatch.setattr(rec, "_read_pieces", read_pieces)
        return rec

    cfg = RecognizerConfig(reread_below=0.9, reread_margin=0.1)
    assert reader(0.8, cfg).read([sure, tight]) == [("sure", 0.95), ("tight", 0.8)]
    assert seen == [(20, 60), (20, 50), (24, 54)]  # only the unsure crop, 2 px wider on every side
    assert reader(0.3, cfg).read([sure, tight]) == [("sure", 0.95), ("tlght", 0.4)]  # the surer reading stays
    seen.clear()
    assert reader(0.8, RecognizerConfig(reread_below=None)).read([sure, tight])[1] == ("tlght", 0.4)
    assert seen == [(20, 60), (20, 50)]


def test_recognizer_keeps_input_order(tmp_path: Path) -> None:
    model = Clip4Str(TINY)
    rec = Recognizer(model, torch.device("cpu"))
    crops = [np.full((30, w, 3), 255, np.uint8) for w in (300, 40, 120)]
    out = rec.read(crops)
    assert len(out) == 3 and all(isinstance(t, str) and 0.0 <= c <= 1.0 for t, c in out)
    # Same crop alone or in a batch gives the same reading.
    assert rec.read([crops[1]])[0][0] == out[1][0]


def test_a_few_leftover_crops_join_the_last_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recognizer(Clip4Str(TINY), torch.device("cpu"), RecognizerConfig(batch_size=8, reread_below=None))
    sizes: list[int] = []
    read_batch = rec._read_batch
    monkeypatch.setattr(rec, "_read_batch", lambda batch: sizes.append(len(batch)) or read_batch(batch))
    crops = [np.full((30, 60 + 5 * i, 3), 255, np.uint8) for i in range(21)]
    out = rec.read(crops[:10])
    assert sizes == [10] and len(out) == 10  # 2 leftovers: one batch of 10, not 8 + 2
    sizes.clear()
    assert len(rec.read(crops[:18])) == 18 and sizes == [8, 10]
    sizes.clear()
    assert len(rec.read(crops)) == 21 and sizes == [8, 8, 5]  # 5 leftovers are a batch of their own


def test_named_configs_build() -> None:
    for name in ("clip4str-s", "clip4str-s-vit"):
        model = Clip4Str(CONFIGS[name])
        assert model.encode_image(torch.zeros(1, 3, *CONFIGS[name].image_size)).shape[-1] == CONFIGS[name].embed_dim


def test_output_branch_choice_and_its_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = Clip4Str(TINY).eval()
    x = images_to_tensor(render_words(["one", "two", "three", "four"]), TINY)
    with torch.inference_mode():
        torch.manual_seed(0)
        visual = model(x, branch="visual")
        cross = model(x, branch="cross")
        confident = model(x, branch="confident")
        # the device-side confidence is the product the tokenizer reports (chars up to and including EOS)
        _, char_probs = model.tokenizer.decode(cross.softmax(-1))
        expected = torch.stack([p.prod() for p in char_probs])
        assert torch.allclose(model.sequence_confidence(cross), expected, rtol=1e-4)
        conf_v, conf_c = model.sequence_confidence(visual), model.sequence_confidence(cross)
    for i in range(len(x)):
        assert torch.equal(confident[i], visual[i] if conf_v[i] > conf_c[i] else cross[i])
    with pytest.raises(ValueError, match="branch"):
        model(x, branch="both")
    with pytest.raises(ValueError, match="cross_decoding"):
        model(x, cross_decoding="beam")
    # the shipped file carries its branch; the predictor can override it
    model.cfg = dataclasses.replace(model.cfg, output_branch="visual")
    save_recognizer(model, tmp_path / "rec.safetensors")
    loaded = load_recognizer(tmp_path / "rec.safetensors")
    assert loaded.cfg.output_branch == "visual"
    from ocrapp.recognition.predictor import RecognizerConfig

    crops = list(render_words(["one", "two"]))
    with torch.inference_mode():
        want_visual = model.tokenizer.decode(loaded(x[:2], branch="visual").softmax(-1))[0]
        want_cross = model.tokenizer.decode(loaded(x[:2], branch="cross").softmax(-1))[0]
    assert [t for t, _ in Recognizer(loaded, torch.device("cpu")).read(crops)] == want_visual
    as_cross = Recognizer(loaded, torch.device("cpu"), RecognizerConfig(branch="cross"))
    assert [t for t, _ in as_cross.read(crops)] == want_cross


def test_confident_visual_readings_skip_the_cross_branch() -> None:
    torch.manual_seed(1)
    model = Clip4Str(TINY).eval()
    x = images_to_tensor(render_words(["one", "two", "three", "four", "five"]), TINY)
    with torch.inference_mode():
        visual = model(x, branch="visual")
        both = model(x, branch="confident")
        conf = model.sequence_confidence(visual)
        threshold = conf.median().item()
        partly = model(x, branch="confident", cross_skip_confidence=threshold)
        never = model(x, branch="confident", cross_skip_confidence=2.0)
        always = model(x, branch="confident", cross_skip_confidence=0.0)
    above = conf >= threshold
    assert 0 < int(above.sum()) < len(x)
    assert torch.equal(always, visual)
    assert torch.allclose(never, both, atol=1e-5)
    assert torch.equal(partly[above], visual[above])
    assert torch.allclose(partly[~above], both[~above], atol=1e-5)


def test_batchnorm_folding_keeps_the_outputs() -> None:
    torch.manual_seed(3)
    model = Clip4Str(TINY)
    model.train()
    x = images_to_tensor(render_words(["fold", "me", "now"]), TINY)
    with torch.no_grad():
        model.encode_image(x)  # moves the BatchNorm running statistics away from their initial values
    model.eval()
    with pytest.raises(RuntimeError, match="eval"):
        Clip4Str(TINY).fold_batchnorm()
    with torch.inference_mode():
        before = model.encode_image(x)
        model.fold_batchnorm()
        after = model.encode_image(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-4)


def test_incremental_decoding_matches_the_full_prefix_decoder() -> None:
    torch.manual_seed(3)
    model = Clip4Str(TINY).eval()
    memory = torch.randn(5, 16, TINY.embed_dim)
    with torch.no_grad():
        for p in model.visual_decoder.parameters():  # away from the init, so that every term matters
            p.add_(0.05 * torch.randn_like(p))
        fast = model._ar_decode(model.visual_decoder, memory, 10, stop_early=False)
        model.incremental_decoding = False
        full = model._ar_decode(model.visual_decoder, memory, 10, stop_early=False)
    assert torch.allclose(fast, full, atol=1e-5)
    assert fast.argmax(-1).unique().numel() > 1  # not a degenerate constant reading
    with pytest.raises(ValueError, match="eval mode"):
        IncrementalDecoding(model.visual_decoder.train(), memory)


def test_image_tower_runs_in_bf16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from ocrapp import accel

    torch.manual_seed(4)
    x = images_to_tensor(render_words(["low", "precision", "tower"]), TINY)
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: False)
    assert Recognizer(Clip4Str(TINY), torch.device("cpu")).model.image_autocast is None
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: True)
    rec = Recognizer(Clip4Str(TINY), torch.device("cpu"))
    assert rec.model.image_autocast == torch.bfloat16
    off = Recognizer(Clip4Str(TINY), torch.device("cpu"), RecognizerConfig(low_precision_image_tower=False))
    assert off.model.image_autocast is None
    model = rec.model
    with torch.inference_mode():
        low = model.encode_image(x)
        model.image_autocast = None
        full = model.encode_image(x)
    assert low.dtype == full.dtype == torch.float32  # the decoders see fp32 tokens either way
    assert not torch.equal(low, full)  # bf16 did run ...
    assert torch.allclose(low, full, atol=0.1 * float(full.abs().max()))  # ... and stays close
    training = Clip4Str(TINY).train()
    with torch.no_grad():
        plain = training.encode_image(x)
        training.image_autocast = torch.bfloat16
        assert torch.equal(training.encode_image(x), plain)  # training ignores it


def test_form_rules_are_erased_where_no_letter_meets_them() -> None:
    """A rule under a "word" of two strokes, one of which crosses it as a descender does: the rule goes where it
    runs alone and stays where the strokes meet it; the strokes stay whole. A dash in the middle of a crop and a
    crop without rules come back as they are."""
    from ocrapp.recognition.form_rules import erase_form_rules

    crop = np.full((40, 200, 3), 255, np.uint8)
    crop[30:33, :] = 0  # the rule
    crop[8:30, 60:64] = 0  # a letter standing on it
    crop[8:38, 120:124] = 0  # a descender through it
    erased = erase_form_rules(crop)
    assert (erased[30:33, :40] == 255).all() and (erased[30:33, 80:110] == 255).all()
    assert (erased[8:38, 120:124] == 0).all() and (erased[8:33, 60:64] == 0).all()
    dash = np.full((40, 200, 3), 255, np.uint8)
    dash[19:22, 10:190] = 0
    assert erase_form_rules(dash) is dash
    no_rule = crop.copy()
    no_rule[30:33] = 255
    assert erase_form_rules(no_rule) is no_rule
