"""Audio loading and MFCC features, in numpy: the one definition of the features, for training and recognition.

Every recording is brought to 16 kHz mono float32 and turned into MFCC frames of
25 ms every 10 ms. Normalisation is per utterance (mean 0, variance 1 per
coefficient), so no global statistics travel with a model. The arithmetic is
torchaudio's (``MFCC`` with these parameters, ``resample``, ``compute_deltas``), written
out so that recognition needs no torch; ``tests/test_features.py`` holds the two equal.
"""

from __future__ import annotations

import errno
import functools
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import ConfigError, UserError

SAMPLE_RATE = 16000  # Hz: LibriSpeech's rate; all input is resampled to it
WIN_LENGTH = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms at 16 kHz
N_FFT = 512  # next power of two above WIN_LENGTH
FRAME_SECONDS = HOP / SAMPLE_RATE  # 0.01 s per feature frame
# A recording sampled at this rate or below holds nothing above 4 kHz (telephone, IVR, FSDD's
# digits): a bundle with a narrow-band model hears it with that model (Bundle.narrowband)
NARROWBAND_RATE = 8000  # Hz
# Bumped whenever the features computed from the same audio and FeatureConfig change, so that
# feature caches and shards (keyed on it) are recomputed: 2 = CMVN statistics leave out digital silence.
FEATURES_VERSION = 2


class AudioError(UserError):
    """Raised for unreadable or unusable audio; the message names the file and the problem."""


COMPRESSIONS = ("log", "pcen")


@dataclass(frozen=True)
class FeatureConfig:
    n_mfcc: int = 40
    n_mels: int = 40
    deltas: bool = False  # append first and second differences (x3 dimensions)
    cmvn: bool = True  # per-utterance mean/variance normalisation
    # How mel energies are compressed before the DCT. "log": dB of the mel power (classic MFCC).
    # "pcen": per-channel energy normalisation (Wang et al. 2017, librosa.pcen) of the mel
    # magnitudes, which divides each band by its own recent level (a 0.4 s smoother) before a
    # square-root compression, meant to divide out part of stationary noise and a room's tail
    # (measured against "log" in RESULTS.md, Robustness).
    compression: str = "log"

    def __post_init__(self):
        if self.compression not in COMPRESSIONS:
            raise ConfigError(f"features.compression must be one of {', '.join(COMPRESSIONS)}, "
                              f"not {self.compression!r}")

    @property
    def dim(self) -> int:
        return self.n_mfcc * (3 if self.deltas else 1)

    def key(self) -> dict:
        """The fields, for the keys of feature caches and shards: ``compression`` only where it is
        not "log", so that caches written before it existed (log-mel, the same features) still match."""
        return {k: v for k, v in self.__dict__.items() if not (k == "compression" and v == "log")}


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, start: float = 0.0,
               stop: float | None = None) -> np.ndarray:
    """Read any file soundfile reads; return mono float32 samples ``(num_samples,)`` at ``sample_rate``.

    ``start``/``stop`` (seconds) read only that part of the file, so a long recording can be
    processed window by window in bounded memory. Raises :class:`AudioError` naming the file
    for a missing, empty, corrupt or zero-length file, or one with non-finite samples.
    """
    path = _check_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            _check_complete(f, path)
            rate = f.samplerate
            first = int(round(start * rate))
            if first:
                f.seek(min(first, f.frames))
            count = -1 if stop is None else max(0, int(round(stop * rate)) - first)
            total = f.frames  # as the header says
            promised = max(0, total - min(first, total)) if count < 0 else min(count, max(0, total - first))
            samples = f.read(count, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not readable as audio ({_short(e)})") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: audio has zero length" + (f" after {start:.2f} s" if start else ""))
    if samples.shape[0] < promised:  # libsndfile returns what is there: a cut-off WAV reads as a short one
        raise AudioError(f"{path}: truncated: its header promises {total / rate:.2f} s of audio, the file holds "
                         f"{(first + samples.shape[0]) / rate:.2f} s")
    return prepare_samples(samples, rate, str(path), sample_rate)


def prepare_samples(samples: np.ndarray, rate: int, name: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``(frames, channels)`` float samples at ``rate`` Hz -> mono ``(N,)`` float32 at ``sample_rate``.

    Raises :class:`AudioError` naming ``name`` (a file, or "samples" for audio in memory) for
    NaN or infinite samples, or audio shorter than one analysis window.
    """
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if samples.shape[0] * sample_rate < WIN_LENGTH * rate:
        raise AudioError(f"{name}: audio too short ({samples.shape[0]} samples at {rate} Hz): "
                         f"under one {1000 * WIN_LENGTH / SAMPLE_RATE:.0f} ms analysis window")
    wav = np.asarray(samples, dtype=np.float32).mean(axis=1, dtype=np.float32)  # down-mix -> (frames,)
    if rate != sample_rate:
        wav = resample(wav, rate, sample_rate)
    return np.ascontiguousarray(wav)


def as_numpy(samples) -> np.ndarray:
    """Samples as a numpy array: an array, a list, or a torch tensor (read through its own
    ``numpy()``, so that torch is not imported here)."""
    if hasattr(samples, "detach") and hasattr(samples, "numpy"):
        return samples.detach().cpu().numpy()
    return np.asarray(samples)


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioError(f"{path}: broken symbolic link (to {os.readlink(path)})") from None
        raise AudioError(f"{path}: file not found") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise AudioError(f"{path}: symbolic link loop") from None
        raise AudioError(f"{path}: cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if st.st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        open(path, "rb").close()
    except OSError as e:  # typically: no read permission
        raise AudioError(f"{path}: cannot be read ({e.strerror.lower()})") from None
    return path


def audio_info(path: str | Path) -> tuple[float, int]:
    """Duration (seconds) and sample rate from the file header, or :class:`AudioError` naming the file."""
    path = _check_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            _check_complete(f, path)
            frames, rate = f.frames, f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not readable as audio ({_short(e)})") from None
    if frames <= 0:
        raise AudioError(f"{path}: audio has zero length")
    return frames / rate, rate


def _check_complete(f: sf.SoundFile, path: Path) -> None:
    """A WAV/AIFF file cut off mid-write: its data chunk promises more bytes than the file holds.
    libsndfile reads what is there without complaint and only notes it in its header dump."""
    m = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", f.extra_info, re.MULTILINE)
    if m and int(m.group(2)) < int(m.group(1)):
        raise AudioError(f"{path}: truncated: its header promises {int(m.group(1))} bytes of audio data, "
                         f"the file holds {int(m.group(2))}")


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]


def num_frames(num_samples: int) -> int:
    """Feature frames for ``num_samples`` samples (centred STFT: one frame per hop, plus one)."""
    return 1 + num_samples // HOP


# -- resampling ---------------------------------------------------------------------------------

RESAMPLE_ZEROS = 6  # zero crossings of the windowed sinc on each side (torchaudio's lowpass_filter_width)
RESAMPLE_ROLLOFF = 0.99  # the low-pass cut-off as a fraction of the lower Nyquist rate, against aliasing


@functools.lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int) -> tuple[np.ndarray, int]:
    """The polyphase kernels ``(new, 2 * width + orig)`` from ``orig`` to ``new`` samples (both
    divided by their gcd) and the reach ``width`` in input samples: a Hann-windowed sinc low-pass
    at ``RESAMPLE_ROLLOFF`` of the lower rate's Nyquist frequency, one phase per output sample."""
    base = min(orig, new) * RESAMPLE_ROLLOFF
    width = math.ceil(RESAMPLE_ZEROS * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig
    t = (np.arange(0, -new, -1, dtype=np.float64)[:, None] / new + idx) * base
    t = np.clip(t, -RESAMPLE_ZEROS, RESAMPLE_ZEROS)
    window = np.cos(t * math.pi / RESAMPLE_ZEROS / 2) ** 2
    t *= math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.where(t == 0, 1.0, np.sin(t) / t)
    return (sinc * window * (base / orig)).astype(np.float32), width


def resample(wav: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """``(N,)`` float32 samples at ``orig_rate`` Hz -> ``(ceil(N * new_rate / orig_rate),)`` at ``new_rate``:
    band-limited sinc interpolation, the arithmetic of ``torchaudio.functional.resample``'s default."""
    if orig_rate == new_rate:
        return wav
    g = math.gcd(int(orig_rate), int(new_rate))
    orig, new = int(orig_rate) // g, int(new_rate) // g
    kernel, width = _sinc_kernel(orig, new)
    padded = np.pad(np.asarray(wav, dtype=np.float32), (width, width + orig))
    # output sample n * new + j is kernel j applied to the input from n * orig - width on
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::orig]
    out = (frames @ kernel.T).reshape(-1)
    return out[:math.ceil(new * len(wav) / orig)]


# -- MFCC ---------------------------------------------------------------------------------------

AMIN = 1e-10  # power floor before dB: 10 * log10(1e-10) = -100 dB is digital silence
DIGITAL_SILENCE_DB = -99.9  # mean mel power in dB at or below which a frame is digital silence (floor: -100)
MIN_STATS_FRAMES = 10  # fewer frames with sound than this: the statistics take every frame


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear to 1 kHz, logarithmic above."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    f = np.asarray(f, dtype=np.float64)
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=8)
def _mfcc_matrices(n_mels: int, n_mfcc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The analysis window ``(N_FFT,)`` (periodic Hann of WIN_LENGTH, centred), the mel filterbank
    ``(N_FFT // 2 + 1, n_mels)`` (triangles on the slaney scale, slaney area normalisation) and
    the orthonormal DCT-II ``(n_mels, n_mfcc)``."""
    hann = 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)
    left = (N_FFT - WIN_LENGTH) // 2
    window = np.zeros(N_FFT)
    window[left:left + WIN_LENGTH] = hann
    freqs = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    f_pts = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    slopes = f_pts[None, :] - freqs[:, None]  # (n_freqs, n_mels + 2)
    f_diff = np.diff(f_pts)
    down, up = -slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up)) * (2.0 / (f_pts[2:] - f_pts[:-2]))[None, :]
    n, k = np.arange(n_mels), np.arange(n_mfcc)[:, None]
    dct = np.cos(math.pi / n_mels * (n + 0.5) * k)  # (n_mfcc, n_mels)
    dct[0] *= 1 / math.sqrt(2.0)
    dct *= math.sqrt(2.0 / n_mels)
    return window.astype(np.float32), fb.astype(np.float32), dct.T.astype(np.float32)


def _frames(padded: np.ndarray) -> np.ndarray:
    """``(T, N_FFT)`` analysis frames every HOP samples of already padded samples."""
    return np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]


def mel_power(wav: np.ndarray, n_mels: int, center: bool = True) -> np.ndarray:
    """``(N,)`` 16 kHz samples -> mel power ``(T, n_mels)``, ``T = 1 + N // HOP`` (centred:
    zero padding of N_FFT / 2 at both ends), else one frame per complete N_FFT window."""
    window, fb, _ = _mfcc_matrices(n_mels, 1)
    x = np.asarray(wav, dtype=np.float32)
    if center:
        x = np.pad(x, (N_FFT // 2, N_FFT // 2))
    spectrum = np.fft.rfft(_frames(x) * window, axis=-1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    return power @ fb


def mfcc(wav: np.ndarray, config: "FeatureConfig", center: bool = True) -> np.ndarray:
    """Plain MFCC ``(T, n_mfcc)`` of 16 kHz samples ``(N,)``: mel power in dB (floor -100 dB, no
    top clamp, so an utterance's features do not depend on its loudest frame), then the DCT."""
    _, _, dct = _mfcc_matrices(config.n_mels, config.n_mfcc)
    db = 10.0 * np.log10(np.maximum(mel_power(wav, config.n_mels, center), AMIN))
    return (db @ dct).astype(np.float32)


def deltas(x: np.ndarray) -> np.ndarray:
    """First differences of ``(T, D)`` over time, a 5-frame regression with the ends repeated:
    ``d[t] = sum_k k * x[t + k] / 10`` for ``k = -2..2``."""
    p = np.pad(x, ((2, 2), (0, 0)), mode="edge")
    T = x.shape[0]
    return ((p[4:T + 4] - p[0:T]) * 2 + (p[3:T + 3] - p[1:T + 1])) / 10.0


PCEN_TIME_CONSTANT = 0.4  # s: the smoother's memory (librosa's default; 40 frames at 10 ms)
PCEN_SCALE = 2.0 ** 31  # float samples in [-1, 1] scaled as 32-bit integers, the range PCEN's constants were set for
PCEN_GAIN, PCEN_BIAS, PCEN_POWER, PCEN_EPS = 0.98, 2.0, 0.5, 1e-6  # librosa.pcen's defaults (Wang et al. 2017)


def pcen(magnitudes: np.ndarray) -> np.ndarray:
    """Per-channel energy normalisation of mel magnitudes ``(T, n_mels)`` (float64 out), as ``librosa.pcen``
    computes it with its default constants: ``(E / (eps + M)^gain + bias)^power - bias^power``,
    where ``M`` is ``E`` smoothed over time by a one-pole low-pass filter.

    The smoother starts in its steady state for each band's first frame (librosa's default starts
    it from a level of 1, which leaves the first 0.4 s of every utterance unnormalised). It runs
    forward in time only.
    """
    t_frames = PCEN_TIME_CONSTANT / FRAME_SECONDS
    b = (math.sqrt(1 + 4 * t_frames ** 2) - 1) / (2 * t_frames ** 2)  # the smoother's coefficient, as librosa derives it
    e = magnitudes.astype(np.float64) * PCEN_SCALE
    smooth = np.empty_like(e)
    m = e[0] if len(e) else None
    for t in range(e.shape[0]):  # M[t] = (1 - b) M[t-1] + b E[t], M[-1] = E[0]
        m = (1 - b) * m + b * e[t]
        smooth[t] = m
    return (e / (PCEN_EPS + smooth) ** PCEN_GAIN + PCEN_BIAS) ** PCEN_POWER - PCEN_BIAS ** PCEN_POWER


def cmvn(feats: np.ndarray, use: np.ndarray | None = None, eps: float = 1e-5) -> np.ndarray:
    """Mean/variance normalisation of one utterance's ``(T, D)``; the statistics come from the
    frames where ``use`` ``(T,)`` is true, if there are at least ``MIN_STATS_FRAMES`` of them,
    else from all its frames."""
    chosen = feats if use is None or int(use.sum()) < MIN_STATS_FRAMES else feats[use]
    mean = chosen.mean(0, keepdims=True)
    var = ((chosen - mean) ** 2).mean(0, keepdims=True)
    return ((feats - mean) / np.sqrt(var + eps)).astype(np.float32)


def _quiet_vector(normalised: np.ndarray) -> np.ndarray:
    """The mean of the quietest tenth (by c0) of normalised frames ``(T, D)``: a pause as it sounds."""
    c0 = normalised[:, 0]
    return normalised[c0 <= np.quantile(c0, 0.1)].mean(0)


def _fill_silence(feats: np.ndarray, sound: np.ndarray) -> np.ndarray:
    """Normalised ``(T, D)`` features with each frame of digital silence replaced by the mean
    of the quietest tenth of the utterance's frames with sound (by c0): a pause as it sounds in
    this recording. Digital silence itself lies far below anything the model was trained on."""
    if int(sound.sum()) < MIN_STATS_FRAMES or bool(sound.all()):
        return feats
    out = feats.copy()
    out[~sound] = _quiet_vector(feats[sound])
    return out


def compute_features(wav: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Features of one 16 kHz waveform ``(samples,)`` -> ``(frames, dim)`` float32."""
    if config.compression == "pcen":
        power = mel_power(wav, config.n_mels)
        _, _, dct = _mfcc_matrices(config.n_mels, config.n_mfcc)
        # c0 as the log path computes it (mean mel dB x sqrt(n_mels)), for the silence test below
        c0 = (10.0 * np.log10(np.maximum(power, AMIN))).mean(1) * config.n_mels ** 0.5
        feats = (pcen(np.sqrt(power)).astype(np.float32) @ dct).astype(np.float32)
    else:
        feats = mfcc(wav, config)
        c0 = feats[:, 0]
    if config.deltas:
        d1 = deltas(feats)
        feats = np.concatenate([feats, d1, deltas(d1)], axis=1).astype(np.float32)
    if config.cmvn:
        # Frames of digital silence (every mel band at the dB floor) say nothing about the
        # recording's level: leave them out of the statistics, or a file that is mostly silence
        # would squash its speech into a corner of the feature space.
        sound = c0 > DIGITAL_SILENCE_DB * config.n_mels ** 0.5  # c0 = mean mel dB x sqrt(n_mels)
        feats = _fill_silence(cmvn(feats, sound), sound)
    return feats


class StreamingMFCC:
    """MFCC of audio that arrives in chunks: the same frames :func:`mfcc` computes from all the
    samples at once, each as soon as its window is complete.

    Offline, the STFT is centred: frame ``t`` covers samples ``t*HOP - N_FFT/2 ...
    t*HOP + N_FFT/2`` of the signal zero-padded by ``N_FFT/2`` at both ends. Here the start's
    padding is there from the beginning, a frame is computed once the samples under it have
    come, and :meth:`finish` adds the end's padding for the last frames. So a frame lags its
    centre by ``N_FFT/2`` samples (16 ms), whatever the chunk size.
    """

    PAD = N_FFT // 2

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        if config.cmvn or config.deltas:
            raise ValueError("StreamingMFCC computes plain MFCC: per-utterance CMVN and deltas need future frames")
        self.config = config
        self.pending = np.zeros(self.PAD, dtype=np.float32)  # samples not yet behind every frame that needs them
        self.samples = 0  # samples accepted
        self.frames = 0  # frames given out

    def _frames(self, upto: int) -> np.ndarray:
        """Frames ``self.frames .. upto - 1`` ``(n, n_mfcc)`` from the pending samples, which start at frame ``self.frames``."""
        n = upto - self.frames
        if n <= 0:
            return np.zeros((0, self.config.n_mfcc), dtype=np.float32)
        out = mfcc(self.pending[: (n - 1) * HOP + N_FFT], self.config, center=False)
        self.pending = self.pending[n * HOP:]
        self.frames = upto
        return out

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """16 kHz mono ``(samples,)`` -> the frames ``(n, n_mfcc)`` now complete (n may be 0)."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.pending = np.concatenate([self.pending, samples])
        self.samples += samples.size
        # frame t is complete when padded samples up to t*HOP + N_FFT have come (PAD of them are the padding)
        complete = max(0, (self.PAD + self.samples - N_FFT) // HOP + 1)
        return self._frames(min(complete, num_frames(self.samples)))

    def finish(self) -> np.ndarray:
        """The last frames ``(n, n_mfcc)``, with the end's zero padding; the stream is then over."""
        self.pending = np.concatenate([self.pending, np.zeros(self.PAD + N_FFT, dtype=np.float32)])
        return self._frames(num_frames(self.samples))


@dataclass(frozen=True)
class FeatureStats:
    """What per-utterance CMVN does on average over a training set, for a stream that cannot
    wait for the utterance's end: the mean and standard deviation of its MFCC (frames with
    sound), and the normalised vector that fills digital silence (see :func:`_fill_silence`)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    quiet: tuple[float, ...]
    frames: int  # how many frames with sound the statistics came from

    def to_json(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "quiet": list(self.quiet), "frames": self.frames}

    @classmethod
    def from_json(cls, d: dict) -> "FeatureStats":
        return cls(tuple(d["mean"]), tuple(d["std"]), tuple(d["quiet"]), int(d["frames"]))


def feature_statistics(wavs, config: FeatureConfig = FeatureConfig()) -> FeatureStats:
    """:class:`FeatureStats` of 16 kHz waveforms ``(samples,)`` (an iterable), plain MFCC as
    ``config`` (which must normalise per utterance) computes them before its CMVN."""
    if not config.cmvn or config.deltas or config.compression != "log":
        raise ConfigError("feature statistics are for models with per-utterance CMVN of log-mel MFCC, no deltas")
    total, squares, count, fills = np.zeros(config.n_mfcc), 0.0, 0, []
    for wav in wavs:
        f = mfcc(wav, config)
        heard = f[f[:, 0] > DIGITAL_SILENCE_DB * config.n_mels ** 0.5].astype(np.float64)
        total, squares, count = total + heard.sum(0), squares + (heard ** 2).sum(0), count + heard.shape[0]
        if heard.shape[0] >= MIN_STATS_FRAMES:
            fills.append(_quiet_vector(cmvn(heard.astype(np.float32))))
    if not count or not fills:
        raise ConfigError("feature statistics need audio with sound in it")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 1e-10))
    quiet = np.mean(fills, axis=0)
    return FeatureStats(tuple(mean.tolist()), tuple(std.tolist()), tuple(quiet.tolist()), count)


class RunningCMVN:
    """Per-utterance CMVN for a stream: mean and variance of the frames with sound so far,
    starting from training statistics (:class:`FeatureStats`) that count as ``prior_frames``
    frames, so that the first second is normalised sensibly and a long stream by its own
    statistics. Frames of digital silence are left out of the statistics and become the
    training set's quiet vector, as :func:`compute_features` fills them."""

    def __init__(self, stats: FeatureStats, prior_frames: float, n_mels: int):
        mean, std = np.array(stats.mean, dtype=np.float64), np.array(stats.std, dtype=np.float64)
        self.count = float(prior_frames)
        self.sum = mean * self.count
        self.squares = (std ** 2 + mean ** 2) * self.count
        self.quiet = np.array(stats.quiet, dtype=np.float32)
        self.silence_floor = DIGITAL_SILENCE_DB * n_mels ** 0.5  # c0 of a frame of digital silence

    def update(self, feats: np.ndarray) -> None:
        """Add plain MFCC frames ``(n, n_mfcc)`` to the statistics."""
        heard = feats[feats[:, 0] > self.silence_floor].astype(np.float64)
        self.count += heard.shape[0]
        self.sum += heard.sum(0)
        self.squares += (heard ** 2).sum(0)

    def __call__(self, feats: np.ndarray, eps: float = 1e-5) -> np.ndarray:
        """Plain MFCC frames ``(n, n_mfcc)`` normalised by the statistics so far."""
        mean = self.sum / self.count
        var = np.maximum(self.squares / self.count - mean ** 2, 0)
        out = ((feats.astype(np.float64) - mean) / np.sqrt(var + eps)).astype(np.float32)
        silent = feats[:, 0] <= self.silence_floor
        if silent.any():
            out[silent] = self.quiet
        return out


def speed_perturb(wav: np.ndarray, factor: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Play ``wav`` ``(samples,)`` ``factor`` times as fast: tempo and pitch both change (Kaldi's speed perturbation).

    Resampling from ``sample_rate * factor`` to ``sample_rate`` Hz gives ``len(wav) / factor``
    samples that, read at ``sample_rate``, last ``1 / factor`` as long.
    """
    if factor == 1.0:
        return wav
    if factor <= 0:
        raise ConfigError(f"speed factor must be positive, not {factor}")
    return resample(wav, int(round(sample_rate * factor)), sample_rate)


def file_features(path: str | Path, config: FeatureConfig = FeatureConfig(), speed: float = 1.0) -> np.ndarray:
    """Load ``path`` (played ``speed`` times as fast) and return its features ``(frames, dim)``."""
    return compute_features(speed_perturb(load_audio(path), speed), config)
