"""Audio loading and MFCC features.

Every recording is brought to 16 kHz mono float32 and turned into MFCC frames of
25 ms every 10 ms. Normalisation is per utterance (mean 0, variance 1 per
coefficient), so no global statistics travel with a model.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from .errors import ConfigError, UserError

SAMPLE_RATE = 16000  # Hz: LibriSpeech's rate; all input is resampled to it
WIN_LENGTH = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms at 16 kHz
N_FFT = 512  # next power of two above WIN_LENGTH
FRAME_SECONDS = HOP / SAMPLE_RATE  # 0.01 s per feature frame
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
               stop: float | None = None) -> torch.Tensor:
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


def prepare_samples(samples: np.ndarray, rate: int, name: str, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``(frames, channels)`` float samples at ``rate`` Hz -> mono ``(N,)`` float32 at ``sample_rate``.

    Raises :class:`AudioError` naming ``name`` (a file, or "samples" for audio in memory) for
    NaN or infinite samples, or audio shorter than one analysis window.
    """
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if samples.shape[0] * sample_rate < WIN_LENGTH * rate:
        raise AudioError(f"{name}: audio too short ({samples.shape[0]} samples at {rate} Hz): "
                         f"under one {1000 * WIN_LENGTH / SAMPLE_RATE:.0f} ms analysis window")
    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).mean(dim=1)  # down-mix -> (frames,)
    if rate != sample_rate:
        wav = torchaudio.functional.resample(wav, rate, sample_rate)
    return wav.contiguous()


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


class MFCC(torch.nn.Module):
    """``(batch, samples)`` waveforms at 16 kHz -> ``(batch, frames, dim)`` features.

    Padding with zeros at the end of a short waveform in a batch does not change its
    valid frames, because the STFT is centred with constant (zero) padding, so a batch
    gives the same features as one utterance at a time (see tests/test_features.py).
    """

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        super().__init__()
        self.config = config
        # Parameters match librosa.feature.mfcc (slaney mel scale and norm, dB, ortho DCT).
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=SAMPLE_RATE,
            n_mfcc=config.n_mfcc,
            log_mels=False,
            melkwargs=dict(
                n_fft=N_FFT,
                win_length=WIN_LENGTH,
                hop_length=HOP,
                n_mels=config.n_mels,
                center=True,
                pad_mode="constant",
                mel_scale="slaney",
                norm="slaney",
            ),
        )
        # AmplitudeToDB's top_db clamps relative to the max over the whole batch; disable it
        # so each utterance is independent of its batch neighbours.
        self.mfcc.amplitude_to_DB.top_db = None

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features (B, T, dim), frame_lengths (B,))``; ``lengths`` are in samples."""
        if lengths is None:
            lengths = torch.full((wavs.shape[0],), wavs.shape[1], dtype=torch.long)
        frame_lengths = 1 + lengths // HOP
        if self.config.compression == "pcen":
            mel = self.mfcc.MelSpectrogram(wavs)  # (B, n_mels, T) power
            # c0 as the log path computes it (mean mel dB x sqrt(n_mels)), for the silence test below
            c0 = self.mfcc.amplitude_to_DB(mel).mean(1) * self.config.n_mels ** 0.5  # (B, T)
            feats = torch.matmul(pcen(mel.sqrt(), frame_lengths).transpose(1, 2), self.mfcc.dct_mat)
        else:
            feats = self.mfcc(wavs).transpose(1, 2)  # (B, n_mfcc, T) -> (B, T, n_mfcc)
            c0 = feats[..., 0]
        if self.config.deltas:
            d1 = torchaudio.functional.compute_deltas(feats.transpose(1, 2))
            d2 = torchaudio.functional.compute_deltas(d1)
            feats = torch.cat([feats, d1.transpose(1, 2), d2.transpose(1, 2)], dim=2)
            # Deltas look two frames ahead, so the last frames of a padded utterance would see
            # padding; recompute them per utterance where lengths differ.
            if (frame_lengths != feats.shape[1]).any():
                return self._per_utterance(wavs, lengths)
        if self.config.cmvn:
            # Frames of digital silence (every mel band at AmplitudeToDB's floor) say nothing
            # about the recording's level: leave them out of the statistics, or a file that is
            # mostly silence would squash its speech into a corner of the feature space.
            sound = c0 > DIGITAL_SILENCE_DB * self.config.n_mels ** 0.5  # c0 = mean mel dB x sqrt(n_mels)
            feats = _fill_silence(cmvn(feats, frame_lengths, sound), frame_lengths, sound)
        mask = torch.arange(feats.shape[1])[None, :] < frame_lengths[:, None]
        return feats * mask[..., None], frame_lengths

    def _per_utterance(self, wavs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [self(wavs[i : i + 1, : int(n)])[0][0] for i, n in enumerate(lengths)]
        return torch.nn.utils.rnn.pad_sequence(outs, batch_first=True), torch.tensor([len(o) for o in outs])


PCEN_TIME_CONSTANT = 0.4  # s: the smoother's memory (librosa's default; 40 frames at 10 ms)
PCEN_SCALE = 2.0 ** 31  # float samples in [-1, 1] scaled as 32-bit integers, the range PCEN's constants were set for
PCEN_GAIN, PCEN_BIAS, PCEN_POWER, PCEN_EPS = 0.98, 2.0, 0.5, 1e-6  # librosa.pcen's defaults (Wang et al. 2017)


def pcen(magnitudes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-channel energy normalisation of mel magnitudes ``(B, n_mels, T)`` over the first
    ``lengths[b]`` frames of each (the rest are 0), as ``librosa.pcen`` computes it with its
    default constants: ``(E / (eps + M)^gain + bias)^power - bias^power``, where ``M`` is ``E``
    smoothed over time by a one-pole low-pass filter.

    The smoother starts in its steady state for each band's first frame (librosa's default starts
    it from a level of 1, which leaves the first 0.4 s of every utterance unnormalised). It runs
    forward in time only, so padding after an utterance does not change its frames.
    """
    t_frames = PCEN_TIME_CONSTANT / FRAME_SECONDS
    b = (math.sqrt(1 + 4 * t_frames ** 2) - 1) / (2 * t_frames ** 2)  # the smoother's coefficient, as librosa derives it
    e = magnitudes.double() * PCEN_SCALE
    mask = torch.arange(e.shape[-1])[None, None, :] < lengths[:, None, None]
    first = e[..., :1]
    # M[t] = (1 - b) M[t-1] + b E[t] with M[-1] = E[0]: the filter is linear and holds a constant
    # input where it starts, so that is the zero-state response to E - E[0], plus E[0]
    smooth = torchaudio.functional.lfilter(e - first, torch.tensor([1.0, b - 1.0], dtype=e.dtype),
                                           torch.tensor([b, 0.0], dtype=e.dtype), clamp=False) + first
    out = (e / (PCEN_EPS + smooth) ** PCEN_GAIN + PCEN_BIAS) ** PCEN_POWER - PCEN_BIAS ** PCEN_POWER
    return (out * mask).to(magnitudes.dtype)


DIGITAL_SILENCE_DB = -99.9  # mean mel power in dB at or below which a frame is digital silence (floor: -100)
MIN_STATS_FRAMES = 10  # fewer frames with sound than this: the statistics take every frame


def cmvn(feats: torch.Tensor, lengths: torch.Tensor, use: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance mean/variance normalisation over the first ``lengths[b]`` frames of ``(B, T, D)``;
    the statistics come from the frames where ``use`` ``(B, T)`` is true, if there are at least
    ``MIN_STATS_FRAMES`` of them in the utterance, else from all its frames."""
    valid = torch.arange(feats.shape[1])[None, :] < lengths[:, None]
    if use is not None:
        chosen = valid & use
        valid = torch.where((chosen.sum(1, keepdim=True) >= MIN_STATS_FRAMES), chosen, valid)
    mask = valid.to(feats.dtype)[..., None]
    n = mask.sum(1, keepdim=True).clamp(min=1)
    mean = (feats * mask).sum(1, keepdim=True) / n
    var = (((feats - mean) * mask) ** 2).sum(1, keepdim=True) / n
    return (feats - mean) / torch.sqrt(var + eps)


def _fill_silence(feats: torch.Tensor, lengths: torch.Tensor, sound: torch.Tensor) -> torch.Tensor:
    """Normalised ``(B, T, D)`` features with each frame of digital silence replaced by the mean
    of the quietest tenth of the utterance's frames with sound (by c0): a pause as it sounds in
    this recording. Digital silence itself lies far below anything the model was trained on."""
    out = feats.clone()
    for b, n in enumerate(lengths.tolist()):
        has = sound[b, :n]
        if int(has.sum()) < MIN_STATS_FRAMES or bool(has.all()):
            continue
        heard = feats[b, :n][has]
        quiet = heard[heard[:, 0] <= torch.quantile(heard[:, 0].float(), 0.1).to(heard.dtype)]
        out[b, :n][~has] = quiet.mean(0)
    return out


class StreamingMFCC:
    """MFCC of audio that arrives in chunks: the same frames :class:`MFCC` computes from all the
    samples at once (``cmvn`` and ``deltas`` off), each as soon as its window is complete.

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
        self.mfcc = MFCC(config).mfcc
        self.mfcc.MelSpectrogram.spectrogram.center = False  # the padding is done here, across chunks
        self.pending = torch.zeros(self.PAD)  # samples not yet behind every frame that needs them
        self.samples = 0  # samples accepted
        self.frames = 0  # frames given out

    def _frames(self, upto: int) -> torch.Tensor:
        """Frames ``self.frames .. upto - 1`` ``(n, n_mfcc)`` from the pending samples, which start at frame ``self.frames``."""
        n = upto - self.frames
        if n <= 0:
            return torch.zeros(0, self.mfcc.n_mfcc)
        with torch.no_grad():
            out = self.mfcc(self.pending[: (n - 1) * HOP + N_FFT][None])[0].T
        self.pending = self.pending[n * HOP:]
        self.frames = upto
        return out

    def accept(self, samples: torch.Tensor) -> torch.Tensor:
        """16 kHz mono ``(samples,)`` -> the frames ``(n, n_mfcc)`` now complete (n may be 0)."""
        self.pending = torch.cat([self.pending, samples.to(torch.float32).reshape(-1)])
        self.samples += samples.numel()
        # frame t is complete when padded samples up to t*HOP + N_FFT have come (PAD of them are the padding)
        complete = max(0, (self.PAD + self.samples - N_FFT) // HOP + 1)
        return self._frames(min(complete, num_frames(self.samples)))

    def finish(self) -> torch.Tensor:
        """The last frames ``(n, n_mfcc)``, with the end's zero padding; the stream is then over."""
        self.pending = torch.cat([self.pending, torch.zeros(self.PAD + N_FFT)])
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
    plain = MFCC(dataclasses.replace(config, cmvn=False))
    total, squares, count, fills = torch.zeros(config.n_mfcc, dtype=torch.float64), 0.0, 0, []
    for wav in wavs:
        with torch.no_grad():
            f = plain(wav[None])[0][0]
        sound = f[:, 0] > DIGITAL_SILENCE_DB * config.n_mels ** 0.5
        heard = f[sound].double()
        total, squares, count = total + heard.sum(0), squares + (heard ** 2).sum(0), count + heard.shape[0]
        if heard.shape[0] >= MIN_STATS_FRAMES:
            normalised = cmvn(heard[None].float(), torch.tensor([heard.shape[0]]))[0]
            fills.append(normalised[normalised[:, 0] <= torch.quantile(normalised[:, 0], 0.1)].mean(0))
    if not count or not fills:
        raise ConfigError("feature statistics need audio with sound in it")
    mean = total / count
    std = (squares / count - mean ** 2).clamp(min=1e-10).sqrt()
    quiet = torch.stack(fills).mean(0)
    return FeatureStats(tuple(mean.tolist()), tuple(std.tolist()), tuple(quiet.tolist()), count)


class RunningCMVN:
    """Per-utterance CMVN for a stream: mean and variance of the frames with sound so far,
    starting from training statistics (:class:`FeatureStats`) that count as ``prior_frames``
    frames, so that the first second is normalised sensibly and a long stream by its own
    statistics. Frames of digital silence are left out of the statistics and become the
    training set's quiet vector, as :class:`MFCC` fills them."""

    def __init__(self, stats: FeatureStats, prior_frames: float, n_mels: int):
        mean, std = torch.tensor(stats.mean, dtype=torch.float64), torch.tensor(stats.std, dtype=torch.float64)
        self.count = float(prior_frames)
        self.sum = mean * self.count
        self.squares = (std ** 2 + mean ** 2) * self.count
        self.quiet = torch.tensor(stats.quiet)
        self.silence_floor = DIGITAL_SILENCE_DB * n_mels ** 0.5  # c0 of a frame of digital silence

    def update(self, feats: torch.Tensor) -> None:
        """Add plain MFCC frames ``(n, n_mfcc)`` to the statistics."""
        heard = feats[feats[:, 0] > self.silence_floor].double()
        self.count += heard.shape[0]
        self.sum += heard.sum(0)
        self.squares += (heard ** 2).sum(0)

    def __call__(self, feats: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
        """Plain MFCC frames ``(n, n_mfcc)`` normalised by the statistics so far."""
        mean = self.sum / self.count
        var = (self.squares / self.count - mean ** 2).clamp(min=0)
        out = ((feats.double() - mean) / torch.sqrt(var + eps)).float()
        silent = feats[:, 0] <= self.silence_floor
        if silent.any():
            out[silent] = self.quiet
        return out


_EXTRACTORS: dict[FeatureConfig, MFCC] = {}


def compute_features(wav: torch.Tensor, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Features of one 16 kHz waveform ``(samples,)`` -> ``(frames, dim)``."""
    extractor = _EXTRACTORS.get(config)
    if extractor is None:
        extractor = _EXTRACTORS[config] = MFCC(config)
    with torch.no_grad():
        return extractor(wav[None])[0][0]


def speed_perturb(wav: torch.Tensor, factor: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Play ``wav`` ``(samples,)`` ``factor`` times as fast: tempo and pitch both change (Kaldi's speed perturbation).

    Resampling from ``sample_rate * factor`` to ``sample_rate`` Hz gives ``len(wav) / factor``
    samples that, read at ``sample_rate``, last ``1 / factor`` as long.
    """
    if factor == 1.0:
        return wav
    if factor <= 0:
        raise ConfigError(f"speed factor must be positive, not {factor}")
    return torchaudio.functional.resample(wav, int(round(sample_rate * factor)), sample_rate)


def file_features(path: str | Path, config: FeatureConfig = FeatureConfig(), speed: float = 1.0) -> torch.Tensor:
    """Load ``path`` (played ``speed`` times as fast) and return its features ``(frames, dim)``."""
    return compute_features(speed_perturb(load_audio(path), speed), config)
