"""What correcting unsure readings with the word list buys (``RecognizerConfig.lexicon``, ``LexiconConfig``).

    python benchmarks/lexicon.py --on /work/cache/crops/{pdf_val,held_out_fonts,synth_val,receipts_val,scans_val} \
        [--dev funsd-train-word-crops ...] [--limit 1000] [--below 0.8 0.9] [--prior-weights 0.5 1]
        [--min-lengths 3 4] [--rare-words N] [--foreign-words N] [--json F]

Every crop is read once as the predictor reads it without the word list (the re-read included); the corrections
of every reading below the largest ``--below`` are scored once, and each (below, prior weight) setting then
applies the predictor's rule (``lexicon.apply_corrections``): exact accuracy per folder, the mean over the ``--on``
folders (held-out shard folders, ``python -m ocrapp.training.data.val_sets``: choose settings on these), and the same on
the ``--dev`` crop sets (reported, not chosen on), with the number of readings changed. ``--rare-words N``
and ``--foreign-words N`` add the worst cases: N real words the list lacks (ranks 60k-150k of English, French and
German; or the 30k most frequent words of Dutch, Swedish, Danish, Finnish, Indonesian and Catalan), rendered in
the held-out font families with the general degradations; the list can only turn their readings into others.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

import numpy as np
import torch

from ocrapp.bench.datasets import DEV_CROP_SETS, iter_dev_crops
from ocrapp.recognition.lexicon import Lexicon, LexiconConfig, apply_corrections
from ocrapp.recognition.predictor import Recognizer
from ocrapp.training.recognizer.train import load_val_sets

# Languages in Latin-1 letters that the word list does not cover (its own: en, fr, de, es, it, pt).
FOREIGN_LANGUAGES = ("nl", "sv", "da", "fi", "id", "ca")


def unlisted_words(count: int, lexicon: Lexicon, languages: tuple[str, ...], ranks: tuple[int, int],
                   seed: int = 14) -> tuple[list[np.ndarray], list[str]]:
    """``count`` words of ``languages`` (frequency ranks ``ranks``) that the list lacks, rendered in the held-out
    font families with the general degradations."""
    from ocrapp.recognition.charset import DOCUMENT_CHARSET
    from ocrapp.training.data.corpus import word_list
    from ocrapp.training.data.fonts import discover_fonts
    from ocrapp.training.data.synth_words import RenderConfig, WordRenderer

    rng = random.Random(seed)
    pool = sorted({w for lang in languages for w in word_list(lang, ranks[1])[ranks[0]:]
                   if w.isalpha() and 3 <= len(w) <= 14 and w.lower() not in lexicon
                   and all(c in DOCUMENT_CHARSET for c in w)})
    words = [w.capitalize() if i % 3 == 0 else w for i, w in enumerate(rng.sample(pool, count))]
    fonts = discover_fonts(held_out=True)
    renderer = WordRenderer(RenderConfig(), seed=seed)
    return [renderer.render(w, fonts[i % len(fonts)]) for i, w in enumerate(words)], words


def folders(on: list[Path], dev: list[str], limit: int, rare: int, foreign: int, lexicon: Lexicon):
    for name, (images, labels) in load_val_sets(on, limit).items():
        yield "held-out", name, list(images), labels
    if rare:
        yield "unlisted", "rare_words", *unlisted_words(rare, lexicon, ("en", "fr", "de"), (60000, 150000))
    if foreign:
        yield "unlisted", "foreign_words", *unlisted_words(foreign, lexicon, FOREIGN_LANGUAGES, (0, 30000))
    for name in dev:
        crops = list(iter_dev_crops(name))
        yield "dev", name, [c.image for c in crops], [c.text for c in crops]


def settings_table(recognizer: Recognizer, crops: list[np.ndarray], labels: list[str], below: list[float],
                   weights: list[float], min_lengths: list[int]) -> dict[str, list[float]]:
    """{"as read" | "below B weight W [min length L]": [exact accuracy, readings changed]}."""
    readings = recognizer.read(crops, correct=False)
    row = {"as read": [round(float(np.mean([r[0] == t for r, t in zip(readings, labels)])), 4), 0]}
    for length in min_lengths:
        scored = recognizer.score_corrections(crops, readings, LexiconConfig(below=max(below), min_length=length))
        for b, w in itertools.product(below, weights):
            cfg = LexiconConfig(below=b, prior_weight=w, min_length=length)
            texts = [text for text, _ in apply_corrections(readings, scored, cfg)]
            changed = sum(t != r[0] for t, r in zip(texts, readings))
            key = f"below {b} weight {w}" + (f" min length {length}" if len(min_lengths) > 1 else "")
            row[key] = [round(float(np.mean([t == g for t, g in zip(texts, labels)])), 4), changed]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--on", type=Path, nargs="*", default=[], metavar="SHARD_DIR")
    ap.add_argument("--dev", nargs="*", default=[], choices=DEV_CROP_SETS)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--rare-words", type=int, default=0, metavar="N")
    ap.add_argument("--foreign-words", type=int, default=0, metavar="N")
    ap.add_argument("--below", type=float, nargs="+", default=[0.8, 0.9, 0.95])
    ap.add_argument("--prior-weights", type=float, nargs="+", default=[0.5, 1.0, 1.5])
    ap.add_argument("--min-lengths", type=int, nargs="+", default=[LexiconConfig.min_length])
    ap.add_argument("--weights", type=Path, default=None, help="recognizer weights (default: the embedded model)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = Recognizer.from_pretrained(args.weights, "cpu")
    tables: dict[str, dict[str, dict[str, list[float]]]] = {"held-out": {}, "unlisted": {}, "dev": {}}
    for kind, name, crops, labels in folders(args.on, args.dev, args.limit, args.rare_words, args.foreign_words,
                                             recognizer.lexicon):
        tables[kind][name] = settings_table(recognizer, crops, labels, args.below, args.prior_weights,
                                            args.min_lengths)
        print(kind, name, json.dumps(tables[kind][name]), flush=True)
    means = {}
    for kind, table in tables.items():
        if table:
            keys = next(iter(table.values())).keys()
            means[kind] = {k: round(float(np.mean([row[k][0] for row in table.values()])), 4) for k in keys}
            print(f"mean exact, {kind}", json.dumps(means[kind]))
    if args.json:
        args.json.write_text(json.dumps({"folders": tables, "mean_exact": means}, indent=1))


if __name__ == "__main__":
    main()
