"""Streaming recognition: words while the audio is still coming.

A :class:`Stream` takes audio in chunks of any size and gives the words of the utterance in
progress after each (a partial result), and a final result each time an utterance ends::

    s = asr.load("streaming").stream()
    for chunk in chunks:                       # any size, any rate (resampled to 16 kHz)
        partial = s.accept(chunk, 16000)       # -> text of the utterance so far
        while (segment := s.result()) is not None:
            print(segment.text, segment.start, segment.end)
    s.finish()                                 # the last segments, once the audio is over

The audio goes the offline way, cut where a stream must cut it:

- **Features**: :class:`asr.features.StreamingMFCC` gives each frame as its window completes,
  equal to the offline MFCC; per-utterance CMVN, which needs the whole utterance, becomes a
  running normalisation that starts from training statistics (:class:`asr.features.RunningCMVN`).
- **Model**: chunks of ``chunk`` seconds, each with ``right_context`` seconds more audio
  (latency-controlled, :func:`asr.model.forward_chunk`): the forward direction carries its
  state from chunk to chunk, a bidirectional model's backward direction hears the right
  context only.
- **Search**: the beam search of the bundle's decoding, fed frame by frame
  (:class:`asr.search.IncrementalSearch`); the partial result is its best hypothesis. At an
  endpoint the utterance's n-best go through the same rescoring, evidence and calibrated
  confidences as offline (:func:`asr.decode.decode_batch`), and the search starts afresh.
- **Endpoints** (Kaldi's and sherpa's rules, on the searched head's best path): trailing
  non-speech of ``endpoint_silence`` seconds after a word; ``endpoint_idle`` seconds without
  any word (dropped, no result); an utterance of ``max_utterance`` seconds. Memory is bounded
  by the longest utterance, however long the stream.

The chunking of the input changes nothing: the model reads fixed chunks and the search
steps frame by frame, so 10 ms, 100 ms or 1 s chunks give the same words.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .decode import Word, decode_batch, text_of
from .errors import ConfigError, UserError
from .features import SAMPLE_RATE, AudioError, FeatureStats, RunningCMVN, StreamingMFCC, as_numpy, resample
from .io import atomic_write_text
from .text import CHAR_VOCAB, PHONE_VOCAB


class StreamError(UserError):
    """A stream used out of order (audio after :meth:`Stream.finish`, a new sample rate mid-stream)."""


@dataclass(frozen=True)
class StreamingConfig:
    """How a stream is cut: the model's chunks, the running normalisation, the endpoint rules (seconds).

    A bundle's ``stream.json`` holds one; keywords of :meth:`asr.Transcriber.stream` change it.

    >>> asr.StreamingConfig().chunk
    0.18
    >>> asr.load().stream(chunk=0.24, endpoint_silence=0.8).config.endpoint_silence
    0.8
    """

    # chunk, right_context and endpoint_silence: the shipped model's best WER with a median word
    # latency under 0.5 s and final results under 1 s (benchmarks/streaming.py, RESULTS.md)
    chunk: float = 0.18  # audio the model reads at a time: latency against the cost of each call
    right_context: float = 0.18  # more audio each chunk hears (a bidirectional model's backward direction;
    # a unidirectional one hears its `lookahead` steps instead)
    prior_frames: float = 300.0  # the training statistics weigh as this many frames in the running CMVN
    endpoint_silence: float = 0.5  # trailing non-speech after a word that ends an utterance
    endpoint_idle: float = 5.0  # no word for this long: the audio is dropped, the search starts afresh
    max_utterance: float = 20.0  # an utterance this long ends: bounds the search's memory

    def __post_init__(self):
        for name in ("chunk", "endpoint_silence", "endpoint_idle", "max_utterance"):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f"streaming {name} must be a positive number of seconds, not {getattr(self, name)}")
        for name in ("right_context", "prior_frames"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ConfigError(f"streaming {name} must be 0 or more (and finite), not {getattr(self, name)}")


@dataclass
class Segment:
    """A final result: one utterance of the stream, from its first word's start to its last word's
    end, times in seconds from the stream's start.

    >>> import soundfile as sf
    >>> samples, rate = sf.read("672-122797-0060.opus", dtype="float32")
    >>> s = asr.load().stream()
    >>> s.accept(samples, rate)  # the partial result so far
    '...'
    >>> (segment,) = s.finish()
    >>> segment.text, [w.word for w in segment.words][:2], segment.start < segment.end
    ('it is a very stupid story', ['it', 'is'], True)
    """

    text: str
    words: list[Word] = field(default_factory=list)
    start: float = 0.0
    end: float = 0.0

    def to_json(self) -> dict:
        return {"text": self.text, "start": round(self.start, 3), "end": round(self.end, 3),
                "words": [{"word": w.word, "start": w.start, "end": w.end, "confidence": round(w.confidence, 4)}
                          for w in self.words]}


class _Resampler:
    """Audio at ``rate`` Hz to 16 kHz in fixed blocks with a little context either side, so that
    how the audio is chunked changes no sample (:func:`asr.features.resample` of the whole, to float precision)."""

    CONTEXT = 0.01  # seconds each side of a block: the resampling kernel reaches ~1 ms

    def __init__(self, rate: int):
        g = math.gcd(rate, SAMPLE_RATE)
        unit_in, unit_out = rate // g, SAMPLE_RATE // g  # the shortest spans that map onto each other exactly
        units = max(1, math.ceil(0.05 * rate / unit_in))  # blocks of 50 ms or more
        ctx = max(1, math.ceil(self.CONTEXT * rate / unit_in))
        self.rate, self.block_in, self.block_out = rate, units * unit_in, units * unit_out
        self.ctx_in, self.ctx_out = ctx * unit_in, ctx * unit_out
        self.buffer = np.zeros(self.ctx_in, dtype=np.float32)  # starts at input sample `done - ctx_in` (zeros before the start)
        self.seen = 0  # input samples accepted
        self.given = 0  # output samples given

    def _blocks(self, final: bool) -> np.ndarray:
        out = []
        need = self.ctx_in + self.block_in + self.ctx_in
        total = math.ceil(self.seen * SAMPLE_RATE / self.rate)  # what resampling the whole would give
        while len(self.buffer) >= need or (final and self.given < total):
            window = self.buffer[:need]
            if len(window) < need:
                window = np.concatenate([window, np.zeros(need - len(window), dtype=np.float32)])
            y = resample(window, self.rate, SAMPLE_RATE)[self.ctx_out:self.ctx_out + self.block_out]
            if final:
                y = y[:total - self.given]
            out.append(y)
            self.given += len(y)
            self.buffer = self.buffer[self.block_in:]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        self.buffer = np.concatenate([self.buffer, samples])
        self.seen += len(samples)
        return self._blocks(final=False)

    def finish(self) -> np.ndarray:
        return self._blocks(final=True)


class Stream:
    """One live audio stream through a loaded recognizer (:meth:`asr.Transcriber.stream`).

    ``recognizer`` gives the model, lexicon, head and beam search; ``stats`` the training
    statistics its running normalisation starts from (``None`` for a model without
    per-utterance CMVN). Several streams can share one recognizer: each has its own state.
    A stream whose first chunk comes at 8 kHz or less is heard by the recognizer's narrow-band model
    where it has one (:meth:`asr.Transcriber.model_for`), its normalisation starting from
    ``narrowband_stats`` (default: ``stats``).

    Audio goes in by :meth:`accept` in chunks of any size (each returns the partial text);
    :meth:`result` gives each final :class:`Segment` once an utterance has ended, :meth:`finish`
    the rest when the audio is over:

    >>> import soundfile as sf
    >>> samples, rate = sf.read("672-122797-0060.opus", dtype="float32")
    >>> s = asr.load().stream()
    >>> for i in range(0, len(samples), rate // 10):  # 100 ms chunks, as a live source gives them
    ...     partial = s.accept(samples[i:i + rate // 10], rate)
    ...     while (segment := s.result()) is not None:
    ...         print("final:", segment.text)
    >>> partial  # the words so far; the final result may revise them
    'it is a very stupid'
    >>> [segment.text for segment in s.finish()]
    ['it is a very stupid story']
    """

    def __init__(self, recognizer, config: StreamingConfig = StreamingConfig(), stats: FeatureStats | None = None,
                 narrowband_stats: FeatureStats | None = None):
        features = recognizer.model.config.features
        if features.deltas:
            raise ConfigError("streaming needs a model without delta features (they look ahead)")
        if features.compression != "log":
            raise ConfigError(f"streaming reads log-mel MFCC models only, and this model's features are "
                              f"{features.compression!r}")
        if features.cmvn and stats is None:
            raise ConfigError("this model normalises each utterance: streaming needs its training feature "
                              "statistics (a bundle's stream.json, `asr bundle --stream-stats`)")
        self.recognizer, self.narrowband_stats = recognizer, narrowband_stats or stats
        self.lexicon, self.head, self.beam = recognizer.lexicon, recognizer.head, recognizer.beam
        self.config = config
        self.mfcc = StreamingMFCC(dataclasses.replace(features, cmvn=False))
        self._hear_with(recognizer.model, stats)
        self.pending = np.zeros((0, features.n_mfcc), dtype=np.float32)  # plain MFCC frames from the next chunk's first on
        self.counted = 0  # of them, how many are in the normalisation's statistics
        self.state: list[np.ndarray] | None = None  # the model's forward states after the last chunk
        self.rate: int | None = None
        self.resampler: _Resampler | None = None
        self.steps = 0  # model steps given to utterances so far (the stream's output frames)
        self.finals: collections.deque[Segment] = collections.deque()
        self.finished = False
        self._new_utterance()

    def _hear_with(self, model, stats: FeatureStats | None) -> None:
        """Take ``model`` (its frames and look-ahead) and a running normalisation from ``stats``."""
        features = model.config.features
        self.model = model
        self.norm = RunningCMVN(stats, self.config.prior_frames, features.n_mels) if features.cmvn else None
        stack = model.config.stack
        self.step_seconds = model.config.frame_seconds  # one model step: `stack` feature frames
        self.chunk_steps = max(1, round(self.config.chunk / self.step_seconds))
        # a bidirectional model's backward direction hears the right context; a model that looks
        # ahead needs its look-ahead steps at least, to read each step as offline
        right_steps = round(self.config.right_context / self.step_seconds) if model.config.bidirectional else 0
        self.right_frames = max(right_steps, model.config.lookahead) * stack
        self.stack = stack

    # -- audio in ---------------------------------------------------------------------------

    def accept(self, samples, sample_rate: int = SAMPLE_RATE) -> str:
        """Take the next chunk of audio, mono ``(N,)`` floats in [-1, 1] (numpy array, tensor or
        list) at ``sample_rate`` Hz; return the text of the utterance in progress (a partial
        result: its words may still change). An empty chunk is allowed and changes nothing."""
        if self.finished:
            raise StreamError("the stream is finished: start a new one for more audio")
        wav = self._samples(samples, sample_rate)
        if self.resampler is not None:
            wav = self.resampler(wav)
        self._features(self.mfcc.accept(wav), final=False)
        return self.partial

    def finish(self) -> list[Segment]:
        """The audio is over: recognise what is left and return every final result not yet taken."""
        if not self.finished:
            self.finished = True
            if self.resampler is not None:
                self._features(self.mfcc.accept(self.resampler.finish()), final=False)
            self._features(self.mfcc.finish(), final=True)
            self._end_utterance()
        out = list(self.finals)
        self.finals.clear()
        return out

    def result(self) -> Segment | None:
        """The oldest final result not yet taken (an utterance ended at an endpoint), else ``None``."""
        return self.finals.popleft() if self.finals else None

    @property
    def partial(self) -> str:
        """The text of the utterance in progress, as the search sees it now."""
        return text_of(self._partial_words())

    @property
    def partial_words(self) -> list[Word]:
        """The words of the utterance in progress, times in seconds from the stream's start."""
        offset = self.utt_start * self.step_seconds
        return [dataclasses.replace(w, start=round(w.start + offset, 3), end=round(w.end + offset, 3), evidence={})
                for w in self._partial_words()]

    def _samples(self, samples, sample_rate: int) -> np.ndarray:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
            raise ConfigError(f"sample_rate must be a positive number of samples a second, not {sample_rate!r}")
        if self.rate is not None and sample_rate != self.rate:
            raise StreamError(f"the stream started at {self.rate} Hz and cannot change to {sample_rate} Hz: "
                              f"finish it and start a new one")
        wav = as_numpy(samples)
        if wav.ndim != 1:
            raise AudioError(f"samples: a stream takes mono audio of shape (N,), not {tuple(wav.shape)}")
        if wav.size and not np.issubdtype(wav.dtype, np.floating):
            raise AudioError(f"samples: expected floating-point samples in [-1, 1], not {wav.dtype}")
        if not np.isfinite(wav).all():
            raise AudioError("samples: audio contains NaN or infinite samples (the chunk was not used)")
        if self.rate is None:  # the first good chunk sets the stream's rate, and so the model that hears it
            self.rate = int(sample_rate)
            self.resampler = _Resampler(self.rate) if self.rate != SAMPLE_RATE else None
            model_for = getattr(self.recognizer, "model_for", None)
            model = model_for(self.rate) if model_for is not None else self.model
            if model is not self.model:
                self._hear_with(model, self.narrowband_stats)
        return np.ascontiguousarray(wav, dtype=np.float32)

    # -- features -> model ------------------------------------------------------------------

    def _features(self, frames: np.ndarray, final: bool) -> None:
        """Plain MFCC frames in; every chunk that now has its right context goes through the model."""
        self.pending = np.concatenate([self.pending, frames])
        chunk = self.chunk_steps * self.stack
        while len(self.pending) >= chunk + self.right_frames or (final and len(self.pending)):
            window = self.pending[:chunk + self.right_frames]
            steps = min(self.chunk_steps, -(-len(window) // self.stack))  # the stream's tail: what is left
            if self.norm is not None:
                self.norm.update(window[self.counted:])
                window = self.norm(window)
            out, self.state = self.model.forward_chunk(window, steps, self.state)
            used = min(steps * self.stack, len(self.pending))
            self.pending = self.pending[used:]
            self.counted = max(0, len(window) - used)
            self._outputs(out)

    # -- model -> utterances ----------------------------------------------------------------

    def _new_utterance(self) -> None:
        self.utt_start = self.steps  # the stream's step where the utterance begins
        self.utt_out: dict[str, list[np.ndarray]] = {"char": [], "phone": []}
        self.utt_steps = 0
        self.search = self.beam.incremental() if self.beam is not None else None
        self.heard = False  # a word token on the best path
        self.trailing = 0  # steps of non-speech since the last word token
        self._partial: tuple[int, list[Word]] = (-1, [])  # (stream steps when found, the partial words)

    def _outputs(self, out: dict[str, np.ndarray]) -> None:
        """A chunk's log-probabilities: into the utterance in progress, which ends at an endpoint."""
        vocab = CHAR_VOCAB if self.head == "char" else PHONE_VOCAB
        best = out[self.head].argmax(-1).tolist()
        seconds = self.step_seconds
        start = 0
        for t, token in enumerate(best):
            if token in (vocab.blank, vocab.boundary):
                self.trailing += 1
            else:
                self.heard, self.trailing = True, 0
            length = self.utt_steps + t - start + 1
            ended = (self.heard and self.trailing * seconds >= self.config.endpoint_silence) \
                or length * seconds >= self.config.max_utterance
            idle = not self.heard and length * seconds >= self.config.endpoint_idle
            if ended or idle:
                self._add({k: out[k][start:t + 1] for k in ("char", "phone")})
                if ended:
                    self._end_utterance()
                else:  # nothing said: no result
                    self._new_utterance()
                start = t + 1
        self._add({k: out[k][start:] for k in ("char", "phone")})

    def _add(self, out: dict[str, np.ndarray]) -> None:
        n = out["char"].shape[0]
        if not n:
            return
        for k in ("char", "phone"):
            self.utt_out[k].append(out[k])
        if self.search is not None:
            self.search.accept(out[self.head])
        self.utt_steps += n
        self.steps += n

    def _utterance_output(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v)[None] for k, v in self.utt_out.items()} | {"lengths": np.array([self.utt_steps])}

    def _partial_words(self) -> list[Word]:
        if not self.utt_steps:
            return []
        if self._partial[0] != self.steps:  # the model has given more frames since the last look
            if self.search is not None:
                words = self.search.best(self.step_seconds)
            else:
                words = decode_batch(self._utterance_output(), self.lexicon, self.step_seconds,
                                     phone_words_too=self.head == "phone")[0].words(self.head)
            self._partial = (self.steps, words)
        return self._partial[1]

    def _end_utterance(self) -> None:
        """The utterance in progress is over: its final result, with the offline decoding's words."""
        if self.utt_steps:
            out = self._utterance_output()
            nbests = [self.search.finish(self.step_seconds)] if self.search is not None else None
            hyp = decode_batch(out, self.lexicon, self.step_seconds, phone_words_too=self.head == "phone",
                               beam=self.beam, nbests=nbests)[0]
            offset = self.utt_start * self.step_seconds
            words = [dataclasses.replace(w, start=round(w.start + offset, 3), end=round(w.end + offset, 3),
                                         evidence={}) for w in hyp.words(self.head)]
            if words:
                self.finals.append(Segment(text_of(words), words, words[0].start, words[-1].end))
        self._new_utterance()


def read_streaming(path) -> tuple[StreamingConfig, FeatureStats | None]:
    """A bundle's stream.json: ``{"config": {StreamingConfig fields}, "stats": {FeatureStats}}``."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        config = StreamingConfig(**d.get("config", {}))
        stats = FeatureStats.from_json(d["stats"]) if d.get("stats") else None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a streaming config as `asr bundle --stream-stats` writes it "
                          f"({type(e).__name__}: {e})") from None
    return config, stats


def write_streaming(path, config: StreamingConfig, stats: FeatureStats | None) -> None:
    """Write a stream.json (atomically) for :func:`asr.bundle.write_bundle`."""
    atomic_write_text(path, json.dumps({"config": dataclasses.asdict(config),
                                        "stats": stats.to_json() if stats else None}, indent=1) + "\n")


def pcm16_chunks(stream, rate: int, seconds: float = 0.1, name: str = "stdin"):
    """Raw 16-bit little-endian mono PCM from a binary file object (e.g. ``arecord -f S16_LE``
    or ``ffmpeg -f s16le -ac 1`` on a pipe) -> float32 chunks of about ``seconds`` each, as
    they come. A stream that ends in the middle of a sample (an odd number of bytes) raises
    :class:`AudioError` after the chunks before it: what was heard stays heard."""
    size = max(2, int(rate * seconds) * 2)
    carry = b""
    while True:
        data = stream.read(size - len(carry))
        if not data:
            break
        data = carry + data
        whole = len(data) - len(data) % 2
        carry = data[whole:]
        if whole:
            yield np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0
    if carry:
        raise AudioError(f"{name}: the audio ended in the middle of a 16-bit sample (an odd number of bytes); "
                         f"the last byte was dropped")


def file_chunks(path, seconds: float = 0.1):
    """An audio file (any format soundfile reads) -> its rate and ``(rate, float32 mono chunks of ~seconds)``
    read block by block, as a live source would give them."""
    import soundfile as sf

    from .features import _check_file

    path = _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not readable as audio ({str(e).strip().splitlines()[0][:200]})") from None
    rate = info.samplerate

    def chunks():
        for block in sf.blocks(str(path), blocksize=max(1, int(rate * seconds)), dtype="float32", always_2d=True):
            yield block.mean(axis=1)

    return rate, chunks()


def microphone_chunks(rate: int = SAMPLE_RATE, seconds: float = 0.1, device: int | str | None = None,
                      duration: float | None = None):
    """A microphone (the system's default input, or ``device``: a number or a name as
    ``python -m sounddevice`` lists them) -> float32 mono chunks of ``seconds`` as they are
    recorded, for ``duration`` seconds or until the caller stops (Ctrl-C). Needs the optional sounddevice package
    (``pip install 'asr[mic]'``, PortAudio); without it, or without an input device, a
    :class:`UserError` says so."""
    import queue

    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:  # OSError: sounddevice is there, the PortAudio library is not
        raise UserError(f"microphone input needs the sounddevice package and PortAudio "
                        f"(pip install 'asr[mic]'; {type(e).__name__}: {e})") from None
    blocks: queue.Queue = queue.Queue()

    def record(indata, frames, time, status):  # PortAudio's thread: hand the block over, nothing more
        blocks.put(indata[:, 0].copy())

    try:
        source = sd.InputStream(samplerate=rate, channels=1, dtype="float32", blocksize=max(1, int(rate * seconds)),
                                device=device, callback=record)
    except (sd.PortAudioError, ValueError) as e:
        raise UserError(f"microphone {device if device is not None else '(default)'}: cannot record at {rate} Hz "
                        f"({e})") from None
    limit = math.inf if duration is None else round(duration * rate)
    recorded = 0
    with source:
        while recorded < limit:
            block = blocks.get()[:max(0, limit - recorded)]
            recorded += len(block)
            yield block


def manifest_statistics(manifest, features, utterances: int = 500) -> FeatureStats:
    """:class:`FeatureStats` of a training manifest's audio (at most ``utterances`` of them, evenly
    spaced through it), as the model's ``features`` compute them: what a stream's running
    normalisation starts from."""
    from .features import feature_statistics, load_audio
    from .io import manifest_audio

    paths = manifest_audio(manifest)
    if not paths:
        raise ConfigError(f"{manifest}: no utterances")
    picked = [paths[i * len(paths) // min(utterances, len(paths))] for i in range(min(utterances, len(paths)))]
    return feature_statistics((load_audio(p) for p in picked), features)
