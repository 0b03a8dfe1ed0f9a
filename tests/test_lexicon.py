"""The word list's corrections of unsure readings: candidates, case, the noisy-channel choice, the model's score
of a given text, the predictor's use of them, and the shipped word list."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ocrapp.models_registry import default_lexicon_path, default_recognizer_path
from ocrapp.recognition.clip4str.config import CONFIGS
from ocrapp.recognition.clip4str.model import Clip4Str
from ocrapp.recognition.lexicon import Lexicon, LexiconConfig, choose, in_listed_language, match_case, propose
from ocrapp.recognition.predictor import Recognizer, RecognizerConfig
from ocrapp.recognition.preprocess import images_to_tensor, resize_crop
from ocrapp.recognition.weights import load_recognizer
from ocrapp.training.data.synth_words import RenderConfig, WordRenderer

LEXICON = Lexicon({"amount": 5.1, "section": 5.0, "account": 4.9, "item": 4.6, "total": 5.3, "the": 7.7})


def test_candidates_are_one_edit_or_a_look_alike_swap_away() -> None:
    assert LEXICON.candidates("seciion") == ["section"]  # one letter changed
    assert LEXICON.candidates("aocount") == ["account"]
    assert LEXICON.candidates("arnount") == ["amount"]  # "rn" read for "m"
    assert LEXICON.candidates("arnoumt") == ["amount"]  # a swap plus one edit
    assert LEXICON.candidates("totalamount") == []  # too far from every word
    assert LEXICON.candidates("amount") == []  # the word itself is not a correction


def test_corrections_keep_punctuation_case_and_the_other_words() -> None:
    cfg = LexiconConfig()
    assert propose("Total Arnount:", LEXICON, cfg) == [("Total Amount:", 5.1)]
    assert propose("(SECIION)", LEXICON, cfg) == [("(SECTION)", 5.0)]
    assert propose("Iten", LEXICON, cfg) == [("Item", 4.6)]
    assert propose("amount", LEXICON, cfg) == []  # listed: left alone
    assert propose("Tne", LEXICON, LexiconConfig(min_length=4)) == []  # too short to correct
    assert propose("12.50 Arnount7", LEXICON, cfg) == []  # tokens with digits are codes, not words
    assert match_case("section", "SECIiON") == "SECTION" and match_case("item", "Iten") == "Item"
    assert match_case("amount", "arnount") == "amount"


def test_choice_weighs_the_image_against_the_word_frequency() -> None:
    cfg = LexiconConfig(prior_weight=1.0, unknown_zipf=1.0)
    candidates = [("Amount", 5.1), ("Account", 4.9)]
    # The image prefers the reading by 2 nats; "Amount" is 4.1 decades (9.4 nats) more frequent: it wins.
    assert choose(-1.0, candidates, [-3.0, -9.0], cfg) == "Amount"
    # The image argues hard against every candidate: the reading stays.
    assert choose(-1.0, candidates, [-12.0, -14.0], cfg) is None
    # Without a prior only the image counts.
    assert choose(-1.0, candidates, [-3.0, -9.0], LexiconConfig(prior_weight=0.0)) is None
    assert choose(-4.0, candidates, [-3.0, -9.0], LexiconConfig(prior_weight=0.0)) == "Amount"


@pytest.mark.skipif(not default_recognizer_path().exists(), reason="no embedded recognizer in models/ yet")
def test_text_log_prob_is_the_greedy_readings_confidence() -> None:
    """Teacher forcing the visual decoder with its own greedy reading gives that reading's probability (the product
    of its greedy character probabilities, EOS included); a misspelling of it scores lower."""
    model = load_recognizer(default_recognizer_path(), torch.device("cpu")).eval()
    renderer = WordRenderer(RenderConfig(degrade=False), seed=3)
    font = next(f for f in renderer.fonts if "LiberationSans-Regular" in f.path.name)
    words = ["Amount", "section", "INVOICE", "42.50"]
    batch = np.stack([resize_crop(renderer.render(w, font), *model.cfg.image_size) for w in words])
    images = images_to_tensor(batch, model.cfg, torch.device("cpu"))
    with torch.inference_mode():
        logits = model(images, refine_iters=0, branch="visual")
        texts, char_probs = model.tokenizer.decode(logits.float().softmax(-1))
        memory = model.encode_image(images)
        log_probs = model.text_log_prob(memory, texts)
        misspelt = model.text_log_prob(memory, [t[:-1] + ("x" if t[-1] != "x" else "y") for t in texts])
    assert texts == words
    for k in range(len(words)):
        assert log_probs[k].item() == pytest.approx(math.log(char_probs[k].prod().item()), abs=1e-3)
        assert misspelt[k] < log_probs[k] - 2.0


def test_unsure_readings_are_corrected_and_sure_ones_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    crops = [np.full((20, 60, 3), 255, np.uint8) for _ in range(3)]

    def reader(cfg: RecognizerConfig) -> Recognizer:
        rec = Recognizer(Clip4Str(CONFIGS["clip4str-tiny"]), torch.device("cpu"), cfg, LEXICON)
        readings = [("Arnount", 0.5), ("Arnount", 0.95), ("Zqxwv", 0.3)]
        monkeypatch.setattr(rec, "_read_once", lambda crops: list(readings[:len(crops)]))
        scores = {"Arnount": -1.0, "Amount": -3.0}
        monkeypatch.setattr(rec, "_text_log_probs",
                            lambda crops, texts: [[scores[t] for t in row] for row in texts])
        return rec

    cfg = RecognizerConfig(reread_below=None, lexicon=LexiconConfig(below=0.9))
    assert reader(cfg).read(crops) == [("Amount", 0.5), ("Arnount", 0.95), ("Zqxwv", 0.3)]
    assert reader(cfg).read(crops, correct=False)[0] == ("Arnount", 0.5)
    assert reader(RecognizerConfig(reread_below=None, lexicon=None)).read(crops)[0] == ("Arnount", 0.5)


def test_text_in_other_languages_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = LexiconConfig(min_listed_share=0.6, min_judged_words=20)
    listed = [("Total amount", 0.99)] * 12  # 24 confident words, all listed
    dutch = [("Totaal bedrag", 0.99)] * 12  # 24 confident words, none listed
    assert in_listed_language(listed, LEXICON, cfg) and not in_listed_language(dutch, LEXICON, cfg)
    assert in_listed_language(dutch[:5], LEXICON, cfg)  # 10 words: too few to judge
    assert in_listed_language(dutch + [("Arnount", 0.5)], LEXICON, LexiconConfig(min_listed_share=0.0))

    rec = Recognizer(Clip4Str(CONFIGS["clip4str-tiny"]), torch.device("cpu"), RecognizerConfig(reread_below=None),
                     LEXICON)
    monkeypatch.setattr(rec, "_text_log_probs", lambda crops, texts: [[-1.0, -3.0] for _ in texts])
    crops = [np.full((20, 60, 3), 255, np.uint8)] * 13
    for page, expected in ((listed, "Amount"), (dutch, "Arnount")):
        monkeypatch.setattr(rec, "_read_once", lambda crops, page=page: page + [("Arnount", 0.5)])
        assert rec.read(crops)[-1] == (expected, 0.5)


def test_the_shipped_word_list_loads_and_corrects_real_misreadings() -> None:
    lexicon = Lexicon.load(default_lexicon_path())
    assert len(lexicon) > 150_000
    for word in ("amount", "customer", "rechnung", "facture", "factura", "fattura", "através"):
        assert word in lexicon
    assert "amount" in lexicon.candidates("Arnount") and "customer" in lexicon.candidates("custoner")
    assert lexicon.zipf["the"] > lexicon.zipf["amount"] > lexicon.zipf["arbitrage"]


def test_the_builder_writes_a_list_that_loads_and_is_reproducible(tmp_path) -> None:
    from ocrapp.training.data.build_lexicon import word_frequencies, write_lexicon

    zipf = word_frequencies(2000, ("en", "fr"))
    assert "the" in zipf and "les" in zipf and all(w.isalpha() for w in zipf)
    write_lexicon(zipf, tmp_path / "a.tsv.gz")
    write_lexicon(zipf, tmp_path / "b.tsv.gz")
    assert (tmp_path / "a.tsv.gz").read_bytes() == (tmp_path / "b.tsv.gz").read_bytes()  # no time stamp inside
    loaded = Lexicon.load(tmp_path / "a.tsv.gz")
    assert loaded.zipf == {w: round(z, 2) for w, z in zipf.items()}
