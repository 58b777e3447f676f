import math

import pytest
import numpy as np

from asr.calibrate import synthetic_audio
from asr.confidence import FEATURES, CalibrationError, Calibrator, feature_matrix, fit_calibrator


def test_fit_recovers_a_known_logistic_model():
    # right ~ Bernoulli(sigmoid(3 logit(posterior) + 1.5 match - 2)) over many words
    g = np.random.default_rng(0)
    n = 20000
    post = np.clip(g.random(n), 0.01, 0.99)
    match = g.random(n)
    z = 3 * np.log(post / (1 - post)) + 1.5 * match - 2
    right = (g.random(n) < 1 / (1 + np.exp(-z))).tolist()
    evidence = [{"posterior": float(p), "match": float(m)} for p, m in zip(post, match)]
    c = fit_calibrator(evidence, right, ("posterior", "match"), head="phone", l2=0.0)
    assert c.weights == pytest.approx((3.0, 1.5), abs=0.15) and c.bias == pytest.approx(-2.0, abs=0.15)


def test_probability_matches_the_formula_and_survives_a_round_trip(tmp_path):
    c = Calibrator(("posterior", "speech_sq", "seconds"), (1.0, -0.5, 2.0), 0.25, "phone")
    e = {"posterior": 0.8, "speech": 0.6, "seconds": 0.5}
    z = 0.25 + math.log(0.8 / 0.2) - 0.5 * math.log(0.6 / 0.4) ** 2 + 2.0 * math.log(0.5)
    assert c.probability(e) == pytest.approx(1 / (1 + math.exp(-z)))
    (tmp_path / "c.json").write_text(c.to_json())
    assert Calibrator.load(tmp_path / "c.json") == c
    assert feature_matrix([e], c.features).shape == (1, 3)


@pytest.mark.parametrize("content, reason", [
    (None, "not found"), ("{not json", "not a confidence calibrator"), ('{"features": ["x"], "weights": [1], "bias": 0}',
                                                                      "unknown features"),
    ('{"features": ["lm"], "weights": [1, 2], "bias": 0}', "2 weights for 1 features"), ("[]", "not a confidence"),
])
def test_load_names_the_file_and_the_problem(tmp_path, content, reason):
    path = tmp_path / "cal.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CalibrationError, match=reason) as e:
        Calibrator.load(path)
    assert str(path) in str(e.value)


def test_every_feature_reads_known_evidence():
    evidence = {key: 0.5 for key, _ in FEATURES.values()}
    assert np.isfinite(feature_matrix([evidence], tuple(FEATURES))).all()


def test_synthetic_audio():
    white, pink, tone = (synthetic_audio(k, 2.0) for k in ("white", "pink", "tone"))
    assert white.shape == (32000,) and np.abs(white).max() == pytest.approx(0.5)
    assert np.abs(synthetic_audio("silence", 1.0)).max() == 0
    low = lambda x: (np.abs(np.fft.rfft(x))[:2 * 500] ** 2).sum() / (np.abs(np.fft.rfft(x)) ** 2).sum()  # < 500 Hz
    assert low(pink) > 3 * low(white)  # 1/f: more of its power down low
    spectrum = np.abs(np.fft.rfft(tone))
    assert int(spectrum.argmax()) == 880  # 440 Hz at 0.5 Hz per bin
    with pytest.raises(ValueError):
        synthetic_audio("speech")


# --- the shipped bundle: its calibrated confidences on non-speech and on speech in noise -------

@pytest.fixture(scope="module")
def shipped():
    from asr.transcribe import Transcriber

    tr = Transcriber()
    assert tr.decoding.calibration is not None, "the shipped decoding names no confidence calibrator"
    return tr


def _words(transcriber, wavs):
    from asr.decode import recognize
    from asr.features import compute_features

    feats = [compute_features(w, transcriber.model.config.features) for w in wavs]
    return [h.words(transcriber.head) for h in recognize(transcriber.model, feats, transcriber.lexicon,
                                                         beam=transcriber.beam)]


def test_non_speech_gives_no_confident_words_and_the_shipped_floor_leaves_none(shipped):
    # None of these kinds is among those the calibrator was fitted on (FIT_NON_SPEECH).
    kinds = ("white", "pink", "tone", "silence")
    audio = [synthetic_audio(k, 30.0, seed=7) for k in kinds]
    assert shipped.decoding.confidence_floor > 0
    for kind, words in zip(kinds, _words(shipped, audio)):
        assert words == [], kind  # the default output of noise, a tone, silence: nothing
    from asr.transcribe import Transcriber

    unfloored = Transcriber(shipped.bundle.with_options(confidence_floor=0.0))
    heard = _words(unfloored, audio)
    assert sum(map(len, heard)) > 0  # the search does say words in them: the floor is what leaves them out
    for kind, words in zip(kinds, heard):
        assert [w.word for w in words if w.confidence >= 0.5] == [], kind


def test_speech_in_noise_degrades_gracefully(shipped):
    from asr.features import load_audio
    from conftest import TEST_DATA

    clean = [load_audio(p) for p in sorted(TEST_DATA.glob("*.opus"))]
    g = np.random.default_rng(0)

    def noisy(snr):
        out = []
        for x in clean:
            n = g.standard_normal(x.shape[0]).astype(np.float32)
            out.append(x + n * np.sqrt((x ** 2).mean() / (n ** 2).mean() / 10 ** (snr / 10)))
        return out

    counts, means = {}, {}
    for snr in (None, 20, 10, 0):
        words = [w for ws in _words(shipped, clean if snr is None else noisy(snr)) for w in ws]
        counts[snr], means[snr] = len(words), sum(w.confidence for w in words) / max(len(words), 1)
    assert counts[20] >= 0.7 * counts[None] > 0  # 20 dB: the words are still there...
    assert means[0] < means[20] and means[0] < means[None]  # ...and louder noise makes them less sure


def test_nbest_posteriors_of_hypotheses_no_score_tells_apart():
    from asr.confidence import nbest_posteriors
    from asr.decode import Word

    a, b = Word("one", 0.1, 0.3), Word("two", 0.1, 0.3)
    # every score -inf (the other head of a joint rescoring could say none of them): equal shares, not NaN
    assert nbest_posteriors([([a], float("-inf")), ([b], float("-inf"))]) == [0.5]
    assert nbest_posteriors([([a], 0.0), ([b], float("-inf"))]) == [1.0]
