"""Corruptions: exact SNR and level, the telephone band, rooms and codecs, each deterministic."""

import math

import pytest
import torch

from asr.augment import (SAMPLE_RATE, add_noise, babble, clip, coloured_noise, gain_to, narrowband, opus, rms_dbfs,
                         room, telephone)
from asr.features import load_audio as _load_audio
from conftest import TEST_DATA

CLIP = sorted(TEST_DATA.glob("*.opus"))[0]


def load_audio(path):
    """Training's augmentation works on torch tensors."""
    return torch.from_numpy(_load_audio(path))


def tone(hz: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return 0.5 * torch.sin(2 * math.pi * hz * t)


def power(x: torch.Tensor) -> float:
    return float(x.double().pow(2).mean())


def band_power(x: torch.Tensor, low: float, high: float) -> float:
    spectrum = torch.fft.rfft(x.double()).abs().pow(2)
    f = torch.fft.rfftfreq(x.numel(), 1 / SAMPLE_RATE)
    return float(spectrum[(f >= low) & (f < high)].sum())


@pytest.mark.parametrize("snr", [20.0, 5.0, 0.0, -5.0])
def test_add_noise_hits_the_snr_and_repeats_short_noise(snr):
    speech = load_audio(CLIP)
    noise = coloured_noise("white", 4000, seed=1)  # shorter than the speech: repeated
    mixed = add_noise(speech, noise, snr)
    assert mixed.shape == speech.shape
    assert 10 * math.log10(power(speech) / power(mixed - speech)) == pytest.approx(snr, abs=1e-3)


def test_coloured_noise_has_its_slope_and_seed():
    white, pink = coloured_noise("white", 160000, 3), coloured_noise("pink", 160000, 3)
    assert power(white) == pytest.approx(1.0, rel=1e-6) and power(pink) == pytest.approx(1.0, rel=1e-6)
    # white: power grows with bandwidth (16x from 100-200 Hz to 1.6-3.2 kHz); pink: the same in each octave
    assert band_power(white, 1600, 3200) / band_power(white, 100, 200) == pytest.approx(16, rel=0.15)
    assert band_power(pink, 1600, 3200) / band_power(pink, 100, 200) == pytest.approx(1, rel=0.15)
    assert torch.equal(coloured_noise("pink", 1000, 3), coloured_noise("pink", 1000, 3))
    assert not torch.equal(coloured_noise("pink", 1000, 3), coloured_noise("pink", 1000, 4))


def test_babble_sums_talkers_at_equal_level():
    a, b = tone(300, 0.5), 3 * tone(500, 0.25)
    out = babble([a, b], 16000)
    assert out.shape == (16000,)
    assert power(out) == pytest.approx(2.0, rel=0.05)  # two unit-power talkers, uncorrelated tones


def gain_db(corrupt, hz: float) -> float:
    """How much ``corrupt`` changes the power of a tone at ``hz`` (dB, the edges left out)."""
    x = tone(hz)
    return 10 * math.log10(power(corrupt(x)[2000:-2000]) / power(x[2000:-2000]))


@pytest.mark.parametrize("hz, low, high", [(1000, -3, 3), (2500, -3, 3), (80, None, -15), (5000, None, -15),
                                           (7000, None, -15)])
def test_telephone_keeps_the_voice_band_only(hz, low, high):
    assert (low is None or gain_db(telephone, hz) > low) and gain_db(telephone, hz) < high
    assert telephone(load_audio(CLIP)).shape == load_audio(CLIP).shape


# 8 kHz sampling: the whole band below its Nyquist frequency, low tones included (unlike a phone line)
@pytest.mark.parametrize("hz, low, high", [(80, -1, 1), (1000, -1, 1), (3000, -1, 1), (5000, None, -30),
                                           (7000, None, -30)])
def test_narrowband_keeps_everything_below_4_khz(hz, low, high):
    assert (low is None or gain_db(narrowband, hz) > low) and gain_db(narrowband, hz) < high
    assert narrowband(load_audio(CLIP)).shape == load_audio(CLIP).shape


def test_level_and_clipping():
    speech = load_audio(CLIP)
    assert rms_dbfs(gain_to(speech, -35.0)) == pytest.approx(-35.0, abs=1e-3)
    clipped = clip(speech, 12.0)
    assert clipped.abs().max() == 1.0 and (clipped.abs() == 1.0).float().mean() > 0.005


def test_opus_round_trip_keeps_length_and_most_of_the_signal():
    speech = load_audio(CLIP)
    coded = opus(speech, 0.95)
    assert coded.shape == speech.shape and not torch.equal(coded, speech)
    # Opus delays the signal a little; the decoded audio still follows the speech's envelope
    frames = lambda x: x.reshape(-1)[: x.numel() // 320 * 320].reshape(-1, 320).pow(2).mean(1).sqrt()
    assert torch.corrcoef(torch.stack([frames(speech), frames(coded)]))[0, 1] > 0.9


def test_room_reverberates_by_rt60_deterministically():
    pytest.importorskip("pyroomacoustics", reason="pyroomacoustics (pip install -e '.[test]') simulates rooms")
    impulse = torch.zeros(SAMPLE_RATE)
    impulse[100] = 1.0
    tails = {}
    for rt60 in (0.3, 0.6, 0.9):
        out = room(impulse, rt60, 2.0, seed=5)
        assert out.shape == impulse.shape and torch.equal(out, room(impulse, rt60, 2.0, seed=5))
        energy = out.double().pow(2)
        onset = int(energy.argmax())
        tails[rt60] = float(energy[onset + 800:].sum() / energy.sum())  # share after 50 ms
    assert 0.01 < tails[0.3] < tails[0.6] < tails[0.9]
    from pyroomacoustics.experimental import measure_rt60

    from asr.augment import room_impulse_response

    for rt60 in (0.3, 0.6, 0.9):  # the impulse response decays 60 dB in about rt60
        assert measure_rt60(room_impulse_response(rt60, 2.0, seed=5).numpy(), fs=SAMPLE_RATE) == pytest.approx(rt60, rel=0.15)
    assert not torch.equal(room(impulse, 0.3, 2.0, seed=5), room(impulse, 0.3, 2.0, seed=6))


def test_augment_config_says_when_rooms_cannot_be_simulated(monkeypatch):
    import importlib.util

    from asr.augment import AugmentConfig
    from asr.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyroomacoustics" else real(name, *a))
    with pytest.raises(ConfigError, match="pyroomacoustics, which is not installed"):
        AugmentConfig(copies=1, room=0.5)
    AugmentConfig(copies=1, noise=0.5)  # no room: no need for it
    AugmentConfig(copies=0, room=0.5)  # no copies: nothing is corrupted


def test_corrupt_randomly_draws_from_the_config_with_its_seed():
    from asr.augment import AugmentConfig, corrupt_randomly

    speech = load_audio(CLIP)
    everything = AugmentConfig(copies=1, room=1.0, noise=1.0, noise_kinds=("pink",), telephone=1.0, opus=1.0,
                               gain=1.0, clipping=1.0)
    x, done = corrupt_randomly(speech, everything, seed=3)
    assert [d.split()[0] for d in done] == ["room", "pink", "telephone", "opus", "gain", "clipping"]
    assert x.shape == speech.shape and x.abs().max() <= 1.0
    again, done_again = corrupt_randomly(speech, everything, seed=3)
    assert torch.equal(x, again) and done == done_again
    nothing, none_done = corrupt_randomly(speech, AugmentConfig(copies=1), seed=3)
    assert torch.equal(nothing, speech) and none_done == []
    # babble needs other talkers; without three it is pink noise
    _, done = corrupt_randomly(speech, AugmentConfig(copies=1, noise=1.0, noise_kinds=("babble",)), seed=1)
    assert done[0].startswith("pink")
    others = sorted(TEST_DATA.glob("*.opus"))
    _, done = corrupt_randomly(speech, AugmentConfig(copies=1, noise=1.0, noise_kinds=("babble",)), seed=1,
                               babble_audio=others)
    assert done[0].startswith("babble")


def test_narrowband_is_drawn_only_without_a_phone_line():
    from asr.augment import AugmentConfig, corrupt_randomly

    speech = load_audio(CLIP)
    _, done = corrupt_randomly(speech, AugmentConfig(copies=1, narrowband=1.0), seed=3)
    assert done == ["narrowband"]
    _, done = corrupt_randomly(speech, AugmentConfig(copies=1, telephone=1.0, narrowband=1.0), seed=3)
    assert done == ["telephone"]  # a phone line is narrowband already
    # narrowband 0 draws nothing for it, so a config written before the option existed corrupts its
    # copies as it did then: these are the draws of the code before narrowband (commit fb267e2)
    before = [["opus 0.94"], ["gain -32 dBFS"], ["opus 0.90"], ["gain -32 dBFS"], ["opus 0.90", "gain -21 dBFS"],
              ["opus 0.81", "gain -33 dBFS"]]
    assert [corrupt_randomly(speech, AugmentConfig(copies=1, opus=0.5, gain=0.5), seed=s)[1] for s in range(6)] == before
    from asr.errors import ConfigError

    with pytest.raises(ConfigError, match="narrowband"):
        AugmentConfig(narrowband=1.5)
