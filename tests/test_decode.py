import dataclasses
import math

import numpy as np
import pytest

from asr.errors import ConfigError
from asr.decode import BeamDecoder, DecodingConfig, Word, decode_batch
from asr.ctc import Token, best_path, char_words, group_words, phone_words
from asr.lm import build_lm
from asr.text import CHAR_VOCAB, PHONE_VOCAB, Lexicon

C = {t: i for i, t in enumerate(CHAR_VOCAB.tokens)}
P = {t: i for i, t in enumerate(PHONE_VOCAB.tokens)}


def one_hot(ids, vocab_size):
    """Log-probabilities putting (almost) all mass on ``ids[t]`` at frame t."""
    lp = np.full((len(ids), vocab_size), math.log(1e-4), dtype=np.float32)
    lp[np.arange(len(ids)), np.array(ids)] = math.log(1 - 1e-4 * (vocab_size - 1))
    return lp


def pad(rows: list[np.ndarray]) -> np.ndarray:
    """``(T_i, V)`` arrays as one zero-padded ``(B, max T_i, V)`` batch."""
    out = np.zeros((len(rows), max(len(r) for r in rows), rows[0].shape[1]), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


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
    probs = np.full((4, len(CHAR_VOCAB)), 1e-3)
    for t, (i, p) in enumerate([(C["a"], 0.9), (C["a"], 0.7), (0, 0.9), (C["b"], 0.6)]):
        probs[t, i] = p
    toks = best_path(np.log(probs))
    assert [t.prob for t in toks] == [0.8, 0.6]
    assert char_words(toks, 0.03)[0].confidence == 0.6


def test_phone_words_through_lexicon():
    lex = Lexicon([("cat", ("K", "AE", "T")), ("sat", ("S", "AE", "T"))])
    ids = [P["K"], P["AE"], P["T"], P["|"], P["S"], P["AE"], P["D"]]
    words = phone_words(best_path(one_hot(ids, len(PHONE_VOCAB))), 0.03, lex)
    assert [w.word for w in words] == ["cat", "sat"]  # "S AE D" is closest to "sat"
    assert words[1].tokens == ("S", "AE", "D") and words[1].start == 0.12 and words[1].end == 0.21


def test_decode_batch_batch_equals_single():
    lex = Lexicon([("cat", ("K", "AE", "T"))])
    a = [C["c"], C["a"], C["t"], 0]
    b = [C["a"], 0, 0, 0, 0, C["t"]]
    pa = [P["K"], P["AE"], P["T"], 0]
    pb = [P["K"], 0, P["T"], 0, 0, 0]
    out = {
        "char": pad([one_hot(a, len(CHAR_VOCAB)), one_hot(b, len(CHAR_VOCAB))]),
        "phone": pad([one_hot(pa, len(PHONE_VOCAB)), one_hot(pb, len(PHONE_VOCAB))]),
        "lengths": np.array([4, 6]),
    }
    batch = decode_batch(out, lex, 0.03)
    for i, (c, p) in enumerate([(a, pa), (b, pb)]):
        single = decode_batch({"char": one_hot(c, len(CHAR_VOCAB))[None], "phone": one_hot(p, len(PHONE_VOCAB))[None],
                                 "lengths": np.array([len(c)])}, lex, 0.03)[0]
        assert batch[i] == single
    assert batch[0].text("char") == "cat" and batch[1].text("char") == "at"
    assert batch[1].phones == ["K", "T"]


def test_ctc_log_likelihood_sums_all_alignments():
    from asr.ctc import ctc_log_likelihood

    # 2 frames over {blank, a, b}: "a" is a a, a -, - a; "ab" only a b; "aa" cannot fit (needs a - a)
    p = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]))
    ll = ctc_log_likelihood(p, [[1], [1, 2], [1, 1]])
    expected_a = 0.3 * 0.6 + 0.3 * 0.1 + 0.5 * 0.6
    assert np.allclose(ll[:2], [math.log(expected_a), math.log(0.3 * 0.3)])
    assert ll[2] == float("-inf")
    # targets of other lengths scored together: the figures each gives alone, in order
    many = [[1], [1, 2], [1, 1], [2], [2, 1], [1], [2, 2], [2], [1, 2]]
    together = ctc_log_likelihood(p, many)
    assert np.allclose(together, np.concatenate([ctc_log_likelihood(p, [t]) for t in many]), rtol=0, atol=1e-12)


def test_ctc_log_likelihood_and_forced_alignment_equal_torchs():
    """The forward algorithm against torch's ctc_loss, the Viterbi alignment against
    torchaudio's forced_align (+ merge_tokens), on random posteriors with repeated tokens."""
    torch = pytest.importorskip("torch")
    F = pytest.importorskip("torchaudio.functional")
    from asr.ctc import ctc_log_likelihood, forced_align

    rng = np.random.default_rng(0)
    for trial in range(60):
        T, V = int(rng.integers(5, 60)), 8
        lp = torch.randn(T, V, generator=torch.Generator().manual_seed(trial)).log_softmax(-1)
        target = rng.integers(1, V, int(rng.integers(1, T // 2 + 1))).tolist()
        if trial % 3 == 0 and len(target) > 1:
            target[1] = target[0]  # a repeat needs a blank between
        ours = forced_align(lp.numpy(), target)
        try:
            labels, scores = F.forced_align(lp[None], torch.tensor([target], dtype=torch.int32), blank=0)
            ref = F.merge_tokens(labels[0], scores[0].exp(), blank=0)
        except RuntimeError:  # the target does not fit
            ref = None
        assert (ours is None) == (ref is None)
        if ours is not None:
            assert [(t.id, t.start, t.end) for t in ours] == [(s.token, s.start, s.end) for s in ref]
            assert np.allclose([t.prob for t in ours], [s.score for s in ref], atol=1e-5)
        targets = [rng.integers(1, V, int(rng.integers(1, T // 2 + 2))).tolist() for _ in range(5)] + [[1] * T]
        nll = torch.nn.functional.ctc_loss(lp[:, None].expand(T, len(targets), -1),
                                           torch.tensor([x for t in targets for x in t]), torch.full((len(targets),), T),
                                           torch.tensor([len(t) for t in targets]), reduction="none")
        np.testing.assert_allclose(ctc_log_likelihood(lp.numpy(), targets), -nll.numpy(), atol=1e-3)


def joint_rescore(nbest, other_log_probs, other_head, lex, weight):
    from asr.search import rescore_nbest

    return rescore_nbest(nbest, other_log_probs, other_head, lex, DecodingConfig(joint_weight=weight))


def test_joint_rescore_lets_the_other_head_decide_and_merges_repeats():
    lex = Lexicon([("red", ("R", "EH", "D")), ("read", ("R", "EH", "D")), ("bed", ("B", "EH", "D"))])
    words = lambda *ws: [Word(w, 0.0, 0.1) for w in ws]  # noqa: E731
    # The phone head cannot tell "read" from "red"; its n-best has "read" first (twice, other alignments).
    nbest = [(words("read"), -1.0), (words("read"), -1.5), (words("red"), -1.1)]
    chars = one_hot([C["r"], C["e"], C["d"]], len(CHAR_VOCAB))  # the character head spells "red"
    out = joint_rescore(nbest, chars, "char", lex, weight=1.0)
    assert [([w.word for w in ws], round(s, 3)) for ws, s in out][0][0] == ["red"]
    assert len(out) == 2  # one entry per word sequence
    assert out[0][1] > out[1][1] == -1.0 + float(ctc_ll_of(chars, "read"))
    assert joint_rescore(nbest, chars, "char", lex, weight=0.0) == nbest  # no rescoring: the search's n-best
    # and the other way: a phone head that hears "B EH D" picks "bed" out of a char n-best
    phones = one_hot([P["B"], P["EH"], P["D"]], len(PHONE_VOCAB))
    assert joint_rescore([(words("red"), -1.0), (words("bed"), -1.2)], phones, "phone", lex, 1.0)[0][0] == words("bed")


def test_member_rescore_lets_the_other_models_decide_by_weight_whatever_their_timing():
    """An n-best ensemble: each other model's CTC log-likelihood of a hypothesis, times its weight,
    joins the first model's search score; where the other model puts its spikes does not matter."""
    from asr.ctc import ctc_log_likelihood
    from asr.search import rescore_nbest

    def member_rescore(nbest, members, head, lex):
        return rescore_nbest(nbest, None, "char" if head == "phone" else "phone", lex, DecodingConfig(), members=members)

    lex = Lexicon([("red", ("R", "EH", "D")), ("bed", ("B", "EH", "D"))])
    words = lambda *ws: [Word(w, 0.0, 0.1) for w in ws]  # noqa: E731
    nbest = [(words("red"), -1.0), (words("bed"), -1.5), (words("red"), -2.0)]
    # the other model hears "B EH D", its spikes late in the utterance (blank first)
    late = one_hot([PHONE_VOCAB.blank, PHONE_VOCAB.blank, P["B"], P["EH"], P["D"]], len(PHONE_VOCAB))
    bed = float(ctc_log_likelihood(late, [PHONE_VOCAB.encode(["B", "EH", "D"])])[0])
    red = float(ctc_log_likelihood(late, [PHONE_VOCAB.encode(["R", "EH", "D"])])[0])
    out = member_rescore(nbest, [(late, 1.0)], "phone", lex)
    assert [ws[0].word for ws, _ in out] == ["bed", "red"]  # one entry per word sequence
    np.testing.assert_allclose([s for _, s in out], [-1.5 + bed, -1.0 + red])
    # weight 0: the first model's order; two members add up
    assert [ws[0].word for ws, _ in member_rescore(nbest, [(late, 0.0)], "phone", lex)] == ["red", "bed"]
    two = member_rescore(nbest, [(late, 0.5), (late, 0.5)], "phone", lex)
    np.testing.assert_allclose([s for _, s in two], [s for _, s in out])


def test_token_score_is_a_length_bonus_per_phone_of_the_words():
    """Each hypothesis gains token_score per token that spelled its words (Word.tokens), on top of
    the other rescoring; repeats of a word sequence count once, with their best score."""
    from asr.search import best_words, rescore_nbest

    def hyp(score, *spelled):
        return [Word(w, 0.0, 0.1, tuple(p.split())) for w, p in spelled], score

    the, cat, catalog = ("the", "DH AH"), ("cat", "K AE T"), ("catalog", "K AE T AH L AO G")
    nbest = [hyp(-1.0, the, cat), hyp(-1.2, the, cat), hyp(-2.0, the, catalog)]  # 5 and 9 phones
    plain = rescore_nbest(nbest, None, "char", None, DecodingConfig())
    assert plain == nbest  # nothing asked: the search's n-best as it came
    out = rescore_nbest(nbest, None, "char", None, DecodingConfig(token_score=0.3))
    assert [[w.word for w in ws] for ws, _ in out] == [["the", "catalog"], ["the", "cat"]]
    np.testing.assert_allclose([s for _, s in out], [-2.0 + 9 * 0.3, -1.0 + 5 * 0.3])
    assert [w.word for w in best_words(nbest, None, "char", None, DecodingConfig(token_score=0.2))] == ["the", "cat"]
    # a penalty works the other way; an unfinite bonus is refused where the config is made
    out = rescore_nbest(nbest, None, "char", None, DecodingConfig(token_score=-0.1))
    assert out[0][0][1].word == "cat"
    with pytest.raises(ConfigError, match="token_score"):
        DecodingConfig(token_score=float("nan"))


def ctc_ll_of(char_lp, text):
    from asr.ctc import ctc_log_likelihood

    return ctc_log_likelihood(char_lp, [CHAR_VOCAB.encode(list(text.replace(" ", "|")))])[0]


def test_align_words_on_a_synthetic_alignment():
    from asr.ctc import align_words

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

    from asr.bundle import default_bundle_path, load_bundle

    b = load_bundle()
    head, config = b.head, b.decoding
    assert head in ("char", "phone") and config.decoder in ("greedy", "beam")
    assert b.path == default_bundle_path().resolve()
    for f in (config.lm, config.calibration, b.model, b.lexicon):
        if f is not None:
            assert Path(f).is_file() and Path(f).parent == b.path
    if config.lm is not None:
        assert Path(f"{config.lm}.words.txt").is_file()


def test_skip_blank_frames_keeps_one_frame_of_each_sure_blank_run():
    from asr.search import skip_blank_frames

    # blank posterior per frame: runs of sure blanks (> 0.95) at 1-3 and 5-6; frame 7 is unsure
    p_blank = [0.1, 0.99, 0.99, 0.97, 0.2, 0.96, 0.99, 0.9, 0.99]
    lp = np.stack([np.log(np.array([p, 1 - p])) for p in p_blank])
    assert skip_blank_frames(lp, 0.95).tolist() == [0, 1, 4, 5, 7, 8]
    assert skip_blank_frames(lp, None).tolist() == list(range(9))
    assert skip_blank_frames(lp, 0.999).tolist() == list(range(9))


# Beam search with lexicon and LM (BeamDecoder)

LEX = Lexicon([("red", ("R", "EH", "D")), ("rid", ("R", "IH", "D")), ("bed", ("B", "EH", "D")),
               ("read", ("R", "IY", "D")), ("read", ("R", "EH", "D"))])


def frames(spec, index):
    rows = []
    for d in spec:
        p = np.full((len(index),), 1e-4)
        for k, v in d.items():
            p[index[k]] = v
        rows.append(np.log(p / p.sum()))
    return np.stack(rows)[None]


# "r", then 'a' 0.5 / 'i' 0.3 / 'e' 0.2, "d", boundary, "bed": greedy spells "rad bed".
AMBIGUOUS = [{"r": 0.9}, {"a": 0.5, "i": 0.3, "e": 0.2}, {"d": 0.9}, {"|": 0.9}, {"b": 0.9}, {"e": 0.9}, {"d": 0.9}]


def test_beam_with_lexicon_fixes_spelling_and_lm_decides(tmp_path):
    lp = frames(AMBIGUOUS, C)
    assert [w.word for w in char_words(best_path(lp[0]), 0.03)] == ["rad", "bed"]
    plain = BeamDecoder("char", LEX, DecodingConfig("beam", beam_size=20))
    assert [w.word for w in plain(lp, np.array([7]), 0.03)[0][0]] == ["rid", "bed"]  # acoustics: i > e
    (tmp_path / "t.txt").write_text("RED BED\n" * 20 + "RID\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    with_lm = BeamDecoder("char", LEX, DecodingConfig("beam", lm=str(tmp_path / "lm.arpa"), beam_size=20, lm_weight=2.0))
    words = with_lm(lp, np.array([7]), 0.03)[0][0]
    assert [w.word for w in words] == ["red", "bed"]  # the LM knows "red bed"
    assert (words[1].start, words[1].end) == (0.12, 0.21) and 0 < words[0].confidence < words[1].confidence <= 1


def test_blank_penalty_lets_the_search_say_a_word_it_heard_weakly():
    # "red", then "bed" said weakly: each of its frames more likely blank (0.6) than its letter (0.35)
    weak = [{"r": 0.9}, {"e": 0.9}, {"d": 0.9}, {"|": 0.9}, {"b": 0.35, "<b>": 0.6}, {"e": 0.35, "<b>": 0.6},
            {"d": 0.35, "<b>": 0.6}, {"|": 0.35, "<b>": 0.6}]
    lp = frames(weak, C)
    plain = BeamDecoder("char", LEX, DecodingConfig("beam", beam_size=20))(lp, np.array([8]), 0.03)[0][0]
    assert [w.word for w in plain] == ["red"]
    config = DecodingConfig("beam", beam_size=20, blank_penalty=1.0)  # blank 0.6 / e = 0.22 < 0.35
    penalised = BeamDecoder("char", LEX, config)(lp, np.array([8]), 0.03)[0][0]
    assert [w.word for w in penalised] == ["red", "bed"]
    # the penalty moves the search, not the evidence: "red"'s tokens have the same posteriors
    assert penalised[0].confidence == plain[0].confidence and penalised[0].evidence == plain[0].evidence
    # a constant on every token would change nothing: only the blank's is moved
    assert lp[0, 0, 0] == frames(weak, C)[0, 0, 0]  # (and the caller's array is left alone)
    with pytest.raises(ConfigError, match="blank_penalty"):
        DecodingConfig(blank_penalty=float("inf"))


def test_phone_head_beam_uses_all_pronunciations():
    # R EH D | B EH D: "red" and "read" (second pronunciation) tie acoustically; no LM -> either is a word
    lp = frames([{"R": 0.9}, {"EH": 0.9}, {"D": 0.9}, {"|": 0.9}, {"B": 0.9}, {"EH": 0.9}, {"D": 0.9}], P)
    words = BeamDecoder("phone", LEX, DecodingConfig("beam", beam_size=20))(lp, np.array([7]), 0.03)[0][0]
    assert [w.word for w in words][1] == "bed" and words[0].word in ("red", "read")
    assert words[0].tokens == ("R", "EH", "D")


def test_beam_batch_equals_single():
    lp = frames(AMBIGUOUS, C)
    short = np.concatenate([lp[:, :3], np.zeros((1, 4, len(CHAR_VOCAB)), dtype=np.float32)], 1)
    dec = BeamDecoder("char", LEX, DecodingConfig("beam", beam_size=20))
    batch = dec(np.concatenate([lp, short]), np.array([7, 3]), 0.03)
    # The best reading, the one that is output. (flashlight's n-best tail, hypotheses some
    # 10 nats below the best, can hold one more or one fewer from one call to the next.)
    assert batch[0][0] == dec(lp, np.array([7]), 0.03)[0][0]
    assert batch[1][0] == dec(short[:, :3], np.array([3]), 0.03)[0][0]


def test_search_in_its_own_thread_equals_the_main_thread(tmp_path):
    import threading

    (tmp_path / "t.txt").write_text("A RED BED\nREAD A BED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    lp = frames(AMBIGUOUS, C)
    dec = BeamDecoder("char", LEX, DecodingConfig("beam", lm=str(tmp_path / "lm.arpa"), beam_size=20, nbest=3))
    seen = []
    fresh = dec.decoder.fresh  # each utterance's search starts here
    dec.decoder.fresh = lambda: seen.append(threading.current_thread()) or fresh()
    own = dec.search(lp, np.array([7]), 0.03)
    dec.search_in_thread = False
    main = dec.search(lp, np.array([7]), 0.03)
    assert own == main and own[0]
    assert seen[0] is not threading.main_thread() and seen[1] is threading.main_thread()
    assert not seen[0].is_alive()  # the search's thread is gone: nothing left running at a fork


def test_blank_skip_keeps_words_times_and_doubled_letters():
    # "reed": r, three sure blanks, e, three sure blanks, e, d: dropping whole blank runs would
    # merge the two e's into "red"; skipping keeps one blank between them.
    lex = Lexicon([("red", ("R", "EH", "D")), ("reed", ("R", "IY", "D")), ("bed", ("B", "EH", "D"))])
    blank = {"<b>": 0.99}
    spec = [{"r": 0.9}, blank, blank, blank, {"e": 0.9}, blank, blank, blank, {"e": 0.9}, {"d": 0.9},
            {"|": 0.9}, blank, blank, {"b": 0.9}, {"e": 0.9}, blank, {"d": 0.9}, blank]
    lp = frames(spec, C)
    full = BeamDecoder("char", lex, DecodingConfig("beam", beam_size=20))(lp, np.array([len(spec)]), 0.03)[0][0]
    skipping = BeamDecoder("char", lex, DecodingConfig("beam", beam_size=20, blank_skip=0.95))
    skipped = skipping(lp, np.array([len(spec)]), 0.03)[0][0]
    assert [w.word for w in full] == [w.word for w in skipped] == ["reed", "bed"]
    assert [(w.start, w.end) for w in skipped] == [(w.start, w.end) for w in full] == [(0.0, 0.3), (0.39, 0.51)]


def test_transcriber_with_beam_and_lm(tmp_path):
    from asr.transcribe import Transcriber
    from conftest import TEST_DATA

    (tmp_path / "t.txt").write_text("NORTHANGER ABBEY\nKNIT TWO TOGETHER TWICE\nWHO WAS ALREADY ASLEEP IN BED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    vocab = set((tmp_path / "lm.arpa.words.txt").read_text().split())
    from asr.bundle import from_checkpoint, default_bundle_path

    for head in ("char", "phone"):
        b = from_checkpoint(default_bundle_path() / "model.pt")
        t = Transcriber(b.with_options(head=head, decoder="beam", lm=str(tmp_path / "lm.arpa"), beam_size=20))
        result = t.transcribe(TEST_DATA / "2416-152139-0047.opus")
        assert result.words and set(result.text.split()) <= vocab  # only LM words can come out
        assert [w.start for w in result.words] == sorted(w.start for w in result.words)
        assert all(0 <= w.confidence <= 1 and w.end > w.start for w in result.words)


def test_bad_decoding_options(tmp_path):
    from asr.decode import DecodingConfig, make_beam_decoder

    with pytest.raises(ValueError, match="decoder .--decoder. must be 'greedy' or 'beam', not 'viterbi'"):
        DecodingConfig("viterbi")
    with pytest.raises(FileNotFoundError, match="language model not found"):
        make_beam_decoder("char", LEX, DecodingConfig("beam", str(tmp_path / "none.arpa")))
    assert make_beam_decoder("char", LEX, DecodingConfig()) is None


def test_lexicon_free_char_beam_spells_open_vocabulary():
    lp = frames(AMBIGUOUS, C)
    free = BeamDecoder("char", LEX, DecodingConfig("beam", beam_size=20, lexicon_free=True))
    words = free(lp, np.array([7]), 0.03)[0][0]
    assert [w.word for w in words] == ["rad", "bed"]  # not a lexicon word: spelled as heard
    assert [w.tokens for w in words] == [("r", "a", "d"), ("b", "e", "d")] and words[1].start == 0.12
    # 20 words searched holding 5 steps: what the search holding all of them spells
    long = frames((AMBIGUOUS + [{"|": 0.9}, {"<b>": 0.99}]) * 10, C)
    spelled = {h: [(w.word, w.start, w.end) for w in BeamDecoder(
        "char", LEX, DecodingConfig("beam", beam_size=20, lexicon_free=True, history_steps=h))(
        long, np.array([long.shape[1]]), 0.03)[0][0]] for h in (0, 5)}
    assert spelled[5] == spelled[0] and len(spelled[0]) == 20
    with pytest.raises(ValueError, match="lexicon-free"):
        BeamDecoder("phone", LEX, DecodingConfig("beam", lexicon_free=True))


# --- word evidence (the raw material of confidences) ---------------------------------------

def _w(word, start, end, tokens=()):
    return Word(word, start, end, tokens)


def test_nbest_posteriors_share_the_mass_of_hypotheses_with_the_word():
    from asr.confidence import nbest_posteriors

    a, b, c = _w("a", 0.0, 0.1), _w("b", 0.2, 0.3), _w("c", 0.2, 0.3)
    late_a = _w("a", 1.0, 1.1)  # the same word, elsewhere: not the same word
    nbest = [([a, b], 0.0), ([a, c], 0.0), ([late_a, b], math.log(2.0))]  # masses 1/4, 1/4, 1/2
    assert nbest_posteriors(nbest) == pytest.approx([0.5, 0.75])
    assert nbest_posteriors([([a, b], -3.0)]) == [1.0, 1.0]


def test_word_evidence_tells_supported_from_forced_words():
    from asr.confidence import word_evidence

    # R EH D | B EH D, each phone held one frame, clear: "red bed" is what the acoustics say.
    spec = [{"R": 0.9}, {"EH": 0.9}, {"D": 0.9}, {"|": 0.9}, {"B": 0.9}, {"EH": 0.9}, {"D": 0.9}]
    lp = frames(spec, P)[0]
    chars = frames([{"r": 0.9}, {"e": 0.9}, {"d": 0.9}, {"|": 0.9}, {"b": 0.9}, {"e": 0.9}, {"d": 0.9}], C)[0]
    said = [_w("red", 0.0, 0.09, ("R", "EH", "D")), _w("bed", 0.12, 0.21, ("B", "EH", "D"))]
    forced = [_w("red", 0.0, 0.09, ("R", "EH", "D")), _w("rid", 0.12, 0.21, ("R", "IH", "D"))]
    other = char_words(best_path(chars), 0.03)
    good = word_evidence(said, lp, PHONE_VOCAB, best_path(lp), best_path(chars), other, 0.03)
    bad = word_evidence(forced, lp, PHONE_VOCAB, best_path(lp), best_path(chars), other, 0.03)
    assert good[0].evidence == bad[0].evidence or good[0].evidence["llr"] == pytest.approx(bad[0].evidence["llr"])
    g, b = good[1].evidence, bad[1].evidence
    assert g["llr"] == pytest.approx(0.0, abs=1e-4) and b["llr"] < -1.0  # forced path far below the best frame
    assert g["match"] == 1.0 and b["match"] < 0.5 and g["other_match"] == 1.0 and b["other_match"] < 0.5
    assert g["agree"] == 1.0 and b["agree"] == 0.0
    assert g["speech"] == b["speech"] == 1.0  # no frame is a sure blank
    assert g["seconds"] == pytest.approx(0.09)
    assert g["char_llr"] == 0.0  # no character log-probabilities given


def test_char_llr_tells_homophones_apart():
    # "red" and "read" (past tense) are both R EH D: the phone head's evidence cannot choose;
    # the character head, forced to spell each, can.
    from asr.confidence import word_evidence

    lp = frames([{"R": 0.9}, {"EH": 0.9}, {"EH": 0.9}, {"D": 0.9}, {"<b>": 0.9}], P)[0]
    chars = frames([{"r": 0.9}, {"e": 0.9}, {"e": 0.9}, {"d": 0.9}, {"<b>": 0.9}], C)[0]
    red, read = [_w("red", 0.0, 0.12, ("R", "EH", "D"))], [_w("read", 0.0, 0.12, ("R", "EH", "D"))]
    args = (lp, PHONE_VOCAB, best_path(lp), best_path(chars), [], 0.03)
    r, d = word_evidence(red, *args, chars)[0].evidence, word_evidence(read, *args, chars)[0].evidence
    assert r["llr"] == pytest.approx(d["llr"]) and r["match"] == d["match"]
    assert r["char_llr"] == pytest.approx(0.0, abs=1e-4)
    assert d["char_llr"] < -1.0  # the "a" is forced onto a frame that says "e"


def test_context_evidence_of_neighbours_and_utterance_by_hand():
    from asr.confidence import CONTEXT_KEYS, context_evidence

    words = [Word(w, 0.5 * i, 0.5 * i + 0.2, evidence={k: float(i + 1) for k in CONTEXT_KEYS}) for i, w in enumerate("abc")]
    a, b, c = (w.evidence for w in context_evidence(words))
    assert a["words"] == c["words"] == 3.0 and a["rate"] == pytest.approx(3 / 1.2)  # 3 words from 0.0 to 1.2 s
    assert context_evidence(words[:1])[0].evidence["rate"] == pytest.approx(1 / 0.5)  # 0.2 s: the 0.5 s floor
    assert (a["first"], a["last"], b["first"], b["last"], c["last"]) == (1.0, 0.0, 0.0, 0.0, 1.0)
    for k in CONTEXT_KEYS:
        assert (a[f"prev_{k}"], a[f"next_{k}"], b[f"prev_{k}"], b[f"next_{k}"], c[f"next_{k}"]) == (0.0, 2.0, 1.0, 3.0, 0.0)
        assert a[f"utt_{k}"] == b[f"utt_{k}"] == c[f"utt_{k}"] == 2.0
        assert b[k] == 2.0  # its own evidence is kept
    assert context_evidence([]) == []


def test_beam_words_carry_evidence_and_the_calibrated_confidence(tmp_path):
    from asr.confidence import FEATURES, Calibrator

    lp = frames(AMBIGUOUS, C)
    out = {"char": lp, "phone": np.full((1, 7, len(PHONE_VOCAB)), -math.log(len(PHONE_VOCAB))),
           "lengths": np.array([7])}
    raw = decode_batch(out, LEX, 0.03, beam=BeamDecoder("char", LEX, DecodingConfig("beam", beam_size=20)))[0]
    assert [w.word for w in raw.char_words] == ["rid", "bed"]
    assert all(set(w.evidence) >= {k for k, _ in FEATURES.values()} for w in raw.char_words)
    # a calibrator that only looks at the n-best posterior: P = sigmoid(2 logit(posterior) - 1)
    (tmp_path / "c.json").write_text(Calibrator(("posterior",), (2.0,), -1.0, "char").to_json())
    beam = BeamDecoder("char", LEX, DecodingConfig("beam", beam_size=20, calibration=str(tmp_path / "c.json")))
    calibrated = decode_batch(out, LEX, 0.03, beam=beam)[0].char_words
    for w in calibrated:
        p = min(max(w.evidence["posterior"], 1e-4), 1 - 1e-4)
        assert w.confidence == pytest.approx(1 / (1 + math.exp(-(2 * math.log(p / (1 - p)) - 1))), abs=1e-4)
    assert [w.word for w in calibrated] == ["rid", "bed"]  # scores, not words, change
    with pytest.raises(Exception, match="calibrated for the char head"):
        BeamDecoder("phone", LEX, DecodingConfig("beam", calibration=str(tmp_path / "c.json")))


def test_incremental_search_in_any_pieces_is_the_whole_search(tmp_path):
    (tmp_path / "t.txt").write_text("A RED BED\nREAD A BED\nA BAD BED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    blank = {"<b>": 0.99}  # runs of sure blanks, which the search skips, cut by the pieces' edges
    lp = frames(AMBIGUOUS[:4] + [blank] * 4 + AMBIGUOUS[4:] + [blank] * 3 + AMBIGUOUS, C)[0]
    dec = BeamDecoder("char", LEX, DecodingConfig("beam", lm=str(tmp_path / "lm.arpa"), beam_size=20, nbest=3,
                                                  blank_skip=0.95))
    (whole,) = dec.search(lp[None], np.array([len(lp)]), 0.03)
    for size in (1, 3, 5):
        search = dec.incremental()
        partials = []
        for start in range(0, len(lp), size):
            search.accept(lp[start:start + size])
            partials.append([w.word for w in search.best(0.03)])
        got = search.finish(0.03)
        # the best, and the n-best up to the order of ties (equal scores may come either way)
        assert got[0] == whole[0] and sorted(got, key=_order) == sorted(whole, key=_order)
        assert partials[-1] and partials[-1] == [w.word for w in whole[0][0]][:len(partials[-1])]
    a, b = dec.incremental(), dec.incremental()  # each search has its own state
    for start in range(0, len(lp), 2):
        a.accept(lp[start:start + 2])
        b.accept(lp[::-1][start:start + 2])
    assert sorted(a.finish(0.03), key=_order) == sorted(whole, key=_order)


def test_search_with_a_bounded_history_is_the_whole_search(tmp_path):
    # 20 words, 100 steps: with history_steps=12 the search commits to its best path again and
    # again, dropping the hypotheses' history before it, and still reads the same words at the
    # same times as the search that holds all of it
    (tmp_path / "t.txt").write_text("A RED BED\nREAD A BED\nA BAD BED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    blank = {"<b>": 0.99}
    lp = frames((AMBIGUOUS + [{"|": 0.9}, blank, blank]) * 10, C)[0]
    config = DecodingConfig("beam", lm=str(tmp_path / "lm.arpa"), beam_size=20, nbest=3)
    (whole,) = BeamDecoder("char", LEX, dataclasses.replace(config, history_steps=0)).search(
        lp[None], np.array([len(lp)]), 0.03)
    bounded = BeamDecoder("char", LEX, dataclasses.replace(config, history_steps=12))
    (short,) = bounded.search(lp[None], np.array([len(lp)]), 0.03)
    assert [w.word for w in short[0][0]] == [w.word for w in whole[0][0]] == ["red", "bed"] * 10
    assert [(w.start, w.end, w.tokens) for w in short[0][0]] == [(w.start, w.end, w.tokens) for w in whole[0][0]]
    search = bounded.incremental()
    most = 0
    for start in range(0, len(lp), 5):  # in pieces: the same commits, so the same n-best
        search.accept(lp[start:start + 5])
        most = max(most, search.decoder.held)
    assert most <= 12 and len(search.decoder.steps_done) > 80  # it held 12 steps at most
    assert search.finish(0.03) == short
    with pytest.raises(ConfigError, match="history_steps"):
        BeamDecoder("char", LEX, dataclasses.replace(config, history_steps=1))


def _order(hypothesis):
    words, score = hypothesis
    return round(score, 6), [(w.word, w.start) for w in words]


def test_saved_spellings_give_the_same_search_and_are_used_only_where_their_key_fits(tmp_path):
    from asr.bundle import load_bundle
    from asr.search import load_spellings, save_spellings, spell_vocabulary, spellings_key
    from asr.text import LazyLexicon

    shipped = load_bundle()
    lexicon = LazyLexicon(shipped.lexicon)
    key = spellings_key("phone", lexicon, shipped.decoding.lm)
    saved = load_spellings(shipped.spellings, key)
    assert saved is not None and lexicon._lexicon is None  # read without the lexicon file
    built = spell_vocabulary("phone", lexicon.load(), shipped.decoding.lm)
    assert list(saved.items()) == list(built.items())  # same words, same order: same word indices in the search
    assert load_spellings(shipped.spellings, {**key, "head": "char"}) is None
    assert load_spellings(shipped.spellings, spellings_key("phone", lexicon, None)) is None  # no LM: all words
    small = {"red": [[P["R"], P["EH"], P["D"]]], "read": [[P["R"], P["IY"], P["D"]], [P["R"], P["EH"], P["D"]]]}
    save_spellings(tmp_path / "s.npz", small, {"k": 1})
    assert load_spellings(tmp_path / "s.npz", {"k": 1}) == small
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert load_spellings(tmp_path / "bad.npz", {"k": 1}) is None


def test_confidence_floor_needs_a_calibrator_and_leaves_out_the_words_below_it(tmp_path):
    from asr.confidence import Calibrator

    with pytest.raises(ConfigError, match="confidence_floor .--confidence-floor. must be 0 without a calibrator"):
        DecodingConfig("beam", confidence_floor=0.1)
    with pytest.raises(ConfigError, match="must be a probability in"):
        DecodingConfig("beam", calibration="c.json", confidence_floor=1.0)
    # a calibrator of the posterior alone: P(right) = sigmoid(logit(posterior))
    (tmp_path / "c.json").write_text(Calibrator(("posterior",), (1.0,), 0.0, "phone").to_json())
    words = [Word(w, 0.0, 0.1, evidence={"posterior": p}) for w, p in (("red", 0.9), ("bed", 0.04), ("rid", 0.06))]
    for floor, kept in ((0.0, ["red", "bed", "rid"]), (0.05, ["red", "rid"]), (0.5, ["red"])):
        dec = BeamDecoder("phone", LEX, DecodingConfig("beam", beam_size=5, calibration=str(tmp_path / "c.json"),
                                                       confidence_floor=floor))
        assert [w.word for w in dec.calibrate(words)] == kept
    # with a grammar, the sentence is kept or left out whole: by its words' mean confidence (0.33 here)
    (tmp_path / "g.gram").write_text("#JSGF V1.0;\npublic <s> = red bed rid;\n")
    for floor, kept in ((0.05, ["red", "bed", "rid"]), (0.3, ["red", "bed", "rid"]), (0.4, [])):
        dec = BeamDecoder("phone", LEX, DecodingConfig("beam", beam_size=5, calibration=str(tmp_path / "c.json"),
                                                       confidence_floor=floor, grammar=str(tmp_path / "g.gram")))
        assert [w.word for w in dec.calibrate(words)] == kept


def test_a_grammar_gives_its_sentences_only_even_when_pruning_lost_them(tmp_path):
    """A sentence of a grammar is complete only at its end. Here the audio says "red" and then
    nothing: with a narrow beam, every hypothesis that goes on to "bed" is pruned on the blank
    frames, and the beam ends on "red", which the grammar does not allow. The search then
    runs again unpruned, which puts "bed" where it must; with the out-of-grammar rejection on,
    that sentence is too far from what was heard and nothing comes out. Never "red"."""
    gram = tmp_path / "g.gram"
    gram.write_text("#JSGF V1.0;\npublic <s> = red bed;\n")
    lp = frames([{"r": 0.9}, {"e": 0.9}, {"d": 0.9}, {"|": 0.9}, *[{"<b>": 0.99}] * 5], C)
    narrow = DecodingConfig("beam", grammar=str(gram), beam_size=20, beam_threshold=2.0)
    free = BeamDecoder("char", LEX, dataclasses.replace(narrow, grammar_reject=1e9))
    assert [w.word for w in free(lp, np.array([9]), 0.03)[0][0]] == ["red", "bed"]
    assert BeamDecoder("char", LEX, narrow)(lp, np.array([9]), 0.03)[0] == []  # rejected: "bed" was not said


def test_a_grammar_search_tries_every_token_whatever_the_token_beam(tmp_path):
    """``beam_size_token`` tries only the tokens a frame ranks highest: the LM's search reads what the
    model heard best. A grammar's words must be said whatever the model ranks first: here "bed"'s
    'b' is never among the two likeliest tokens ('p', 'd'), yet the grammar finds it (RESULTS.md:
    PocketSphinx's card names, whose "clubs" the model hears as "close")."""
    gram = tmp_path / "g.gram"
    gram.write_text("#JSGF V1.0;\npublic <s> = bed | red;\n")
    lp = frames([{"p": 0.4, "d": 0.35, "b": 0.2}, {"e": 0.9}, {"d": 0.9}, {"|": 0.9}], C)
    config = DecodingConfig("beam", beam_size=20, beam_size_token=2, grammar_reject=1e9)
    free = BeamDecoder("char", LEX, config)(lp, np.array([4]), 0.03)[0]
    assert all("bed" not in [w.word for w in words] for words in free)  # the LM's search cannot say it: 'b' is never tried
    held = BeamDecoder("char", LEX, dataclasses.replace(config, grammar=str(gram)))(lp, np.array([4]), 0.03)[0][0]
    assert [w.word for w in held] == ["bed"]
