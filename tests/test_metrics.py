import math

import pytest

from asr.metrics import ErrorCounts, cer, char_errors, score_heads, token_errors, wer, word_errors


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
