import math

import torch

from asr.decode import Token, Word, best_path, char_words, decode_outputs, group_words, phone_words
from asr.text import CHAR_VOCAB, PHONE_VOCAB, Lexicon

C = {t: i for i, t in enumerate(CHAR_VOCAB.tokens)}
P = {t: i for i, t in enumerate(PHONE_VOCAB.tokens)}


def one_hot(ids, vocab_size):
    """Log-probabilities putting (almost) all mass on ``ids[t]`` at frame t."""
    lp = torch.full((len(ids), vocab_size), math.log(1e-4))
    lp[torch.arange(len(ids)), torch.tensor(ids)] = math.log(1 - 1e-4 * (vocab_size - 1))
    return lp


def test_best_path_merges_repeats_and_drops_blanks():
    b = 0
    lp = one_hot([C["a"], C["a"], b, C["a"], C["b"], C["b"], b], len(CHAR_VOCAB))
    spans = lambda toks: [(t.id, t.start, t.end) for t in toks]  # noqa: E731
    assert spans(best_path(lp)) == [(C["a"], 0, 2), (C["a"], 3, 4), (C["b"], 4, 6)]
    assert spans(best_path(lp, length=2)) == [(C["a"], 0, 2)]
    assert best_path(one_hot([b, b], len(CHAR_VOCAB))) == []


def test_group_words_splits_at_boundaries():
    toks = [Token(1, 0, 1), Token(5, 1, 2), Token(1, 2, 3), Token(1, 3, 4), Token(6, 4, 5), Token(1, 5, 6)]
    assert group_words(toks) == [[Token(5, 1, 2)], [Token(6, 4, 5)]]


def test_char_words_with_times():
    b, sep = 0, C["|"]
    ids = [b, C["h"], C["i"], b, sep, b, C["y"], C["o"], C["u"], C["u"], b]
    words = char_words(best_path(one_hot(ids, len(CHAR_VOCAB))), frame_seconds=0.03)
    p = round(1 - 1e-4 * (len(CHAR_VOCAB) - 1), 4)
    assert words == [Word("hi", 0.03, 0.09, ("h", "i"), p), Word("you", 0.18, 0.30, ("y", "o", "u"), p)]


def test_confidence_is_least_sure_token():
    # frames: "a" at 0.9 then 0.7 (mean 0.8), blank, "b" at 0.6 -> word "ab" has confidence 0.6
    probs = torch.full((4, len(CHAR_VOCAB)), 1e-3)
    for t, (i, p) in enumerate([(C["a"], 0.9), (C["a"], 0.7), (0, 0.9), (C["b"], 0.6)]):
        probs[t, i] = p
    toks = best_path(probs.log())
    assert [t.prob for t in toks] == [0.8, 0.6]
    assert char_words(toks, 0.03)[0].confidence == 0.6


def test_phone_words_through_lexicon():
    lex = Lexicon([("cat", ("K", "AE", "T")), ("sat", ("S", "AE", "T"))])
    ids = [P["K"], P["AE"], P["T"], P["|"], P["S"], P["AE"], P["D"]]
    words = phone_words(best_path(one_hot(ids, len(PHONE_VOCAB))), 0.03, lex)
    assert [w.word for w in words] == ["cat", "sat"]  # "S AE D" is closest to "sat"
    assert words[1].tokens == ("S", "AE", "D") and words[1].start == 0.12 and words[1].end == 0.21


def test_decode_outputs_batch_equals_single():
    lex = Lexicon([("cat", ("K", "AE", "T"))])
    a = [C["c"], C["a"], C["t"], 0]
    b = [C["a"], 0, 0, 0, 0, C["t"]]
    pa = [P["K"], P["AE"], P["T"], 0]
    pb = [P["K"], 0, P["T"], 0, 0, 0]
    out = {
        "char": torch.nn.utils.rnn.pad_sequence([one_hot(a, len(CHAR_VOCAB)), one_hot(b, len(CHAR_VOCAB))], batch_first=True),
        "phone": torch.nn.utils.rnn.pad_sequence([one_hot(pa, len(PHONE_VOCAB)), one_hot(pb, len(PHONE_VOCAB))], batch_first=True),
        "lengths": torch.tensor([4, 6]),
    }
    batch = decode_outputs(out, lex, 0.03)
    for i, (c, p) in enumerate([(a, pa), (b, pb)]):
        single = decode_outputs({"char": one_hot(c, len(CHAR_VOCAB))[None], "phone": one_hot(p, len(PHONE_VOCAB))[None],
                                 "lengths": torch.tensor([len(c)])}, lex, 0.03)[0]
        assert batch[i] == single
    assert batch[0].text("char") == "cat" and batch[1].text("char") == "at"
    assert batch[1].phones == ["K", "T"]


def test_ctc_log_likelihood_sums_all_alignments():
    from asr.decode import ctc_log_likelihood

    # 2 frames over {blank, a, b}: "a" is a a, a -, - a; "ab" only a b; "aa" cannot fit (needs a - a)
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    ll = ctc_log_likelihood(p.log(), [[1], [1, 2], [1, 1]])
    expected_a = 0.3 * 0.6 + 0.3 * 0.1 + 0.5 * 0.6
    assert torch.allclose(ll[:2], torch.tensor([math.log(expected_a), math.log(0.3 * 0.3)]))
    assert ll[2] == float("-inf")


def test_joint_rescore_lets_the_other_head_decide_and_merges_repeats():
    from asr.decode import joint_rescore

    lex = Lexicon([("red", ("R", "EH", "D")), ("read", ("R", "EH", "D")), ("bed", ("B", "EH", "D"))])
    words = lambda *ws: [Word(w, 0.0, 0.1) for w in ws]  # noqa: E731
    # The phone head cannot tell "read" from "red"; its n-best has "read" first (twice, other alignments).
    nbest = [(words("read"), -1.0), (words("read"), -1.5), (words("red"), -1.1)]
    chars = one_hot([C["r"], C["e"], C["d"]], len(CHAR_VOCAB))  # the character head spells "red"
    out = joint_rescore(nbest, chars, "char", lex, weight=1.0)
    assert [([w.word for w in ws], round(s, 3)) for ws, s in out][0][0] == ["red"]
    assert len(out) == 2  # one entry per word sequence
    assert out[0][1] > out[1][1] == -1.0 + float(ctc_ll_of(chars, "read"))
    assert joint_rescore(nbest, chars, "char", lex, weight=0.0)[0][0] == words("read")
    # and the other way: a phone head that hears "B EH D" picks "bed" out of a char n-best
    phones = one_hot([P["B"], P["EH"], P["D"]], len(PHONE_VOCAB))
    assert joint_rescore([(words("red"), -1.0), (words("bed"), -1.2)], phones, "phone", lex, 1.0)[0][0] == words("bed")


def ctc_ll_of(char_lp, text):
    from asr.decode import ctc_log_likelihood

    return ctc_log_likelihood(char_lp, [CHAR_VOCAB.encode(list(text.replace(" ", "|")))])[0]


def test_align_words_on_a_synthetic_alignment():
    from asr.decode import align_words

    lex = Lexicon([("red", ("R", "EH", "D")), ("bed", ("B", "EH", "D"))])
    b = 0
    # frames: - r r e d - | b e - d -   (10 ms frames)
    ids = [b, C["r"], C["r"], C["e"], C["d"], b, C["|"], C["b"], C["e"], b, C["d"], b]
    words = align_words(one_hot(ids, len(CHAR_VOCAB)), ["red", "bed"], "char", lex, 0.01)
    assert [(w.word, w.start, w.end) for w in words] == [("red", 0.01, 0.05), ("bed", 0.07, 0.11)]
    assert [w.tokens for w in words] == [("r", "e", "d"), ("b", "e", "d")]
    phones = [b, P["R"], P["EH"], P["D"], P["|"], P["B"], P["B"], P["EH"], P["D"], b]
    words = align_words(one_hot(phones, len(PHONE_VOCAB)), ["red", "bed"], "phone", lex, 0.02)
    assert [(w.word, w.start, w.end) for w in words] == [("red", 0.02, 0.08), ("bed", 0.1, 0.18)]
    assert align_words(one_hot(phones, len(PHONE_VOCAB)), ["red", "zebra"], "phone", lex, 0.02) is None
    assert align_words(one_hot(ids[:3], len(CHAR_VOCAB)), ["red", "bed"], "char", lex, 0.01) is None  # too short


def test_shipped_decoding_config_points_inside_the_package():
    from pathlib import Path

    from asr.decode import shipped_decoding

    head, config = shipped_decoding()
    assert head in ("char", "phone") and config.decoder in ("greedy", "beam")
    if config.lm is not None:
        assert Path(config.lm).is_file() and Path(f"{config.lm}.words.txt").is_file()


def test_skip_blank_frames_keeps_one_frame_of_each_sure_blank_run():
    from asr.decode import skip_blank_frames

    # blank posterior per frame: runs of sure blanks (> 0.95) at 1-3 and 5-6; frame 7 is unsure
    p_blank = [0.1, 0.99, 0.99, 0.97, 0.2, 0.96, 0.99, 0.9, 0.99]
    lp = torch.stack([torch.tensor([p, 1 - p]).log() for p in p_blank])
    assert skip_blank_frames(lp, 0.95).tolist() == [0, 1, 4, 5, 7, 8]
    assert skip_blank_frames(lp, None).tolist() == list(range(9))
    assert skip_blank_frames(lp, 0.999).tolist() == list(range(9))
