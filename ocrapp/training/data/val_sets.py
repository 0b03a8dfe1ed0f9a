"""Build the recognizer's eleven held-out word folders, the same on every machine.

    python -m ocrapp.training.data.val_sets --root /work/cache/crops

Writes ``pdf_val`` (real words of the PDFs in the validation split, which training never cuts),
``held_out_fonts`` (words rendered only in the families that training never draws: Caladea, URW Bookman),
``synth_val``, ``receipts_val`` and ``scans_val`` (words of the three rendering profiles) and, since session 12,
``typewriter_val`` (the scans profile, every word typewritten; kept out of the "mean of 5" that compares
sessions) and, since session 15, ``neighbours_val`` (the general profile, every crop cutting into a neighbour's
letter or a rule at one or both ends, as annotated boxes and detectors cut words on a page; also outside the mean
of 5) and, since session 17, ``phrases_val`` (2-3 words of a line of the validation PDFs in one crop, read with
their spaces: what a detector's box of words set close together holds; outside the mean of 5; since session 18
cut under the stricter phrase rule of ``pdf_crops``, so session 17's phrases_val numbers do not compare) and,
since session 19, ``thermal_val`` (the thermal profile: till-receipt print; outside the mean of 5) and, since
session 23, ``printer_val`` (till-receipt print set only in the printer faces that training never draws,
``fonts.HELD_OUT_PRINTER_FAMILIES``; outside the mean of 5) and, since session 27, ``forms_val`` (the forms
profile, every word on, under or in a form's rules; outside the mean of 5). Fixed
seeds and counts, so that two sessions' numbers compare; a folder that already holds its words is left as it is.
Until session 9 the first three were built by hand with seeds not written down: numbers measured on these folders
(session 10 on) are not comparable with earlier ones.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from ocrapp.training.data.pdf_crops import build_pdf_crops
from ocrapp.training.data.shards import list_shards
from ocrapp.training.data.synth_words import PROFILES, RenderConfig, build_cache


@dataclass(frozen=True)
class SynthValSet:
    name: str
    count: int
    seed: int
    cfg: RenderConfig


# Each folder keeps the words and renders it had when first built: styles added later are switched off here (a
# share of 0 draws no random number, so the rest of the sequence is unchanged).
_FIRST_BUILT = {"typewriter_share": 0.0, "neighbour_share": 0.0}  # styles of sessions 12 and 13
SYNTH_VAL_SETS = (
    SynthValSet("synth_val", 2000, 90815, replace(PROFILES["general"], **_FIRST_BUILT)),
    SynthValSet("held_out_fonts", 2000, 90816, replace(PROFILES["general"], held_out_fonts=True, **_FIRST_BUILT)),
    SynthValSet("receipts_val", 2000, 90817, replace(PROFILES["receipts"], **_FIRST_BUILT)),
    SynthValSet("scans_val", 1000, 90818, replace(PROFILES["scans"], **_FIRST_BUILT)),
    SynthValSet("typewriter_val", 1000, 90819,
                replace(PROFILES["scans"], **{**_FIRST_BUILT, "typewriter_share": 1.0})),
    SynthValSet("neighbours_val", 1000, 90820,
                replace(PROFILES["general"], **{**_FIRST_BUILT, "neighbour_share": 1.0})),
    SynthValSet("thermal_val", 1000, 90821, replace(PROFILES["thermal"], neighbour_share=0.0)),
    SynthValSet("printer_val", 1000, 90822, replace(PROFILES["printer"], held_out_fonts=True, neighbour_share=0.0,
                                                    printer_face_share=1.0)),
    SynthValSet("forms_val", 1000, 90823, replace(PROFILES["forms"], neighbour_share=0.0, form_rule_share=1.0)),
)
PDF_VAL_COUNT, PDF_VAL_SEED = 2000, 7
PHRASES_VAL_COUNT, PHRASES_VAL_SEED = 1000, 17


def build_val_sets(root: Path, workers: int = 1) -> list[Path]:
    folders = []
    for spec in SYNTH_VAL_SETS:
        out = root / spec.name
        if not list_shards(out):
            build_cache(out, spec.count, workers, shard_size=500, seed=spec.seed, cfg=spec.cfg)
        folders.append(out)
    pdf_val = root / "pdf_val"
    # one page per document, 40 words a page: many documents (fonts, layouts) in few words
    build_pdf_crops(pdf_val, PDF_VAL_COUNT, seed=PDF_VAL_SEED, pages_per_pdf=1, words_per_page=40, shard_size=500,
                    split="val")
    phrases_val = root / "phrases_val"
    build_pdf_crops(phrases_val, PHRASES_VAL_COUNT, seed=PHRASES_VAL_SEED, pages_per_pdf=1, words_per_page=20,
                    shard_size=500, split="val", phrase_share=1.0)
    return folders + [pdf_val, phrases_val]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="folder that receives the held-out folders")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    for folder in build_val_sets(args.root, args.workers):
        print(folder)


if __name__ == "__main__":
    main()
