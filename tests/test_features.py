import numpy as np
import pytest
import soundfile as sf

from asr.features import (HOP, N_FFT, SAMPLE_RATE, WIN_LENGTH, AudioError, FeatureConfig, compute_features, load_audio,
                          mfcc, num_frames, resample, speed_perturb)
from conftest import TEST_DATA


def _tone(seconds=0.5, rate=SAMPLE_RATE, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def test_mfcc_matches_librosa():
    """Same parameters, same numbers: coefficients up to ~200 in size agree within 1e-3."""
    librosa = pytest.importorskip("librosa")
    y = _tone(1.0)
    ours = mfcc(y, FeatureConfig(n_mfcc=13, n_mels=40, cmvn=False)).T
    mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP,
                                         n_mels=40, center=True, pad_mode="constant", htk=False, window="hann", power=2.0)
    # librosa.feature.mfcc would clip at top_db=80 by default; we keep the full range (no clipping).
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=13, norm="ortho")
    assert ours.shape == ref.shape == (13, num_frames(len(y)))
    # The only differences are float32 rounding in the two FFT and DCT implementations.
    assert np.abs(ref).max() > 100 and np.abs(ours - ref).max() < 1e-3


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(cmvn=False), FeatureConfig(deltas=True),
                                    FeatureConfig(compression="pcen")], ids=["cmvn", "plain", "deltas", "pcen"])
def test_features_equal_torchaudios_on_real_audio(config):
    """The features training has always used (torchaudio's MFCC and compute_deltas, the torch
    CMVN and PCEN it was written with) and these numpy ones, on LibriSpeech clips."""
    torch = pytest.importorskip("torch")
    torchaudio = pytest.importorskip("torchaudio")
    from asr.features import AMIN, DIGITAL_SILENCE_DB, MIN_STATS_FRAMES, PCEN_BIAS, PCEN_EPS, PCEN_GAIN, PCEN_POWER

    transform = torchaudio.transforms.MFCC(
        sample_rate=SAMPLE_RATE, n_mfcc=config.n_mfcc, log_mels=False,
        melkwargs=dict(n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP, n_mels=config.n_mels, center=True,
                       pad_mode="constant", mel_scale="slaney", norm="slaney"))
    transform.amplitude_to_DB.top_db = None
    for path in sorted(TEST_DATA.glob("*.opus")):
        wav = load_audio(path)
        x = torch.from_numpy(wav)[None]
        with torch.no_grad():
            if config.compression == "pcen":
                power = transform.MelSpectrogram(x)[0].double().T  # (T, n_mels)
                c0 = (10 * torch.log10(power.clamp_min(AMIN))).mean(1) * config.n_mels ** 0.5
                e = power.sqrt() * 2.0 ** 31
                t_frames = 0.4 / 0.01
                b = (np.sqrt(1 + 4 * t_frames ** 2) - 1) / (2 * t_frames ** 2)
                smooth = torchaudio.functional.lfilter((e - e[:1]).T, torch.tensor([1.0, b - 1.0], dtype=e.dtype),
                                                       torch.tensor([b, 0.0], dtype=e.dtype), clamp=False).T + e[:1]
                out = (e / (PCEN_EPS + smooth) ** PCEN_GAIN + PCEN_BIAS) ** PCEN_POWER - PCEN_BIAS ** PCEN_POWER
                ref = (out.float() @ transform.dct_mat)
            else:
                ref = transform(x)[0].T
                c0 = ref[:, 0]
            if config.deltas:
                d1 = torchaudio.functional.compute_deltas(ref.T).T
                ref = torch.cat([ref, d1, torchaudio.functional.compute_deltas(d1.T).T], 1)
            if config.cmvn:
                sound = c0 > DIGITAL_SILENCE_DB * config.n_mels ** 0.5
                use = ref[sound] if int(sound.sum()) >= MIN_STATS_FRAMES else ref
                ref = (ref - use.mean(0)) / (use.var(0, unbiased=False) + 1e-5).sqrt()
        ours = compute_features(wav, config)
        assert ours.shape == tuple(ref.shape) and ours.dtype == np.float32
        scale = 1.0 if config.cmvn else float(ref.abs().max())  # MFCC of ~400 before normalising
        np.testing.assert_allclose(ours, ref.numpy(), atol=2e-4 * scale, rtol=0)


def test_resample_equals_torchaudios():
    torch = pytest.importorskip("torch")
    torchaudio = pytest.importorskip("torchaudio")
    x = np.random.default_rng(0).standard_normal(50_000).astype(np.float32) * 0.1
    for rate in (8000, 11025, 22050, 44100, 48000):
        ours = resample(x[:rate], rate, SAMPLE_RATE)
        ref = torchaudio.functional.resample(torch.from_numpy(x[:rate]), rate, SAMPLE_RATE).numpy()
        assert ours.shape == ref.shape == (SAMPLE_RATE,)
        np.testing.assert_allclose(ours, ref, atol=5e-5, rtol=0)
    assert resample(x, SAMPLE_RATE, SAMPLE_RATE) is x


def test_deltas_are_the_five_frame_regression():
    from asr.features import deltas

    x = np.arange(12, dtype=np.float64).reshape(6, 2) ** 2
    d = deltas(x)
    p = np.concatenate([x[:1], x[:1], x, x[-1:], x[-1:]])  # the ends repeated
    expect = sum(k * p[2 + k:2 + k + 6] for k in (-2, -1, 1, 2)) / 10
    np.testing.assert_allclose(d, expect)


def test_pcen_is_librosas_pcen_with_the_smoother_started_settled():
    librosa = pytest.importorskip("librosa")
    import scipy.signal

    from asr.features import FRAME_SECONDS, PCEN_SCALE, PCEN_TIME_CONSTANT, pcen

    rng = np.random.default_rng(0)
    mags = np.abs(rng.standard_normal((5, 120))) * np.logspace(-4, -1, 120)  # rising levels
    ours = pcen(mags.T).T
    t_frames = PCEN_TIME_CONSTANT / FRAME_SECONDS
    b = (np.sqrt(1 + 4 * t_frames ** 2) - 1) / (2 * t_frames ** 2)
    s = mags * PCEN_SCALE
    zi = scipy.signal.lfilter_zi([b], [1, b - 1])[None, :] * s[:, :1]
    np.testing.assert_allclose(ours, librosa.pcen(s, b=b, zi=zi), rtol=1e-9, atol=1e-9)


def test_pcen_starts_in_its_steady_state_and_adapts_to_a_level_step():
    """A band of constant magnitude gives a constant output from the first frame (the smoother
    starts settled: librosa's own start would ramp for ~0.4 s); after a 20 dB step up it jumps,
    then decays back towards where it was as the smoother catches up (the gain adaptation)."""
    from asr.features import pcen

    mags = np.full((300, 3), 1e-3)
    mags[150:] = 1e-2  # 20 dB louder from frame 150
    out = pcen(mags)
    np.testing.assert_allclose(out[:150], np.broadcast_to(out[:1], (150, 3)), atol=1e-9, rtol=0)
    steady, jump, late = out[149, 0], out[150, 0], out[299, 0]
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
    f = compute_features(_tone(1.0))
    np.testing.assert_allclose(f.mean(0), np.zeros(f.shape[1]), atol=1e-4)
    np.testing.assert_allclose(f.std(0), np.ones(f.shape[1]), atol=1e-2)


def test_digital_silence_is_left_out_of_the_statistics_and_filled_with_a_quiet_frame():
    wav = np.concatenate([np.zeros(8000, np.float32), _tone(1.0)])
    f = compute_features(wav)
    silent, heard = f[:45], f[55:]
    # the tone's own statistics (the frames at the edge hear both); with the silence in them,
    # the tone's c0 would sit a standard deviation above 0
    np.testing.assert_allclose(heard.mean(0), np.zeros(f.shape[1]), atol=0.2)
    assert np.allclose(silent, silent[0]) and silent[0, 0] <= np.quantile(heard[:, 0], 0.1)


def test_resample_and_downmix(tmp_path):
    y16 = _tone(0.5, SAMPLE_RATE)
    y8 = _tone(0.5, 8000)
    sf.write(tmp_path / "a8k.wav", y8, 8000)
    sf.write(tmp_path / "stereo.flac", np.stack([y16, y16], 1), SAMPLE_RATE)
    assert load_audio(tmp_path / "a8k.wav").shape == (SAMPLE_RATE // 2,)
    stereo = load_audio(tmp_path / "stereo.flac")
    assert stereo.shape == (len(y16),) and stereo.dtype == np.float32
    np.testing.assert_allclose(stereo, y16, atol=1e-4)  # FLAC is 16-bit


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
    wav = _tone(1.0, freq=1000.0)
    out = speed_perturb(wav, factor)
    assert abs(len(out) - SAMPLE_RATE / factor) <= 1
    spectrum = np.fft.rfft(out * np.hanning(len(out)))
    peak_hz = int(np.abs(spectrum).argmax()) * SAMPLE_RATE / len(out)
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
    pieces = [stream.accept(wav[i:i + chunk]) for i in range(0, wav.size, chunk)]
    assert all(p.shape[1] == config.n_mfcc for p in pieces)
    # every frame comes out once its window is complete: at most N_FFT/2 samples after its centre
    seen = 0
    for k, p in enumerate(pieces):
        seen += p.shape[0]
        received = min((k + 1) * chunk, wav.size)
        assert seen == min(max(0, (received + N_FFT // 2 - N_FFT) // HOP + 1), 1 + received // HOP)
    streamed = np.concatenate(pieces + [stream.finish()])
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-3, rtol=0)  # dB-scale MFCC, float32 FFTs of other lengths


def test_streaming_mfcc_refuses_what_needs_the_future():
    from asr.features import StreamingMFCC

    with pytest.raises(ValueError, match="CMVN and deltas need future frames"):
        StreamingMFCC(FeatureConfig(cmvn=True))


def test_running_cmvn_without_prior_is_the_utterances_cmvn():
    from asr.features import DIGITAL_SILENCE_DB, FeatureStats, RunningCMVN, cmvn

    rng = np.random.default_rng(0)
    feats = (rng.standard_normal((200, 4)) * 3 + 7).astype(np.float32)
    stats = FeatureStats((0.0,) * 4, (1.0,) * 4, (-1.0,) * 4, 1)
    norm = RunningCMVN(stats, prior_frames=0, n_mels=4)
    norm.update(feats[:120])
    norm.update(feats[120:])
    np.testing.assert_allclose(norm(feats), cmvn(feats), atol=1e-4, rtol=0)
    # a strong prior keeps the training statistics; digital silence becomes the quiet vector
    strong = RunningCMVN(FeatureStats((7.0,) * 4, (3.0,) * 4, (-1.5,) * 4, 1), prior_frames=1e9, n_mels=4)
    silent = np.full((3, 4), DIGITAL_SILENCE_DB * 2.0, dtype=np.float32)  # c0 = mean mel dB x sqrt(n_mels)
    strong.update(np.concatenate([feats, silent]))
    out = strong(np.concatenate([feats, silent]))
    np.testing.assert_allclose(out[:200], (feats - 7) / 3, atol=1e-3, rtol=0)
    assert (out[200:] == -1.5).all()


def test_feature_statistics_are_those_of_the_frames_with_sound():
    from asr.features import feature_statistics

    rng = np.random.default_rng(0)
    wavs = [(0.1 * rng.standard_normal(8000)).astype(np.float32),
            np.concatenate([np.zeros(4000), 0.3 * rng.standard_normal(8000)]).astype(np.float32)]
    stats = feature_statistics(wavs)
    frames = np.concatenate([mfcc(w, FeatureConfig(cmvn=False)) for w in wavs])
    heard = frames[frames[:, 0] > -99.9 * 40 ** 0.5].astype(np.float64)
    assert stats.frames == len(heard) < len(frames)  # the digital silence is left out
    np.testing.assert_allclose(stats.mean, heard.mean(0), atol=1e-3, rtol=0)
    np.testing.assert_allclose(stats.std, heard.std(0), atol=1e-3, rtol=1e-4)
    assert stats.quiet[0] < 0  # the quietest tenth of normalised frames lies below the mean
