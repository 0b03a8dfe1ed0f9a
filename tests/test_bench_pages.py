"""The page benchmark's scoring, Tesseract TSV parser, writers and README rewriter (no model weights, no peers)."""

import json

import pytest

from ocrapp.bench import metrics as m
from ocrapp.bench import pages as bp

# A tiny hand-made page: three GT words on one line, one on the next.
GT = [("Hello", (10, 10, 60, 30)), ("world,", (70, 10, 130, 30)), ("again", (140, 10, 190, 30)),
      ("42", (10, 50, 30, 70))]


def test_perfect_page_scores_one():
    s = bp.score_page(GT, GT)
    for key in bp.SCORES:
        assert (s[key].precision, s[key].recall, s[key].f1) == (1.0, 1.0, 1.0), key


def test_empty_prediction_scores_zero():
    s = bp.score_page([], GT)
    assert s["bow_strict"].recall == 0.0 and s["e2e_strict"].recall == 0.0
    assert s["e2e_strict"].n_gt == 4 and s["e2e_strict"].n_pred == 0


def test_wrong_text_and_wrong_place():
    pred = [("hello", (10, 10, 60, 30)),      # right box, wrong case: relaxed only
            ("world", (70, 10, 130, 30)),     # right box, comma missing: relaxed only
            ("again", (300, 200, 350, 220)),  # right text, wrong place: bag-of-words only
            ("42", (10, 50, 30, 70))]         # right
    s = bp.score_page(pred, GT)
    assert s["bow_strict"].tp == 2           # "again", "42"
    assert s["bow_relaxed"].tp == 4
    assert s["e2e_strict"].tp == 1           # "42"
    assert s["e2e_relaxed"].tp == 3          # + hello, world
    assert s["e2e_relaxed"].recall == pytest.approx(3 / 4)
    assert s["e2e_relaxed"].precision == pytest.approx(3 / 4)


def test_line_prediction_split_by_character_share():
    # One predicted line box over the first GT line: "Hello world, again" is 18 characters over x 10..190 (10 px
    # each); "Hello" -> 10..60, "world," -> 70..130, "again" -> 140..190: exactly the GT boxes.
    assert m.split_by_char_share("Hello  world, again", (10, 10, 190, 30)) == [
        ("Hello", (10, 10, 60, 30)), ("world,", (70, 10, 130, 30)), ("again", (140, 10, 190, 30))]
    s = bp.score_page([("Hello world, again", (10, 10, 190, 30))], GT)
    assert s["e2e_strict"].tp == 3 and s["e2e_strict"].n_pred == 3
    assert s["e2e_strict"].recall == pytest.approx(3 / 4) and s["e2e_strict"].precision == 1.0
    assert m.split_by_char_share("   ", (0, 0, 1, 1)) == []


def test_duplicates_are_not_double_counted():
    pred = GT + [("Hello", (10, 10, 60, 30))]
    s = bp.score_page(pred, GT)
    assert s["e2e_strict"].tp == 4 and s["e2e_strict"].n_pred == 5
    assert s["bow_strict"].tp == 4 and s["bow_strict"].precision == pytest.approx(4 / 5)


def test_ignore_regions_drop_predictions():
    pred = GT + [("smudge", (400, 400, 440, 420))]
    assert bp.score_page(pred, GT)["e2e_strict"].precision == pytest.approx(4 / 5)
    s = bp.score_page(pred, GT, ignore=[(390, 390, 450, 430)])
    assert s["e2e_strict"].precision == 1.0 and s["bow_strict"].precision == 1.0


def test_spaceless_units_regroup_predictions():
    gt = [("THANKYOU!", (0, 0, 90, 10)), ("$4.00", (0, 20, 50, 30))]
    pred = [("YOU!", (40, 0, 90, 10)), ("THANK", (0, 0, 40, 10)), ("$4.00", (0, 20, 50, 30)), ("x", (200, 200, 210, 210))]
    s = bp.score_page(pred, gt, spaceless_units=True)
    assert s["e2e_strict"].tp == 2 and s["e2e_strict"].n_pred == 3
    assert s["bow_strict"].tp == 2
    # without regrouping, the split words cannot match the spaceless field
    assert bp.score_page(pred, gt)["e2e_strict"].tp == 1


def test_pool_is_micro_average():
    a, b = m.PRF(1, 1, 1, 1, 1, 1), m.PRF(0, 0, 0, 0, 3, 3)
    p = m.pool([a, b])
    assert (p.tp, p.n_pred, p.n_gt) == (1, 4, 4) and p.f1 == pytest.approx(0.25)


TSV = (
    "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
    "1\t1\t0\t0\t0\t0\t0\t0\t800\t600\t-1\t\n"
    "2\t1\t1\t0\t0\t0\t36\t92\t582\t68\t-1\t\n"
    "4\t1\t1\t1\t1\t0\t36\t92\t582\t30\t-1\t\n"
    "5\t1\t1\t1\t1\t1\t36\t92\t90\t30\t95.4\tInvoice\n"
    "5\t1\t1\t1\t1\t2\t140\t94\t60\t28\t91.0\tNo.\n"
    "5\t1\t1\t1\t1\t3\t210\t94\t10\t28\t12.0\t \n"
    "5\t1\t1\t1\t1\t4\t230\t94\t40\t28\t88.5\t2024-01\n"
    "5\t1\t1\t1\t1\t5\t280\t94\t40\t28\t88.5"  # a row cut short: no text column
)


def test_parse_tesseract_tsv():
    words = bp.parse_tesseract_tsv(TSV)
    assert words == [("Invoice", (36.0, 92.0, 126.0, 122.0)), ("No.", (140.0, 94.0, 200.0, 122.0)),
                     ("2024-01", (230.0, 94.0, 270.0, 122.0))]
    assert bp.parse_tesseract_tsv("") == []
    with pytest.raises(ValueError):
        bp.parse_tesseract_tsv("not\ta\ttsv\n1\t2\t3")


def _summary():
    pages = [bp.PageGT("setA", "setA/p0", "a.npy", (200, 100), GT),
             bp.PageGT("setB", "setB/p0", "b.npy", (200, 100), [("x", (0, 0, 10, 10))])]

    def rec(seconds, rss, words):
        return {"available": True, "load_s": 0.5, "harness_rss_mb": 50.0, "peak_rss_mb": rss,
                "pages": [{"name": "setA/p0", "seconds": seconds, "cpu_seconds": seconds / 2, "error": None,
                           "words": words},
                          {"name": "setB/p0", "seconds": seconds * 3, "cpu_seconds": seconds, "error": "RuntimeError: boom",
                           "words": []}]}

    records = {"ocrapp": rec(2.0, 800.0, [[t, *b] for t, b in GT]),
               "tesseract": rec(1.0, 100.0, [["Hello", 10, 10, 60, 30]]),
               "easyocr": {"available": False, "reason": "no offline weights", "pages": []}}
    return bp.summarize(pages, records, ["ocrapp", "tesseract", "easyocr"])


def test_summary_table_and_json():
    s = _summary()
    rows = {(r["set"], r["system"]): r for r in s["results"]}
    assert rows[("setA", "ocrapp")]["e2e_strict"]["recall"] == 1.0
    assert rows[("setA", "tesseract")]["e2e_strict"]["recall"] == pytest.approx(0.25)
    assert rows[("setB", "ocrapp")]["e2e_strict"]["recall"] == 0.0
    assert rows[("setA", "easyocr")]["skipped"] == "no offline weights"
    cost = s["systems"]
    assert cost["ocrapp"]["s_per_page_median"] == pytest.approx(4.0)  # median of 2 s and 6 s
    assert cost["ocrapp"]["s_per_page_median_vs_tesseract"] == pytest.approx(2.0)
    assert cost["ocrapp"]["peak_rss_mb_vs_tesseract"] == pytest.approx(8.0)
    assert cost["ocrapp"]["errors"] == ["setB/p0: RuntimeError: boom"]
    table = bp.markdown_tables(s)
    assert "| setA | ocrapp | 1 | 4 | 1.000 | 1.000 | 1.000 / 1.000 | 1.000 / 1.000 | 2.00 |" in table
    assert "| setA | easyocr | – | – | skipped |" in table
    assert "| ocrapp | 2 | 4.00 (2.00×) | 5.60 (2.00×) | 1.50 (2.00×) | 800 (8.00×) | 0.5 |" in table
    assert "| tesseract | 2 | 2.00 (1.00×) | 2.80 (1.00×) | 0.75 (1.00×) | 100 (1.00×) | 0.5 |" in table
    assert "- skipped easyocr: no offline weights" in table
    json.loads(json.dumps(s))  # plain JSON all the way down
    meta = {"date": "2026-01-01 00:00 UTC", "command": "python -m ocrapp.bench.pages --limit 2", "threads": 1,
            "niceness": 0, "machine": {"cpu": "Test CPU", "cores": 2, "usable_cores": 2,
                                       "load_avg_at_start": [0.1, 0.2, 0.3]}}
    report = bp.report_markdown(s, meta)
    assert "Test CPU (2 cores" in report and "python -m ocrapp.bench.pages --limit 2" in report


def test_rows_of_systems_not_rerun_are_kept_from_an_earlier_run_of_the_same_pages():
    datasets = {"setA": {"pages": ["setA/p0"]}, "setB": {"pages": ["setB/p0"]}}
    previous = {**_summary(), "datasets": datasets}
    pages = [bp.PageGT("setA", "setA/p0", "a.npy", (200, 100), GT),
             bp.PageGT("setB", "setB/p0", "b.npy", (200, 100), [("x", (0, 0, 10, 10))])]
    faster = {"available": True, "load_s": 0.5, "harness_rss_mb": 50.0, "peak_rss_mb": 400.0,
              "pages": [{"name": n, "seconds": 1.0, "cpu_seconds": 1.0, "error": None, "words": []}
                        for n in ("setA/p0", "setB/p0")]}
    now = {**bp.summarize(pages, {"ocrapp": faster}, ["ocrapp"]), "datasets": datasets}
    merged = bp.keep_from_previous(now, previous, ["ocrapp"])
    rows = {(r["set"], r["system"]): r for r in merged["results"]}
    assert rows[("setA", "tesseract")] == next(r for r in previous["results"]
                                               if (r["set"], r["system"]) == ("setA", "tesseract"))
    assert rows[("setA", "ocrapp")]["e2e_strict"]["recall"] == 0.0  # the new run's row, not the old 1.0
    assert set(merged["systems"]) == {"ocrapp", "tesseract", "easyocr"}
    assert merged["systems"]["ocrapp"]["s_per_page_median_vs_tesseract"] == pytest.approx(0.5)  # 1 s vs 2 s
    assert sum(r["system"] == "ocrapp" for r in merged["pages"]) == 2
    other_pages = {**now, "datasets": {"setA": {"pages": ["setA/p9"]}, "setB": {"pages": ["setB/p0"]}}}
    with pytest.raises(ValueError, match="other pages"):
        bp.keep_from_previous(other_pages, previous, ["ocrapp"])


README = "# x\n\n## Benchmark\n\nintro\n\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n\n## Next\n"


def test_readme_section_rewriter():
    out = bp.rewrite_readme_section(README, "| new |\n")
    assert out == "# x\n\n## Benchmark\n\nintro\n\n<!-- bench:start -->\n| new |\n<!-- bench:end -->\n\n## Next\n"
    assert bp.rewrite_readme_section(out, "| newer |").count("| new") == 1  # idempotent shape
    for bad in ("# no markers\n", README + "<!-- bench:start -->\n",
                "<!-- bench:end -->\n<!-- bench:start -->\n"):
        with pytest.raises(ValueError):
            bp.rewrite_readme_section(bad, "x")


def test_repo_readme_has_one_section():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    bp.rewrite_readme_section(text, "x")  # raises if the markers are missing or doubled


def test_cli_help_and_unknown_system(capsys):
    with pytest.raises(SystemExit) as exc:
        bp.main(["--help"])
    assert exc.value.code == 0
    assert "Tesseract" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        bp.main(["--systems", "nope"])
    assert exc.value.code == 2


def test_worker_skips_a_missing_system(tmp_path, monkeypatch):
    """A worker whose system cannot load writes a skipped record (ocrapp without weights here)."""
    import numpy as np

    np.save(tmp_path / "p.npy", np.full((20, 20, 3), 255, np.uint8))
    (tmp_path / "index.json").write_text(json.dumps([{"name": "s/p", "file": "p.npy"}]))

    class Broken(bp.PageSystem):
        name = "ocrapp"

        def setup(self):
            self.reason = "weights not found"
            return False

    monkeypatch.setattr(bp, "make_system", lambda *a, **k: Broken())
    bp.run_worker("ocrapp", tmp_path, tmp_path / "out.json", 1, None, None)
    rec = json.loads((tmp_path / "out.json").read_text())
    assert rec["available"] is False and rec["reason"] == "weights not found" and rec["pages"] == []


def test_spread():
    assert bp.spread(5, None) == [0, 1, 2, 3, 4]
    assert bp.spread(3, 10) == [0, 1, 2]
    assert bp.spread(10, 1) == [5]
    assert bp.spread(10, 2) == [2, 7]
    assert bp.spread(29, 3) == [4, 14, 24]
    assert bp.spread(4, 0) == []
