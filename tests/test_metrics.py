import math

import pytest

from asr.metrics import (ErrorCounts, cer, char_errors, paired_bootstrap, score_heads, token_errors, wer,
                         word_errors)


def test_word_errors_counts():
    c = word_errors(["a b c d"], ["a x c d e"])
    assert (c.substitutions, c.deletions, c.insertions, c.reference_length) == (1, 0, 1, 4)
    assert c.rate == 0.5
    assert wer(["a b", "c"], ["a b", ""]) == pytest.approx(1 / 3)


def test_corpus_rate_is_pooled_not_averaged():
    # 1 error in 1 word and 0 in 9 words: pooled 1/10, not mean(1, 0) = 0.5
    assert wer(["a", "b c d e f g h i j"], ["x", "b c d e f g h i j"]) == pytest.approx(0.1)


def test_cer_and_tokens():
    assert cer(["abc"], ["abd"]) == pytest.approx(1 / 3)
    assert char_errors(["ab"], ["ab"]).errors == 0
    assert token_errors([["K", "AE", "T"]], [["K", "AH", "T", "S"]]).rate == pytest.approx(2 / 3)


def test_empty_reference():
    assert word_errors([""], ["a b"]) == ErrorCounts(insertions=2)
    assert ErrorCounts().rate == 0.0 and math.isinf(ErrorCounts(insertions=1).rate)


def test_score_heads_skips_missing_pronunciations():
    s = score_heads(["a b", "c"], ["a b", "c"], ["a x", "c"], [["AH", "B"], None], [["AH", "B"], ["S"]])
    assert s["wer_char"] == 0 and s["cer"] == 0 and s["wer_phone"] == pytest.approx(1 / 3)
    assert s["per"] == 0 and s["per_utterances"] == 1


def test_length_mismatch():
    with pytest.raises(ValueError):
        wer(["a"], [])


def test_roc_auc_exact_cases():
    from asr.metrics import roc_auc

    # pairs (right, wrong): (0.35 > 0.1), (0.35 < 0.4), (0.8 > both): 3 of 4
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5  # a tie counts half
    assert roc_auc([0.9, 0.1], [True, False]) == 1.0 and roc_auc([0.1, 0.9], [True, False]) == 0.0
    assert math.isnan(roc_auc([0.3, 0.4], [True, True]))


def test_expected_calibration_error_by_hand():
    from asr.metrics import calibration_bins, expected_calibration_error

    conf, right = [0.95, 0.95, 0.15, 0.15], [True, False, False, False]
    # bin [0.9, 1]: confidence 0.95, half right -> 0.45; bin [0.1, 0.2): 0.15, none right -> 0.15
    assert expected_calibration_error(conf, right) == pytest.approx((2 * 0.45 + 2 * 0.15) / 4)
    bins = calibration_bins(conf, right)
    assert bins[9] == (2, 0.95, 0.5) and bins[1] == (2, 0.15, 0.0) and bins[5][0] == 0
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0.0


def test_words_right_follows_the_wer_alignment():
    from asr.metrics import words_right

    assert words_right("a b c", ["a", "x", "c", "d"]) == [True, False, True, False]
    assert words_right("a b c", []) == [] and words_right("", ["a"]) == [False]


def test_paired_bootstrap_by_hand():
    # utterance 0: a makes 2 errors of 4 words, b none; utterance 1: both perfect. A resample of
    # two utterances leaves b no better only when it draws utterance 1 twice: 1 time in 4.
    pb = paired_bootstrap([2, 0], [0, 0], [4, 4], samples=20_000)
    assert pb.difference == -0.25 and pb.utterances == 2 and pb.samples == 20_000
    assert pb.b_better == pytest.approx(0.75, abs=0.01)
    assert pb.low == -0.5 and pb.high == 0.0  # the extreme resamples: utterance 0 twice, utterance 1 twice
    assert paired_bootstrap([2, 0], [0, 0], [4, 4], samples=20_000) == pb  # seeded: same figures again


def test_paired_bootstrap_interval_is_the_central_95_percent():
    # Only utterance 0 differs (3 errors of 3 words against none). A resample of three holds it
    # k times, k ~ Binomial(3, 1/3), with difference -k/3: all three times (-1.0) in 1/27 = 3.7 %
    # of the resamples, more than the 2.5 % tail, so the interval reaches -1.0 (a 10 % tail
    # would stop at -2/3); no draw of it (0.0) in 8/27.
    pb = paired_bootstrap([3, 0, 0], [0, 0, 0], [3, 3, 3], samples=20_000)
    assert pb.low == -1.0 and pb.high == 0.0 and pb.difference == pytest.approx(-1 / 3)
    assert pb.b_better == pytest.approx(19 / 27, abs=0.01)


def test_paired_bootstrap_same_and_always_better_systems():
    same = paired_bootstrap([3, 1, 0, 2], [3, 1, 0, 2], [10, 5, 4, 8])
    assert (same.difference, same.low, same.high, same.b_better) == (0.0, 0.0, 0.0, 0.0)
    better = paired_bootstrap([3, 1, 1, 2], [2, 0, 0, 1], [10, 5, 4, 8])
    assert better.b_better == 1.0 and better.high < 0 and better.difference == pytest.approx(-4 / 27)


def test_paired_bootstrap_needs_the_same_utterances():
    with pytest.raises(ValueError, match="same utterances"):
        paired_bootstrap([1, 2], [1], [3, 3])
    with pytest.raises(ValueError, match="no words"):
        paired_bootstrap([0], [0], [0])
