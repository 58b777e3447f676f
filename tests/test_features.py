import numpy as np
import pytest
import soundfile as sf
import torch

from asr.features import (HOP, MFCC, N_FFT, SAMPLE_RATE, WIN_LENGTH, AudioError, FeatureConfig, compute_features, load_audio,
                          num_frames, speed_perturb)
from conftest import TEST_DATA


def _tone(seconds=0.5, rate=SAMPLE_RATE, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def test_torchaudio_mfcc_matches_librosa():
    """Same parameters, same numbers: coefficients up to ~200 in size agree within 1e-3 (measured: 9e-5)."""
    librosa = pytest.importorskip("librosa")
    y = _tone(1.0)
    ours = MFCC(FeatureConfig(n_mfcc=13, n_mels=40, cmvn=False)).mfcc(torch.from_numpy(y)[None])[0].numpy()
    mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP,
                                         n_mels=40, center=True, pad_mode="constant", htk=False, window="hann", power=2.0)
    # librosa.feature.mfcc would clip at top_db=80 by default; we keep the full range (no clipping).
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=13, norm="ortho")
    assert ours.shape == ref.shape == (13, num_frames(len(y)))
    # The only differences are float32 rounding in the two FFT and DCT implementations.
    assert np.abs(ref).max() > 100 and np.abs(ours - ref).max() < 1e-3


def test_batch_equals_single():
    cfg = FeatureConfig()
    wavs = [torch.from_numpy(_tone(s, freq=f)) for s, f in [(0.5, 300), (0.83, 500), (0.31, 700)]]
    single = [compute_features(w, cfg) for w in wavs]
    padded = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    batch, lengths = MFCC(cfg)(padded, torch.tensor([len(w) for w in wavs]))
    for i, s in enumerate(single):
        assert lengths[i] == s.shape[0] == num_frames(len(wavs[i]))
        torch.testing.assert_close(batch[i, : lengths[i]], s, atol=1e-4, rtol=1e-4)
        assert (batch[i, lengths[i] :] == 0).all()


def test_batch_equals_single_with_deltas():
    cfg = FeatureConfig(deltas=True)
    wavs = [torch.from_numpy(_tone(s)) for s in (0.4, 0.7)]
    padded = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    batch, lengths = MFCC(cfg)(padded, torch.tensor([len(w) for w in wavs]))
    assert batch.shape[2] == cfg.dim == 120
    for i, w in enumerate(wavs):
        torch.testing.assert_close(batch[i, : lengths[i]], compute_features(w, cfg), atol=1e-4, rtol=1e-4)


def test_pcen_batch_equals_single():
    cfg = FeatureConfig(compression="pcen")
    wavs = [torch.from_numpy(_tone(s, freq=f)) for s, f in [(0.5, 300), (0.83, 500), (0.31, 700)]]
    padded = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    batch, lengths = MFCC(cfg)(padded, torch.tensor([len(w) for w in wavs]))
    for i, w in enumerate(wavs):
        torch.testing.assert_close(batch[i, : lengths[i]], compute_features(w, cfg), atol=1e-4, rtol=1e-4)
        assert (batch[i, lengths[i]:] == 0).all()


def test_pcen_is_librosas_pcen_with_the_smoother_started_settled():
    librosa = pytest.importorskip("librosa")
    import scipy.signal

    from asr.features import FRAME_SECONDS, PCEN_SCALE, PCEN_TIME_CONSTANT, pcen

    rng = np.random.default_rng(0)
    mags = np.abs(rng.standard_normal((2, 5, 120))) * np.logspace(-4, -1, 120)  # rising levels
    lengths = torch.tensor([120, 77])
    ours = pcen(torch.from_numpy(mags), lengths).numpy()
    t_frames = PCEN_TIME_CONSTANT / FRAME_SECONDS
    b = (np.sqrt(1 + 4 * t_frames ** 2) - 1) / (2 * t_frames ** 2)
    for i, n in enumerate(lengths.tolist()):
        s = mags[i, :, :n] * PCEN_SCALE
        zi = scipy.signal.lfilter_zi([b], [1, b - 1])[None, :] * s[:, :1]
        np.testing.assert_allclose(ours[i, :, :n], librosa.pcen(s, b=b, zi=zi), rtol=1e-9, atol=1e-9)
        assert (ours[i, :, n:] == 0).all()


def test_pcen_starts_in_its_steady_state_and_adapts_to_a_level_step():
    """A band of constant magnitude gives a constant output from the first frame (the smoother
    starts settled: librosa's own start would ramp for ~0.4 s); after a 20 dB step up it jumps,
    then decays back towards where it was as the smoother catches up (the gain adaptation)."""
    from asr.features import pcen

    mags = torch.full((1, 3, 300), 1e-3, dtype=torch.float64)
    mags[:, :, 150:] = 1e-2  # 20 dB louder from frame 150
    out = pcen(mags, torch.tensor([300]))[0]
    torch.testing.assert_close(out[:, :150], out[:, :1].expand(3, 150), atol=1e-9, rtol=0)
    steady, jump, late = out[0, 149].item(), out[0, 150].item(), out[0, 299].item()
    assert jump > 3 * steady  # the step is heard
    assert late < jump / 2 and abs(late - steady) < abs(jump - steady) / 4  # ...then divided out


def test_feature_cache_keys_made_before_compression_existed_still_match():
    assert FeatureConfig().key() == {"n_mfcc": 40, "n_mels": 40, "deltas": False, "cmvn": True}
    assert FeatureConfig(compression="pcen").key()["compression"] == "pcen"


def test_feature_config_rejects_an_unknown_compression():
    from asr.errors import ConfigError

    with pytest.raises(ConfigError, match="compression must be one of log, pcen, not 'cubic'"):
        FeatureConfig(compression="cubic")


def test_cmvn_normalises_each_coefficient():
    f = compute_features(torch.from_numpy(_tone(1.0)))
    torch.testing.assert_close(f.mean(0), torch.zeros(f.shape[1]), atol=1e-4, rtol=0)
    torch.testing.assert_close(f.std(0, unbiased=False), torch.ones(f.shape[1]), atol=1e-2, rtol=0)


def test_resample_and_downmix(tmp_path):
    y16 = _tone(0.5, SAMPLE_RATE)
    y8 = _tone(0.5, 8000)
    sf.write(tmp_path / "a8k.wav", y8, 8000)
    sf.write(tmp_path / "stereo.flac", np.stack([y16, y16], 1), SAMPLE_RATE)
    assert load_audio(tmp_path / "a8k.wav").shape == (SAMPLE_RATE // 2,)
    stereo = load_audio(tmp_path / "stereo.flac")
    assert stereo.shape == (len(y16),)
    np.testing.assert_allclose(stereo.numpy(), y16, atol=1e-4)  # FLAC is 16-bit


@pytest.mark.parametrize("make,problem", [
    (lambda p: None, "file not found"),
    (lambda p: p.write_bytes(b""), "file is empty"),
    (lambda p: p.write_text("this is not audio at all"), "not readable as audio"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "zero length"),
])
def test_bad_audio_names_file(tmp_path, make, problem):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(path) in str(e.value) and problem in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_scales_duration_and_pitch(factor):
    """Played 1.1x as fast, one second lasts 1/1.1 s and a 1 kHz tone becomes 1.1 kHz."""
    wav = torch.from_numpy(_tone(1.0, freq=1000.0))
    out = speed_perturb(wav, factor)
    assert abs(len(out) - SAMPLE_RATE / factor) <= 1
    spectrum = torch.fft.rfft(out * torch.hann_window(len(out)))
    peak_hz = int(spectrum.abs().argmax()) * SAMPLE_RATE / len(out)
    assert abs(peak_hz - 1000.0 * factor) < 5
    assert speed_perturb(wav, 1.0) is wav
    with pytest.raises(ValueError, match="positive"):
        speed_perturb(wav, 0.0)


@pytest.mark.parametrize("chunk", [1, 37, 160, 399, 1000, 16000, 10**6])
def test_streaming_mfcc_equals_offline_mfcc_for_any_chunk_size(chunk):
    from asr.features import StreamingMFCC

    config = FeatureConfig(cmvn=False)
    wav = load_audio(sorted(TEST_DATA.glob("*.opus"))[0])[:20077]  # not a whole number of hops
    offline = compute_features(wav, config)
    stream = StreamingMFCC(config)
    pieces = [stream.accept(wav[i:i + chunk]) for i in range(0, wav.numel(), chunk)]
    assert all(p.shape[1] == config.n_mfcc for p in pieces)
    # every frame comes out once its window is complete: at most N_FFT/2 samples after its centre
    seen = 0
    for k, p in enumerate(pieces):
        seen += p.shape[0]
        received = min((k + 1) * chunk, wav.numel())
        assert seen == min(max(0, (received + N_FFT // 2 - N_FFT) // HOP + 1), 1 + received // HOP)
    streamed = torch.cat(pieces + [stream.finish()])
    assert streamed.shape == offline.shape
    torch.testing.assert_close(streamed, offline, atol=1e-3, rtol=0)  # dB-scale MFCC, float32 FFTs in other batches


def test_streaming_mfcc_refuses_what_needs_the_future():
    from asr.features import StreamingMFCC

    with pytest.raises(ValueError, match="CMVN and deltas need future frames"):
        StreamingMFCC(FeatureConfig(cmvn=True))


def test_running_cmvn_without_prior_is_the_utterances_cmvn():
    from asr.features import DIGITAL_SILENCE_DB, FeatureStats, RunningCMVN, cmvn

    torch.manual_seed(0)
    feats = torch.randn(200, 4) * 3 + 7
    stats = FeatureStats((0.0,) * 4, (1.0,) * 4, (-1.0,) * 4, 1)
    norm = RunningCMVN(stats, prior_frames=0, n_mels=4)
    norm.update(feats[:120])
    norm.update(feats[120:])
    torch.testing.assert_close(norm(feats), cmvn(feats[None], torch.tensor([200]))[0], atol=1e-4, rtol=0)
    # a strong prior keeps the training statistics; digital silence becomes the quiet vector
    strong = RunningCMVN(FeatureStats((7.0,) * 4, (3.0,) * 4, (-1.5,) * 4, 1), prior_frames=1e9, n_mels=4)
    silent = torch.full((3, 4), DIGITAL_SILENCE_DB * 2.0)  # c0 = mean mel dB x sqrt(n_mels)
    strong.update(torch.cat([feats, silent]))
    out = strong(torch.cat([feats, silent]))
    torch.testing.assert_close(out[:200], (feats - 7) / 3, atol=1e-3, rtol=0)
    assert torch.equal(out[200:], torch.full((3, 4), -1.5))


def test_feature_statistics_are_those_of_the_frames_with_sound():
    from asr.features import feature_statistics

    torch.manual_seed(0)
    wavs = [0.1 * torch.randn(8000), torch.cat([torch.zeros(4000), 0.3 * torch.randn(8000)])]
    stats = feature_statistics(wavs)
    plain = MFCC(FeatureConfig(cmvn=False))
    frames = torch.cat([plain(w[None])[0][0] for w in wavs])
    heard = frames[frames[:, 0] > -99.9 * 40 ** 0.5]
    assert stats.frames == len(heard) < len(frames)  # the digital silence is left out
    torch.testing.assert_close(torch.tensor(stats.mean, dtype=torch.float64), heard.double().mean(0), atol=1e-3, rtol=0)
    torch.testing.assert_close(torch.tensor(stats.std, dtype=torch.float64), heard.double().std(0, correction=0), atol=1e-3, rtol=1e-4)
    assert stats.quiet[0] < 0  # the quietest tenth of normalised frames lies below the mean
