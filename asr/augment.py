"""Corrupted audio: noise at a given SNR, rooms, telephone lines, codecs, level and clipping.

The robustness benchmark (`benchmarks/robustness.py`) corrupts dev with these; training
augmentation draws from them with its own noises and seeds. Every function takes and returns
``(samples,)`` float32 tensors at 16 kHz (:data:`SAMPLE_RATE`) and is deterministic given its
``seed``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio

from .errors import ConfigError
from .features import SAMPLE_RATE

TELEPHONE_RATE = 8000  # narrowband telephony (G.711)
TELEPHONE_BAND = (300.0, 3400.0)  # Hz: the ITU-T voice channel


def rms_dbfs(x: torch.Tensor) -> float:
    """RMS level of ``x`` in dB relative to full scale (RMS 1.0 = 0 dBFS)."""
    return 20 * math.log10(max(float(x.double().pow(2).mean().sqrt()), 1e-10))


def add_noise(speech: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``speech`` plus ``noise`` scaled so that their power ratio is ``snr_db`` (over the whole
    signals); a shorter noise is repeated, a longer one cut."""
    if noise.numel() < speech.numel():
        noise = noise.repeat(math.ceil(speech.numel() / noise.numel()))
    noise = noise[:speech.numel()].double()
    p_speech, p_noise = speech.double().pow(2).mean(), noise.pow(2).mean().clamp_min(1e-20)
    scale = torch.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    return (speech.double() + scale * noise).float()


def coloured_noise(kind: str, samples: int, seed: int) -> torch.Tensor:
    """``(samples,)`` of ``white`` (flat), ``pink`` (1/f power) or ``brown`` (1/f^2) Gaussian noise, RMS 1."""
    g = torch.Generator().manual_seed(seed)
    spectrum = torch.fft.rfft(torch.randn(samples, generator=g, dtype=torch.float64))
    f = torch.fft.rfftfreq(samples, 1 / SAMPLE_RATE).clamp_min(20.0)  # no runaway below 20 Hz
    spectrum = spectrum / f.pow({"white": 0.0, "pink": 0.5, "brown": 1.0}[kind])
    x = torch.fft.irfft(spectrum, samples)
    return (x / x.pow(2).mean().sqrt()).float()


def babble(talkers: list[torch.Tensor], samples: int) -> torch.Tensor:
    """``(samples,)``: other speech summed, each talker at the same level and repeated to length."""
    out = torch.zeros(samples, dtype=torch.float64)
    for x in talkers:
        x = x.double() / x.double().pow(2).mean().sqrt().clamp_min(1e-10)
        out += x.repeat(math.ceil(samples / x.numel()))[:samples]
    return out.float()


def room_impulse_response(rt60: float, distance: float, seed: int) -> torch.Tensor:
    """``(taps,)`` impulse response from a talker to a microphone ``distance`` metres apart in a
    shoebox room whose reverberation time is ``rt60`` seconds, room size and positions drawn
    from ``seed``.

    The direct sound and the reflections up to the 3rd order come from the image method
    (pyroomacoustics, Allen & Berkley 1979); the late reverberation is Gaussian noise decaying by
    60 dB in ``rt60`` seconds, whose energy against the direct sound's is ``(distance / r_c)^2``
    with the critical distance ``r_c = 0.057 sqrt(V / rt60)`` m (diffuse-field theory, Kuttruff).
    The image method alone grows with the RT60's reflection order (far too slow at long RT60s
    in a probe); its ray-traced tail draws its rays unseeded, so that the same seed gave other rooms.
    """
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    size = np.array([rng.uniform(5, 9), rng.uniform(4, 7), rng.uniform(2.6, 3.4)])  # metres
    absorption, _ = pra.inverse_sabine(rt60, size)
    r = pra.ShoeBox(size, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=3)
    for _ in range(1000):  # a talker and a microphone that distance apart, 0.5 m clear of the walls
        mic = rng.uniform([0.5, 0.5, 1.0], size - [0.5, 0.5, 1.0])
        direction = rng.normal(size=3)
        direction[2] *= 0.1  # heads and microphones at about the same height
        talker = mic + distance * direction / np.linalg.norm(direction)
        if np.all(talker > 0.5) and np.all(talker < size - 0.5):
            break
    else:
        raise ValueError(f"no room position {distance} m apart in a {size.round(1)} m room")
    r.add_source(talker.tolist())
    r.add_microphone(mic.tolist())
    r.compute_rir()
    early = np.asarray(r.rir[0][0], dtype=np.float64)
    direct = int(np.argmax(np.abs(early)))
    direct_energy = float(np.sum(early[max(0, direct - 16):direct + 16] ** 2))  # +-1 ms
    critical = 0.057 * math.sqrt(float(np.prod(size)) / rt60)
    taps = direct + int(rt60 * SAMPLE_RATE)
    t = np.arange(taps - direct) / SAMPLE_RATE
    tail = rng.normal(size=t.size) * np.exp(-3 * math.log(10) * t / rt60)  # -60 dB at rt60
    tail *= math.sqrt(direct_energy * (distance / critical) ** 2 / np.sum(tail ** 2))
    out = np.zeros(max(taps, early.size))
    out[:early.size] += early
    out[direct:taps] += tail
    return torch.from_numpy(out)


def reverberate(speech: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """``speech`` convolved with the impulse response ``rir``, as long as ``speech``, level kept."""
    out = torchaudio.functional.fftconvolve(speech.double(), rir.double())[:speech.numel()]
    return (out * speech.double().pow(2).mean().sqrt() / out.pow(2).mean().sqrt().clamp_min(1e-10)).float()


def room(speech: torch.Tensor, rt60: float, distance: float, seed: int) -> torch.Tensor:
    """``speech`` as a microphone ``distance`` metres away hears it in a room of reverberation
    time ``rt60`` seconds (:func:`room_impulse_response` drawn with ``seed``), level kept."""
    return reverberate(speech, room_impulse_response(rt60, distance, seed))


def telephone(speech: torch.Tensor) -> torch.Tensor:
    """``speech`` through a narrowband phone line: band-limited to 300-3400 Hz, sampled at
    8 kHz with 8-bit mu-law (G.711), then back at 16 kHz."""
    x = torchaudio.functional.resample(speech, SAMPLE_RATE, TELEPHONE_RATE)
    low, high = TELEPHONE_BAND
    for _ in range(2):  # Butterworth biquads, twice each: 4th-order skirts, flat between the edges
        x = torchaudio.functional.highpass_biquad(x, TELEPHONE_RATE, low)
        x = torchaudio.functional.lowpass_biquad(x, TELEPHONE_RATE, high)
    peak = x.abs().max().clamp_min(1e-10)
    codes = torchaudio.functional.mu_law_encoding(x / peak, 256)
    x = torchaudio.functional.mu_law_decoding(codes, 256) * peak
    return torchaudio.functional.resample(x, TELEPHONE_RATE, SAMPLE_RATE)[:speech.numel()]


def narrowband(speech: torch.Tensor) -> torch.Tensor:
    """``speech`` as an 8 kHz recording read at 16 kHz: sampled at 8 kHz (nothing above 4 kHz
    survives), then back at 16 kHz, as every reader resamples such a file (FSDD's digits,
    voice-assistant and IVR corpora). Unlike :func:`telephone`, no phone line: the band below
    300 Hz is kept and there is no mu-law."""
    x = torchaudio.functional.resample(speech, SAMPLE_RATE, TELEPHONE_RATE)
    return torchaudio.functional.resample(x, TELEPHONE_RATE, SAMPLE_RATE)[:speech.numel()]


def opus(speech: torch.Tensor, compression: float = 0.95) -> torch.Tensor:
    """``speech`` encoded as Ogg/Opus and decoded again (libsndfile): ``compression`` 0.95 is about
    22 kbit/s for speech at 16 kHz, 0.8 about 60. (Above 0.98, about 10 kbit/s, libsndfile's
    encoder dropped whole loud syllables of LibriSpeech clips: not what a phone call does.)"""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, speech.clamp(-1, 1).numpy(), SAMPLE_RATE, format="OGG", subtype="OPUS",
             compression_level=compression)
    buffer.seek(0)
    decoded, rate = sf.read(buffer, dtype="float32")
    assert rate == SAMPLE_RATE
    out = torch.from_numpy(decoded)[:speech.numel()]
    return torch.nn.functional.pad(out, (0, speech.numel() - out.numel()))


def gain_to(speech: torch.Tensor, dbfs: float) -> torch.Tensor:
    """``speech`` scaled to an RMS level of ``dbfs`` (e.g. -35: a quiet recording)."""
    return speech * 10 ** ((dbfs - rms_dbfs(speech)) / 20)


def within_full_scale(x: torch.Tensor) -> torch.Tensor:
    """``x`` scaled down to a peak of 1.0 if it goes past full scale, as a recorder's gain would (not clipped)."""
    peak = float(x.abs().max())
    return x / peak if peak > 1.0 else x


def clip(speech: torch.Tensor, overdrive_db: float) -> torch.Tensor:
    """``speech`` amplified ``overdrive_db`` above a full-scale peak, then hard-clipped at ±1."""
    peak = speech.abs().max().clamp_min(1e-10)
    return (speech / peak * 10 ** (overdrive_db / 20)).clamp(-1, 1)


@dataclass(frozen=True)
class AugmentConfig:
    """Corrupted copies of the training set (``[augment]`` in a training config), Kaldi-style
    multi-condition training: ``copies`` copies of every utterance (at every speed of
    ``speed_perturb``), each corrupted once, with fixed seeds, when the features are computed, and
    trained on beside the clean set. Each corruption applies to an utterance with its
    probability, in this order; a drawn copy may get none, several or all of them.
    """

    copies: int = 0  # corrupted copies beside the clean set (0: none); an epoch is (1 + copies) passes
    seed: int = 0
    room: float = 0.0  # probability of a simulated room (`room`): RT60 and distance drawn from the ranges
    rt60: tuple[float, float] = (0.2, 1.0)  # seconds
    distance: tuple[float, float] = (0.5, 3.0)  # metres, talker to microphone
    noise: float = 0.0  # probability of additive noise, of a kind from `noise_kinds`, at an SNR from `snr`
    noise_kinds: tuple[str, ...] = ("white", "pink", "brown", "babble")  # babble: 3 other training utterances
    snr: tuple[float, float] = (0.0, 20.0)  # dB
    telephone: float = 0.0  # probability of a phone line (`telephone`)
    narrowband: float = 0.0  # probability of 8 kHz sampling (`narrowband`), where there was no phone line
    opus: float = 0.0  # probability of Opus coding at a compression level from `opus_compression`
    opus_compression: tuple[float, float] = (0.8, 0.97)
    gain: float = 0.0  # probability of a level drawn from `gain_dbfs`
    gain_dbfs: tuple[float, float] = (-45.0, -15.0)
    clipping: float = 0.0  # probability of hard clipping `overdrive_db` above full scale
    overdrive_db: tuple[float, float] = (2.0, 12.0)

    def __post_init__(self):
        if self.copies < 0:
            raise ConfigError(f"augment.copies must be 0 or more, not {self.copies}")
        for name in ("room", "noise", "telephone", "narrowband", "opus", "gain", "clipping"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment.{name} is a probability, in [0, 1], not {getattr(self, name)}")
        for name in ("rt60", "distance", "snr", "opus_compression", "gain_dbfs", "overdrive_db"):
            low, high = getattr(self, name)
            if low > high:
                raise ConfigError(f"augment.{name} must be [low, high], not {list(getattr(self, name))}")
        if self.room and self.copies:
            import importlib.util

            if importlib.util.find_spec("pyroomacoustics") is None:
                raise ConfigError("augment.room simulates rooms with pyroomacoustics, which is not installed: "
                                  "pip install -e '.[recipe]' (or pip install pyroomacoustics)")
        unknown = set(self.noise_kinds) - {"white", "pink", "brown", "babble"}
        if unknown or not self.noise_kinds:
            raise ConfigError(f"augment.noise_kinds: choose from white, pink, brown, babble, not {sorted(unknown)}")


def corrupt_randomly(speech: torch.Tensor, config: AugmentConfig, seed: int,
                     babble_audio: list[str | Path] = ()) -> tuple[torch.Tensor, list[str]]:
    """``speech`` with the corruptions of ``config`` drawn with ``seed``, and what was done
    (e.g. ``["room 0.62 s 1.8 m", "pink 7.5 dB"]``). ``babble_audio``: files of other talkers."""
    from .features import load_audio

    rng = np.random.default_rng(seed)
    uniform = lambda pair: float(rng.uniform(*pair))
    done = []
    x = speech
    if rng.random() < config.room:
        rt60, distance = uniform(config.rt60), uniform(config.distance)
        x = room(x, rt60, distance, int(rng.integers(2**31)))
        done.append(f"room {rt60:.2f} s {distance:.1f} m")
    if rng.random() < config.noise:
        kind = str(rng.choice(config.noise_kinds))
        if kind == "babble" and len(babble_audio) < 3:
            kind = "pink"  # too few other talkers to make babble from
        snr = uniform(config.snr)
        if kind == "babble":
            talkers = [torch.from_numpy(load_audio(babble_audio[i])) for i in rng.choice(len(babble_audio), 3, replace=False)]
            noise = babble(talkers, x.numel())
        else:
            noise = coloured_noise(kind, x.numel(), int(rng.integers(2**31)))
        x = add_noise(x, noise, snr)
        done.append(f"{kind} {snr:.1f} dB")
    if rng.random() < config.telephone:
        x = telephone(x)
        done.append("telephone")
    # drawn only without a phone line (already narrowband), and only when asked for, so that the
    # draws after it, and so the copies of configs written before it existed, stay as they were
    elif config.narrowband and rng.random() < config.narrowband:
        x = narrowband(x)
        done.append("narrowband")
    if rng.random() < config.opus:
        level = uniform(config.opus_compression)
        x = opus(x, level)
        done.append(f"opus {level:.2f}")
    if rng.random() < config.gain:
        dbfs = uniform(config.gain_dbfs)
        x = gain_to(x, dbfs)
        done.append(f"gain {dbfs:.0f} dBFS")
    if rng.random() < config.clipping:
        overdrive = uniform(config.overdrive_db)
        x = clip(x, overdrive)
        done.append(f"clipping {overdrive:.1f} dB")
    else:  # noise can push the peaks past full scale
        x = within_full_scale(x)
    return x, done
