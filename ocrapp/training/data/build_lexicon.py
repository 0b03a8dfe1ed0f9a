"""Build the recognizer's word list (``models/lexicon.tsv.gz``) from the wordfreq package.

    python -m ocrapp.training.data.build_lexicon [--per-language 50000] [--out models/lexicon.tsv.gz]

The most frequent ``--per-language`` words of English, French, German, Spanish, Italian and Portuguese (the
languages of the synthetic words), letters only, each with its highest Zipf frequency over the six languages
(log10 of occurrences per billion words). Gzipped "word<TAB>zipf" lines, most frequent first; the gzip header
carries no time stamp, so the same wordfreq data gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from ocrapp.models_registry import DEFAULT_LEXICON, models_dir

LANGUAGES = ("en", "fr", "de", "es", "it", "pt")


def word_frequencies(per_language: int, languages: tuple[str, ...] = LANGUAGES) -> dict[str, float]:
    from wordfreq import top_n_list, zipf_frequency

    zipf: dict[str, float] = {}
    for lang in languages:
        for word in top_n_list(lang, per_language):
            if word.isalpha():
                zipf[word] = max(zipf.get(word, 0.0), zipf_frequency(word, lang))
    return zipf


def write_lexicon(zipf: dict[str, float], path: Path) -> None:
    lines = "".join(f"{w}\t{z:.2f}\n" for w, z in sorted(zipf.items(), key=lambda item: (-item[1], item[0])))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(lines.encode("utf-8"))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-language", type=int, default=50000)
    ap.add_argument("--out", type=Path, default=models_dir() / DEFAULT_LEXICON)
    args = ap.parse_args(argv)
    zipf = word_frequencies(args.per_language)
    write_lexicon(zipf, args.out)
    print(f"{len(zipf)} words -> {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
