import pytest

from ocrapp.bench import metrics as m


def test_normalize_nfkc_and_whitespace():
    assert m.normalize("  ﬁne\u00a0 day ") == "fine day"
    assert m.normalize("Ｈｅｌｌｏ") == "Hello"


def test_levenshtein():
    assert m.levenshtein("", "") == 0
    assert m.levenshtein("abc", "") == 3
    assert m.levenshtein("kitten", "sitting") == 3
    assert m.levenshtein("flaw", "lawn") == 2


def test_one_minus_ned():
    assert m.one_minus_ned("", "") == 1.0
    assert m.one_minus_ned("abc", "abc") == 1.0
    assert m.one_minus_ned("abcd", "abce") == pytest.approx(0.75)
    assert m.one_minus_ned("", "abc") == 0.0
    assert m.one_minus_ned("kitten", "sitting") == pytest.approx(1 - 3 / 7)


def test_exact_and_ci_alnum():
    assert m.exact_match("Hello,", "Hello,")
    assert not m.exact_match("hello,", "Hello,")
    assert m.ci_alnum_match("HELLO!", "hello")
    assert m.ci_alnum_match("Total: 12.50", "total 1250")
    assert not m.ci_alnum_match("12.50", "12.5")
    assert m.ci_alnum("ﬁ-Ｘ") == "fix"
    assert m.ci_exact_match("TOTAL AMOUNT", "Total Amount")
    assert not m.ci_exact_match("TOTAL: AMOUNT", "Total Amount")


def test_crop_scores():
    s = m.crop_scores(["Hello", "WORLD", "fo0"], ["Hello", "world", "foo"])
    assert s.n == 3
    assert s.exact == pytest.approx(1 / 3)
    assert s.ci_exact == pytest.approx(2 / 3)
    assert s.ci_alnum == pytest.approx(2 / 3)
    assert s.one_minus_ned == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert m.crop_scores([], []).n == 0
    with pytest.raises(ValueError):
        m.crop_scores(["a"], [])


def test_relaxed_token():
    assert m.relaxed_token("(Hello,") == "hello"
    assert m.relaxed_token("U.S.") == "u.s"
    assert m.relaxed_token("--") == ""
    assert m.relaxed_token("€12") == "12"


def test_bag_of_words_f1():
    strict = m.bag_of_words_f1("The cat, the dog.", "the cat the dog")
    assert (strict.tp, strict.n_pred, strict.n_gt) == (1, 4, 4)  # only "the" (case and punctuation count)
    assert strict.f1 == pytest.approx(0.25)
    relaxed = m.bag_of_words_f1("The cat, the dog.", "the cat the dog", relaxed=True)
    assert relaxed.f1 == pytest.approx(1.0)
    # multiset: a repeated word counts once per occurrence
    rep = m.bag_of_words_f1(["a", "a", "a"], ["a"])
    assert (rep.tp, rep.precision, rep.recall) == (1, pytest.approx(1 / 3), 1.0)
    assert m.bag_of_words_f1("", "").f1 == 1.0  # nothing to read, nothing read
    assert m.bag_of_words_f1("", "word").recall == 0.0


def test_box_iou():
    assert m.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert m.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert m.box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert m.box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_match_boxes_one_to_one_greedy():
    gt = [(0, 0, 10, 10), (12, 0, 22, 10)]
    pred = [(0, 0, 10, 10), (1, 0, 11, 10), (12, 0, 21, 10), (100, 100, 110, 110)]
    matches = m.match_boxes(pred, gt)
    assert sorted((i, j) for i, j, _ in matches) == [(0, 0), (2, 1)]


def test_end_to_end():
    gt = [("Hello", (0, 0, 50, 10)), ("world!", (60, 0, 110, 10)), ("miss", (0, 20, 40, 30))]
    pred = [("Hello", (1, 0, 50, 10)), ("World", (60, 0, 108, 10)), ("extra", (200, 200, 220, 210))]
    strict = m.end_to_end(pred, gt)
    assert (strict.tp, strict.n_pred, strict.n_gt) == (1, 3, 3)
    relaxed = m.end_to_end(pred, gt, relaxed=True)
    assert relaxed.tp == 2
    assert relaxed.recall == pytest.approx(2 / 3)
    assert relaxed.precision == pytest.approx(2 / 3)
    # the right text at the wrong place is not a hit
    assert m.end_to_end([("miss", (300, 300, 340, 310))], gt).tp == 0
    det = m.detection_prf([b for _, b in pred], [b for _, b in gt])
    assert det.tp == 2


def test_recognition_table_has_a_row_per_result():
    from ocrapp.bench.recognition import Result, markdown_table

    table = markdown_table([Result("sroie", "ocrapp", 2, 0.5, 1.0, 1.0, 0.9, 100.0),
                            Result("sroie", "tesseract", skipped="not installed")])
    header, rule, ours, skipped = table.splitlines()[:4]
    assert header.count("|") == rule.count("|") == ours.count("|") == skipped.count("|")
    assert "| 0.500 | 1.000 | 1.000 | 0.900 | 100.0 |" in ours
    assert "skipped tesseract: not installed" in table


def test_read_flips_lists_the_crops_each_run_alone_reads_right(tmp_path, capsys):
    import json
    from dataclasses import asdict

    from ocrapp.bench.read_flips import SetFlips, main, read_flips
    from ocrapp.bench.recognition import Result

    truths = ["cat", "dog", "emu", "fox"]

    def run(reads: list[str]) -> list[dict]:
        return [asdict(Result("funsd", "ocrapp", 4, reads=[[t, r] for t, r in zip(truths, reads)]))]

    before, after = run(["cat", "d0g", "emu", "f"]), run(["cat", "dog", "ernu", "f0"])
    (flips,) = read_flips(before, after)
    assert flips.gained == [("dog", "d0g", "dog")]
    assert flips.lost == [("emu", "emu", "ernu")]
    other_crops = [asdict(Result("funsd", "ocrapp", 4, reads=[[t, t] for t in reversed(truths)]))]
    with pytest.raises(ValueError, match="same crops"):
        read_flips(before, other_crops)
    paths = []
    for name, results in (("a.json", before), ("b.json", after)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(results), encoding="utf-8")
    main([str(p) for p in paths])
    assert "funsd: 4 crops, gained 1, lost 1 (net +0, McNemar p 1.00)" in capsys.readouterr().out
    lopsided = SetFlips("funsd", 300, gained=[("a", "b", "a")] * 3, lost=[("a", "a", "b")] * 10)
    assert lopsided.mcnemar_p == pytest.approx(2 * (1 + 13 + 78 + 286) / 2**13)  # 3 of 13 flips: p 0.09
    assert SetFlips("funsd", 300, lost=[("a", "a", "b")] * 6).mcnemar_p == pytest.approx(2 / 64)
