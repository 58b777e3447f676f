"""Transcribe audio files with a trained model (the shipped one by default), one or thousands.

Files are probed, cut into items (whole files, or overlapping windows of long ones), sorted
into batches of similar length, read, featurised and recognised a batch at a time in worker
processes (one per core), and written as one record per input file. With an output folder the
records go to ``results.jsonl`` as they are finished, so an interrupted run restarted with
the same command skips what is done and neither loses nor repeats a file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import gc
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .bundle import Bundle, exported_model, load_bundle
from .decode import Hypothesis, Word, make_beam_decoder, recognize, text_of
from .io import FORMATS, atomic_write_text, check_output_folder, expand_inputs, remove_stale_temporaries
from .errors import ConfigError, UserError
from .features import (NARROWBAND_RATE, SAMPLE_RATE, AudioError, as_numpy, audio_info, compute_features, load_audio,
                       prepare_samples)
from .plan import CHUNK_SECONDS, Window, bucket_batches, plan_windows
from .rnn import Ensemble, RNNModel
from .text import LazyLexicon

if TYPE_CHECKING:
    from .stream import Stream

BATCHES_PER_WORKER = 4  # at least, when the audio allows: smaller batches balance the workers' load


@dataclass
class Transcript:
    """What one file (or one array of samples) gave: its text, its :class:`~asr.Word` list, the
    audio's duration in seconds, or ``error`` (the reason, naming the file) when it could not be used.

    >>> t = asr.load().transcribe("672-122797-0060.opus")
    >>> t.text, t.duration, t.error
    ('it is a very stupid story', 3.35, None)
    >>> t.to_json()["words"][0]
    {'word': 'it', 'start': ..., 'end': ..., 'confidence': ...}
    """

    path: str
    text: str = ""
    words: list[Word] = field(default_factory=list)
    duration: float = 0.0  # seconds of audio
    error: str | None = None  # set instead of text when the file could not be transcribed

    def to_json(self) -> dict:
        return {"path": self.path, "text": self.text, "duration": round(self.duration, 3), "error": self.error,
                "words": [{"word": w.word, "start": w.start, "end": w.end, "confidence": round(w.confidence, 4)}
                          for w in self.words]}

    @classmethod
    def from_json(cls, d: dict) -> "Transcript":
        words = [Word(w["word"], w["start"], w["end"], (), w.get("confidence", 1.0)) for w in d.get("words", [])]
        return cls(d["path"], d.get("text", ""), words, d.get("duration", 0.0), d.get("error"))


def _info(source, rate: int | None = None) -> tuple[float, int]:
    """A source's duration (seconds) and the sample rate it was recorded at: a file's from its
    header; samples in memory (already at 16 kHz) were recorded at ``rate`` (default 16 kHz)."""
    return audio_info(source) if isinstance(source, str) else (source.shape[0] / SAMPLE_RATE, rate or SAMPLE_RATE)


def _read(source, item: Window) -> np.ndarray:
    """One item's samples: read from its file, or sliced from samples in memory."""
    if isinstance(source, str):
        return load_audio(source, start=item.start, stop=item.stop)
    first = int(round(item.start * SAMPLE_RATE))
    return source[first:None if item.stop is None else int(round(item.stop * SAMPLE_RATE))]


@dataclass
class _Piece:
    """What one item (a file, or a window of a long one) gave."""

    k: int  # index into the items
    seconds: float  # of audio read
    error: str | None = None
    hyp: Hypothesis | None = None  # None: digital silence, or an error


class _Recognition:
    """A batch of items -> their hypotheses: read, featurised and recognised together, in a worker
    process when there are workers; unreadable items come back with their error as a string.

    Items whose samples are all zero (digital silence) are not recognised: no sound, no words.
    ``references`` (a known transcript per source, for `asr evaluate`) are forced-aligned on the
    decoded head where an item is a whole file. ``rates``: the rate each source was recorded at,
    which chooses the model that hears it (:meth:`Transcriber.model_for`).
    """

    def __init__(self, transcriber: "Transcriber", sources: list, items: list[Window], rates: list[int],
                 both_heads: bool = False, references: list[str | None] | None = None, evidence: bool = False):
        self.transcriber, self.sources, self.items, self.rates = transcriber, sources, items, rates
        self.both_heads, self.references, self.evidence = both_heads, references, evidence

    def __call__(self, batch: list[int]) -> list[_Piece]:
        tr = self.transcriber
        done, loaded = [], []
        for k in batch:
            item = self.items[k]
            try:
                feats, seconds = _item_features(self.sources[item.file], item, tr.model.config.features)
                if feats is None:
                    done.append(_Piece(k, seconds))
                    continue
                loaded.append((k, feats, seconds))
            except AudioError as e:
                done.append(_Piece(k, 0.0, str(e)))
        for model, group in _by_model(tr, loaded, [self.rates[self.items[k].file] for k, _, _ in loaded]):
            refs = None
            if self.references is not None:
                refs = [self.references[self.items[k].file].split()
                        if self.items[k].stop is None and self.items[k].start == 0
                        and self.references[self.items[k].file] else None for k, _, _ in group]
            hyps = recognize(model, [f for _, f, _ in group], tr.lexicon,
                             phone_words_too=self.both_heads or tr.head == "phone", beam=tr.beam,
                             references=refs, reference_head=tr.head)
            if not self.evidence:  # a word's evidence (~60 numbers) is only for fitting calibrators
                hyps = [_without_evidence(h) for h in hyps]
            done += [_Piece(k, seconds, None, h) for (k, _, seconds), h in zip(group, hyps)]
        return done


def _by_model(tr: "Transcriber", loaded: list, rates: list[int]) -> list[tuple]:
    """``loaded`` (one entry per item) grouped by the model that hears each item, recorded at ``rates``:
    ``[(model, entries), ...]``, each model once, entries in their order (a batch is searched per model)."""
    groups: dict[int, tuple] = {}
    for entry, rate in zip(loaded, rates):
        model = tr.model_for(rate)
        groups.setdefault(id(model), (model, []))[1].append(entry)
    return list(groups.values())


def _without_evidence(h: Hypothesis) -> Hypothesis:
    def bare(words: list[Word]) -> list[Word]:
        return [dataclasses.replace(w, evidence={}) if w.evidence else w for w in words]

    return dataclasses.replace(h, char_words=bare(h.char_words), phone_words=bare(h.phone_words))


_job: _Recognition | None = None  # a worker process's job, inherited from its parent at the fork
_thread: ThreadPoolExecutor | None = None  # a worker process's one thread, where its batches run


def _worker_init(job: _Recognition, parent: int) -> None:
    global _job, _thread
    _job = job
    # Ctrl-C reaches the whole process group: the parent alone handles it (it stops the workers)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one core per worker (numpy's BLAS): N workers use N cores without oversubscription
    # Batches run on a thread of the worker's own, not its main thread: glibc gives another
    # thread its own heap (arena), while the main thread's heap is the parent's, shared page by
    # page since the fork, with the parent's free holes in it: filling those holes copies the
    # parent's pages into the worker.
    _thread = ThreadPoolExecutor(1, thread_name_prefix="asr-worker")
    _die_with(parent)


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when its parent dies (Linux's PR_SET_PDEATHSIG).

    Without it, a SIGKILLed `asr transcribe` leaves its workers running: they waste the
    cores and hold the output folder's lock, so the rerun that should resume is refused.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request: nobody would kill us
        os._exit(1)


def _worker_run(batch: list[int]) -> list[_Piece]:
    pieces = _thread.submit(_job, batch).result()
    _trim_heap()
    return pieces


def _trim_heap() -> None:
    """Hand the heap's free memory back to the system (glibc's malloc_trim): the beam search of
    a window allocates and frees hundreds of MB, which glibc would otherwise keep per worker."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _run_batches(job: _Recognition, batches: list[list[int]], workers: int) -> Iterator[list]:
    """``job(batch)`` for each batch: in this process, or in ``workers`` forked processes that
    take the next batch whenever they finish one (results in order of completion); none where fork
    is missing (Windows), and none for a single batch (no process to start)."""
    if "fork" not in multiprocessing.get_all_start_methods() or len(batches) < 2:
        workers = 0
    workers = min(workers, len(batches))
    if workers == 0:
        yield from map(job, batches)
        return
    # fork: the workers share the model, lexicon and LM already in memory, and the job is
    # inherited rather than pickled.
    # Objects made so far (lexicon, vocabularies) move to the collector's permanent generation:
    # a collection in a worker would otherwise write to every page that holds them and so copy
    # it (one hour with 2 workers: 1631 against 1814 MB peak, benchmarks/long_audio_memory.py).
    gc.freeze()
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_worker_init, initargs=(job, os.getpid()))
    try:
        with _sigint_held():
            futures = [pool.submit(_worker_run, b) for b in batches]  # (the first one forks the workers)
        for future in as_completed(futures):
            yield future.result()
    except BaseException:  # Ctrl-C, a failed batch, a caller that stops: the batches in flight are
        # abandoned, not waited for (seconds each); nothing of theirs was recorded, so a rerun redoes them
        for process in list(pool._processes.values()):  # (no public way to stop them before Python 3.14)
            process.kill()
        raise
    finally:  # drop the batches not started
        pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()


@contextlib.contextmanager
def _sigint_held():
    """Ctrl-C (SIGINT) held back while the pool forks its workers, then delivered.

    The KeyboardInterrupt it raises inside a fork is lost (Python runs its at-fork handlers,
    logging's among them, where an exception is only printed: the run then goes on to the end) or
    leaves the pool half-started. Meanwhile it is only noted, and sent again as the section ends.
    A Python handler rather than a signal mask: a mask is per thread, and a signal this thread
    blocks is taken by another, whose Python handler then runs here all the same. Only the main
    thread sets handlers, and only it gets KeyboardInterrupt: in another thread there is nothing to hold.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
        if caught:
            signal.raise_signal(signal.SIGINT)  # to whatever handled it before, as if it came now


def default_workers() -> int:
    """One worker process per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _kept(words: list[Word], item: Window) -> list[Word]:
    """An item's words that its window keeps (their middle in ``[keep_from, keep_to)``), in file time."""
    return [dataclasses.replace(w, start=round(w.start + item.start, 3), end=round(w.end + item.start, 3))
            for w in words if item.keep_from <= item.start + (w.start + w.end) / 2 < item.keep_to]


def merge_hypotheses(pieces: list[tuple[Window, Hypothesis | None]]) -> Hypothesis:
    """One file's hypothesis from its items' (in any order; ``None`` for digital silence): each
    head's words and the phones that each window keeps, in file time, sorted by time. A
    reference alignment is kept only where the file was one item."""
    pieces = sorted(pieces, key=lambda p: p[0].start)
    char, phone, phones, starts = [], [], [], []
    for item, h in pieces:
        if h is None:
            continue
        char += _kept(h.char_words, item)
        phone += _kept(h.phone_words, item)
        for p, t in zip(h.phones, h.phone_starts):
            if item.keep_from <= item.start + t < item.keep_to:
                phones.append(p)
                starts.append(round(item.start + t, 3))
    whole = len(pieces) == 1 and pieces[0][1] is not None
    return Hypothesis(sorted(char, key=lambda w: w.start), sorted(phone, key=lambda w: w.start), phones, starts,
                      pieces[0][1].reference_words if whole else None)


def _as_samples(audio, sample_rate: int | None) -> np.ndarray:
    """Samples in memory (numpy array or tensor, ``(N,)`` or ``(channels, N)``) -> ``(N,)`` at 16 kHz."""
    if sample_rate is None:
        raise ConfigError("give sample_rate= with samples in memory (e.g. transcribe(samples, sample_rate=16000))")
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ConfigError(f"sample_rate must be a positive number of samples a second, not {sample_rate!r}")
    wav = as_numpy(audio)
    if wav.ndim not in (1, 2):
        raise AudioError(f"samples: expected shape (N,), (N, channels) or (channels, N), not {tuple(wav.shape)}")
    if not np.issubdtype(wav.dtype, np.floating):
        raise AudioError(f"samples: expected floating-point samples in [-1, 1], not {wav.dtype}")
    if wav.ndim == 1:
        wav = wav[:, None]
    elif wav.shape[0] < wav.shape[1]:
        # channels first, as librosa and torchaudio give them; soundfile gives (frames, channels):
        # time is the longer axis either way
        wav = wav.T
    # the checks, down-mix and resampling of audio read from a file: (frames, channels) in
    return prepare_samples(wav, sample_rate, "samples")


def _lexicon(bundle: Bundle):
    """The bundle's lexicon (read on first use), with the decoding's added words (said by the
    bundle's G2P model where no pronunciation is given)."""
    lexicon = LazyLexicon(bundle.lexicon)
    if not bundle.decoding.words and not bundle.decoding.boost:
        return lexicon
    from .g2p import pronounce_words

    added = bundle.decoding.added_words(lexicon)
    return lexicon.load().with_words(pronounce_words(added, bundle.g2p)) if added else lexicon


def load_acoustic_model(bundle: Bundle) -> RNNModel | Ensemble:
    """The model recognition runs: the bundle's exported one, or a bare checkpoint's weights
    exported in memory (that needs torch: the training extra); with the bundle's ensemble
    members, all of them as one :class:`~asr.rnn.Ensemble`."""
    models = [exported_model(p) for p in (bundle.runtime or bundle.model, *bundle.ensemble.members)]
    return Ensemble(models, bundle.ensemble) if len(models) > 1 else models[0]


class Transcriber:
    """A loaded bundle (model, lexicon, decoding), ready to turn audio into :class:`Transcript` objects.

    ``asr.load()`` makes one from a bundle folder; ``Transcriber(bundle)`` from a
    :class:`~asr.bundle.Bundle` (default: the shipped one, as ``asr transcribe`` decodes).

    >>> rec = asr.Transcriber(asr.load_bundle())
    >>> [t.text for t in rec.transcribe(["672-122797-0060.opus", "672-122797-0060.opus"])]
    ['it is a very stupid story', 'it is a very stupid story']
    """

    def __init__(self, bundle: Bundle | None = None):
        bundle = load_bundle() if bundle is None else bundle
        self.bundle = bundle
        self.model = load_acoustic_model(bundle)
        self.lexicon = _lexicon(bundle)
        self.head = bundle.head
        self.decoding = bundle.decoding
        self.beam = make_beam_decoder(bundle.head, self.lexicon, bundle.decoding, bundle.spellings, bundle.g2p)

    @functools.cached_property
    def narrowband_model(self) -> RNNModel | None:
        """The bundle's model for audio recorded at 8 kHz or less (read on first use), else ``None``."""
        return exported_model(self.bundle.narrowband) if self.bundle.narrowband else None

    def model_for(self, rate: int) -> RNNModel | Ensemble:
        """The acoustic model that hears audio recorded at ``rate`` Hz: the bundle's narrow-band model
        at :data:`~asr.features.NARROWBAND_RATE` (8 kHz) or less where it has one, else its model."""
        if rate <= NARROWBAND_RATE and self.bundle.narrowband:
            return self.narrowband_model
        return self.model

    def transcribe(self, audio, sample_rate: int | None = None, *, workers: int = 0, progress: bool = False):
        """Words with times and confidences, as ``asr transcribe`` gives them.

        ``audio`` is a file (-> :class:`Transcript`; a file that cannot be used raises
        :class:`~asr.features.AudioError` naming it), a list of files, folders, ``@lists`` and
        manifests (-> list of transcripts in input order, one per file named, a file named twice
        twice; a file that cannot be used gives one with ``error`` set), or samples in memory (numpy array or torch tensor, floats in
        [-1, 1], ``(N,)``, soundfile's ``(N, channels)`` or librosa's and torchaudio's ``(channels, N)``:
        time is the longer axis) at ``sample_rate`` Hz (-> :class:`Transcript`), or a list of such
        arrays (-> list of transcripts).
        ``workers`` > 0 recognises batches in that many processes, one core each.
        """
        if isinstance(audio, (str, Path)):
            paths = expand_inputs([str(audio)])
            if not paths:  # as the CLI says it: an empty folder is a mistake, not an empty result
                raise AudioError(f"no audio files found in {audio}")
            if len(paths) == 1 and paths[0] == str(audio):
                (t,) = self.transcribe_files(paths, workers=0)
                if t.error:
                    raise AudioError(t.error)
                return t
            return list(self.transcribe_files(paths, workers=workers, progress=progress, in_order=True))
        if isinstance(audio, (list, tuple)) and audio and all(not isinstance(a, (str, Path)) for a in audio):
            return [self.transcribe(a, sample_rate) for a in audio]  # arrays, not paths
        if isinstance(audio, (list, tuple)):
            named = expand_inputs([str(a) for a in audio], unique=False)
            if not named:
                raise AudioError(f"no audio files found in {' '.join(map(str, audio)) or 'an empty list'}")
            # A file named twice is recognised once and answered twice, so the list keeps its
            # positions (the CLI's --out instead keeps one record a file).
            paths = expand_inputs(named)
            done = dict(zip(map(os.path.realpath, paths),
                            self.transcribe_files(paths, workers=workers, progress=progress, in_order=True)))
            return [dataclasses.replace(t, path=p, words=list(t.words)) for p in named
                    for t in [done[os.path.realpath(p)]]]
        samples = _as_samples(audio, sample_rate)
        (result,) = [t for _, t, _ in self.recognize([samples], rates=[sample_rate])]
        result.path = ""
        if result.error:
            raise AudioError(result.error)
        return result

    def with_decoding(self, **changes) -> "Transcriber":
        """This recognizer with some decoding options changed (``phrases=[...]``, ``grammar="g.gram"``,
        :class:`~asr.decode.DecodingConfig` fields): a new search over the same model and lexicon."""
        other = object.__new__(Transcriber)
        other.__dict__.update(self.__dict__)
        other.bundle = self.bundle.with_options(**changes)
        other.decoding = other.bundle.decoding
        if (other.decoding.words, other.decoding.boost) != (self.decoding.words, self.decoding.boost):
            other.lexicon = _lexicon(other.bundle)
        other.beam = make_beam_decoder(other.head, other.lexicon, other.decoding, other.bundle.spellings,
                                       other.bundle.g2p)
        return other

    def stream(self, **options) -> "Stream":
        """A new live stream through this recognizer (:class:`asr.stream.Stream`): ``accept``
        audio chunks, read partial and final results. ``options`` change the bundle's
        :class:`~asr.stream.StreamingConfig` (``chunk=0.24``, ``endpoint_silence=0.8``)."""
        from .stream import Stream, StreamingConfig, read_streaming

        config, stats = read_streaming(self.bundle.streaming) if self.bundle.streaming else (StreamingConfig(), None)
        try:
            config = dataclasses.replace(config, **options)
        except TypeError:
            raise ConfigError(f"unknown streaming option(s) {sorted(options)}; options: "
                              f"{', '.join(f.name for f in dataclasses.fields(StreamingConfig))}") from None
        narrow = self.bundle.narrowband_streaming
        return Stream(self, config, stats, read_streaming(narrow)[1] if narrow and self.bundle.narrowband else None)

    def transcribe_files(self, paths: Iterable[str | Path], batch_seconds: float = 240.0, workers: int = 0,
                         progress: bool = False, in_order: bool = False) -> Iterator[Transcript]:
        """Yield one transcript per path; unreadable files give ``error`` set.

        In order of completion, or with ``in_order`` in the order of ``paths`` (finished files
        are held back until those before them are done). ``batch_seconds`` bounds the audio in
        one batch (and so memory); ``workers`` > 0 transcribes batches in that many processes,
        one core each (see :func:`default_workers`); 0 does everything in this process, with
        its BLAS threads.
        """
        done = ((i, t) for i, t, _ in self.recognize([str(p) for p in paths], batch_seconds, workers, progress))
        if not in_order:
            yield from (t for _, t in done)
            return
        pending: dict[int, Transcript] = {}
        next_index = 0
        for i, t in done:
            pending[i] = t
            while next_index in pending:
                yield pending.pop(next_index)
                next_index += 1

    def recognize(self, sources: list, batch_seconds: float = 240.0, workers: int = 0, progress: bool = False, *,
                  both_heads: bool = False, references: list[str | None] | None = None, evidence: bool = False,
                  rates: list[int | None] | None = None) -> Iterator[tuple[int, Transcript, Hypothesis]]:
        """``(position in sources, transcript, hypothesis)`` in order of completion: the one path
        from audio to words of `transcribe`, `evaluate`, `calibrate` (the stages: windows and
        batches, :mod:`asr.plan`; features; the model, :mod:`asr.rnn`; the search, :mod:`asr.decode`).

        ``sources``: file paths, or 16 kHz samples ``(N,)`` in memory. ``both_heads`` decodes the
        phone head's words even when the char head is the one searched; ``references`` (a
        transcript per source, or ``None``) are forced-aligned where a source is one window
        (``Hypothesis.reference_words``); ``evidence`` keeps each word's evidence (to fit a
        calibrator on); ``rates`` (one per source, or ``None``) the rate samples in memory were recorded
        at before they were resampled to 16 kHz (default 16 kHz; a file's header says its own): audio
        recorded at 8 kHz or less is heard by the bundle's narrow-band model, if it has one. A source
        that cannot be used gives a transcript with ``error`` set."""
        items: list[Window] = []
        recorded = [SAMPLE_RATE] * len(sources)
        for i, src in enumerate(sources):
            try:
                seconds, recorded[i] = _info(src, rates[i] if rates else None)
                items += plan_windows(i, seconds)
            except AudioError as e:
                yield i, Transcript(src, error=str(e)), Hypothesis([], [], [])
        files: dict[int, FileResult] = {}
        for it in items:
            files.setdefault(it.file, FileResult(sources[it.file] if isinstance(sources[it.file], str) else ""))
            files[it.file].remaining += 1
        if "fork" not in multiprocessing.get_all_start_methods():  # Windows: no workers (see `_run_batches`)
            workers = 0
        if workers > 1:
            # Several batches per worker, so that the last ones can even out the loads (the model
            # gains little from batches larger than a few utterances).
            audio = sum(it.seconds for it in items)
            batch_seconds = min(batch_seconds, max(audio / (BATCHES_PER_WORKER * workers), CHUNK_SECONDS))
        batches = bucket_batches([it.seconds for it in items], batch_seconds, shuffle=False)
        # Longest batches first, each to whichever worker is free: the small ones come last
        # and even out the workers' loads, so no core sits idle while another finishes.
        batches.sort(key=lambda b: -sum(items[k].seconds for k in b))
        # Each batch is a whole job (read, featurise, run the model, search) for one worker, so
        # N workers keep N cores busy: the beam search, the costly part, is one utterance at a
        # time and can only go faster by running on several cores.
        bar = _Progress(len(sources), progress)
        job = _Recognition(self, sources, items, recorded, both_heads, references, evidence)
        for batch in _run_batches(job, batches, workers):
            for piece in batch:
                it = items[piece.k]
                if files[it.file].add(it, piece):
                    done, hyp = files.pop(it.file).finish(self.head)
                    bar.update(done)
                    yield it.file, done, hyp
        bar.close()


class FileResult:
    """One source's pieces (:class:`_Piece`, in any order) as they come back -> its transcript and
    hypothesis once all ``remaining`` are in: the words each window keeps, in file time."""

    def __init__(self, name: str, remaining: int = 0):
        self.transcript = Transcript(name)
        self.pieces: list[tuple[Window, Hypothesis | None]] = []
        self.remaining = remaining

    def add(self, item: Window, piece: _Piece) -> bool:
        """Take one item's piece; whether it was the last."""
        t = self.transcript
        if piece.error is not None:
            t.error = t.error or piece.error
        else:
            t.duration = max(t.duration, item.start + piece.seconds)
            self.pieces.append((item, piece.hyp))
        self.remaining -= 1
        return self.remaining == 0

    def finish(self, head: str) -> tuple[Transcript, Hypothesis]:
        t, hyp = self.transcript, merge_hypotheses(self.pieces)
        t.words = [] if t.error else hyp.words(head)
        t.text = text_of(t.words)
        return t, hyp


def _item_features(source, item: Window, config) -> tuple[np.ndarray | None, float]:
    """One item's features, ``None`` for digital silence (no sound, no words), and its seconds of audio."""
    wav = _read(source, item)
    return (compute_features(wav, config) if np.abs(wav).max() > 0 else None), wav.shape[0] / SAMPLE_RATE


class _ModelOutputs:
    """A batch of items -> the model's output for those with sound: ``(item indices, batch output)``
    pairs, read and featurised as :class:`_Recognition` does, in a worker process when there are
    workers (the same pool, :func:`_run_batches`)."""

    def __init__(self, transcriber: Transcriber, sources: list, items: list[Window], rates: list[int]):
        self.transcriber, self.sources, self.items, self.rates = transcriber, sources, items, rates

    def __call__(self, batch: list[int]) -> list[tuple[list[int], dict[str, np.ndarray]]]:
        features = self.transcriber.model.config.features
        loaded = [(k, f) for k in batch
                  if (f := _item_features(self.sources[self.items[k].file], self.items[k], features)[0]) is not None]
        return [([group[i][0] for i in idx], out)
                for model, group in _by_model(self.transcriber, loaded, [self.rates[self.items[k].file] for k, _ in loaded])
                for idx, out in model.forward_batches([f for _, f in group])]


def item_outputs(transcriber: Transcriber, sources: list, workers: int = 1, batch_seconds: float = 240.0
                 ) -> tuple[list[Window], list[tuple[list[int], dict[str, np.ndarray]]]]:
    """The model's output for every item of ``sources`` (files, windows of long ones), read,
    featurised and batched as :meth:`Transcriber.recognize` does, in ``workers`` processes, for
    searching them many ways (``asr tune``).

    Returns the items and ``(item indices, batch output)`` pairs of :meth:`asr.rnn.RNNModel.forward_batches`;
    items of digital silence have no output. A file that cannot be used raises its :class:`AudioError`.
    """
    info = [_info(src) for src in sources]
    items = [it for i, (seconds, _) in enumerate(info) for it in plan_windows(i, seconds)]
    batches = bucket_batches([it.seconds for it in items], batch_seconds, shuffle=False)
    rates = [rate for _, rate in info]
    outputs = [pair for done in _run_batches(_ModelOutputs(transcriber, sources, items, rates), batches, workers)
               for pair in done]
    return items, outputs


def load(bundle: str | Path | None = None, **options) -> Transcriber:
    """A recognizer: ``asr.load()`` (the shipped bundle) or ``asr.load("exp/x/bundle")``, ready to
    ``.transcribe("talk.flac")``.

    ``options`` change the bundle's decoding: ``head``, ``decoder`` and the fields of
    :class:`~asr.decode.DecodingConfig` (``asr.load(beam_size=500)``, ``asr.load(decoder="greedy")``),
    and the models heard (``ensemble=[...]``, ``narrowband="none"`` or another narrow-band model's file:
    :meth:`~asr.bundle.Bundle.with_options`). A checkpoint file (``.pt``) instead of a bundle folder
    is decoded greedily (a warning says so).

    >>> rec = asr.load()
    >>> rec.transcribe("672-122797-0060.opus").text
    'it is a very stupid story'
    >>> asr.load(decoder="greedy").decoding.decoder
    'greedy'
    """
    import warnings

    from .bundle import resolve

    checkpoint = bundle is not None and Path(bundle).is_file()
    return Transcriber(resolve(None if checkpoint else bundle, bundle if checkpoint else None,
                               warn=lambda message: warnings.warn(message, stacklevel=3), **options))


class _Progress:
    """Files done, audio hours and real-time factor, on a tqdm bar: on a terminal only (into a log,
    a bar redrawn in place is only noise), and tqdm imported only then (its import is a short
    command's time otherwise spent for nothing)."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="file", file=sys.stderr)
        self.audio, self.start = 0.0, time.perf_counter()

    def update(self, t: Transcript) -> None:
        if self.bar is None:
            return
        self.audio += t.duration
        wall = time.perf_counter() - self.start
        self.bar.set_postfix(audio_h=f"{self.audio / 3600:.2f}", rtf=f"{wall / max(self.audio, 1e-9):.4f}")
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------
# Output: results.jsonl (resumable) and per-file formats



def read_results(path: Path) -> dict[str, Transcript]:
    """Records of a results.jsonl; a torn last line (crash while writing) is cut off the file."""
    done: dict[str, Transcript] = {}
    if not path.is_file():
        return done
    data = path.read_bytes()
    good = data.rfind(b"\n") + 1
    if good < len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
    for line in data[:good].decode("utf-8").splitlines():
        if line.strip():
            t = Transcript.from_json(json.loads(line))
            done[t.path] = t
    return done


def output_name(path: str) -> str:
    """File name stem for per-file outputs: the audio's stem plus a short hash of its full path."""
    return f"{Path(path).stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(words: list[Word], max_words: int = 12, max_gap: float = 1.0) -> list[list[Word]]:
    cues: list[list[Word]] = []
    for w in words:
        if cues and len(cues[-1]) < max_words and w.start - cues[-1][-1].end <= max_gap:
            cues[-1].append(w)
        else:
            cues.append([w])
    return cues


def format_transcript(t: Transcript, fmt: str, min_confidence: float = 0.0) -> str:
    """One transcript as txt, json, jsonl (one line: for streams of many files), srt, vtt
    or ctm (Kaldi: ``utt 1 start dur word conf``). The text formats (txt, srt, vtt, ctm) leave
    out words whose confidence is below ``min_confidence``; json and jsonl keep every word."""
    if min_confidence > 0 and fmt not in ("json", "jsonl"):
        words = [w for w in t.words if w.confidence >= min_confidence]
        t = dataclasses.replace(t, words=words, text=text_of(words))
    if fmt == "txt":
        return t.text + "\n"
    if fmt == "json":
        return json.dumps(t.to_json(), indent=2) + "\n"
    if fmt == "jsonl":
        return json.dumps(t.to_json()) + "\n"
    if fmt == "ctm":
        utt = Path(t.path).stem
        return "".join(f"{utt} 1 {w.start:.3f} {w.end - w.start:.3f} {w.word} {w.confidence:.4f}\n" for w in t.words)
    if fmt in ("srt", "vtt"):
        sep = "," if fmt == "srt" else "."
        blocks = []
        for i, cue in enumerate(_cues(t.words), 1):
            head = f"{i}\n" if fmt == "srt" else ""
            blocks.append(f"{head}{_timestamp(cue[0].start, sep)} --> {_timestamp(cue[-1].end, sep)}\n"
                          + " ".join(w.word for w in cue) + "\n")
        return ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(blocks)
    raise ConfigError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def transcribe_to_dir(transcriber: Transcriber, paths: list[str], out_dir: str | Path, formats: list[str] = (),
                      workers: int = 0, progress: bool = True, min_confidence: float = 0.0,
                      log=None) -> tuple[int, int]:
    """Transcribe ``paths`` into ``out_dir/results.jsonl`` (+ per-file formats, see
    :func:`format_transcript` for ``min_confidence``), skipping files already there.

    Each record is appended and flushed to disk as soon as its file is finished. Files already
    done get the outputs asked for, and every output of theirs already there is written again
    where ``min_confidence`` changes it. ``log`` (e.g. printing to stderr) is told each file that
    fails, ``error: PATH: reason``, and how many outputs were written again. Returns
    ``(transcribed now, failed in total)``.
    """
    for fmt in formats:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    out_dir = check_output_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _OutputLock(out_dir):
        return _transcribe_to_dir(transcriber, paths, out_dir, formats, workers, progress, min_confidence,
                                  log or (lambda message: None))


class _OutputLock:
    """An exclusive lock on ``out_dir/.lock`` for one run: a second run on the same folder is refused.

    ``flock`` locks are released by the kernel when their holder dies, however it dies, so a
    killed run never leaves the folder locked (its workers die with it: see ``_die_with``).
    """

    def __init__(self, out_dir: Path):
        self.path = out_dir / ".lock"

    def __enter__(self) -> "_OutputLock":
        self.file = open(self.path, "a")
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            return self
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise UserError(f"{self.path.parent}: another `asr transcribe` is writing there; "
                            f"wait for it to finish or give another --out") from None
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def _transcribe_to_dir(transcriber: Transcriber, paths: list[str], out_dir: Path, formats: list[str],
                       workers: int, progress: bool, min_confidence: float, log) -> tuple[int, int]:
    results_path = out_dir / "results.jsonl"
    remove_stale_temporaries(out_dir)  # left by atomic_write_text in a run killed mid-write (we hold the lock)
    claim_output_folder(out_dir, recognition_options(transcriber.bundle))
    # A file is known by its resolved path: given again as another path (relative, a link), it is done.
    done = {os.path.realpath(p): t for p, t in read_results(results_path).items()}
    written = {os.path.realpath(p): p for p in read_results(results_path)}
    # Done files get from their records, with no recognition: the outputs in these formats that
    # are missing (a rerun asking for another format), and every output of theirs whose text
    # --min-confidence changes (the earlier run's other formats too, or they would disagree).
    rewritten = 0
    for key, t in done.items():
        if t.error is None:
            stem = output_name(written[key])
            for fmt in FORMATS:
                target = out_dir / f"{stem}.{fmt}"
                if fmt not in formats and not target.is_file():
                    continue
                text = format_transcript(t, fmt, min_confidence)
                if not target.is_file() or target.read_text(encoding="utf-8") != text:
                    rewritten += target.is_file()
                    atomic_write_text(target, text)
    if rewritten:
        log(f"{out_dir}: {rewritten} output file(s) of files done before written again (--min-confidence "
            f"{min_confidence:g})")
    todo = [p for p in paths if os.path.realpath(p) not in done]
    count = 0
    try:
        with open(results_path, "a", encoding="utf-8") as f:
            for t in transcriber.transcribe_files(todo, workers=workers, progress=progress):
                # Outputs first, record last: a file whose record is on disk has all its outputs.
                if t.error is None:
                    for fmt in formats:
                        atomic_write_text(out_dir / f"{output_name(t.path)}.{fmt}",
                                          format_transcript(t, fmt, min_confidence))
                f.write(json.dumps(t.to_json()) + "\n")
                f.flush()
                os.fsync(f.fileno())
                if t.error is not None:
                    log(f"error: {t.error}")
                done[os.path.realpath(t.path)] = t
                count += 1
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        # What is on disk stays usable: per-file outputs are written atomically, and a record
        # torn by the failed write is cut off by the next run (read_results).
        raise OutputError(f"{out_dir}: {os.strerror(e.errno).lower()} after {count} file(s) transcribed now; "
                          f"{results_path.name} keeps every finished record: make room and rerun the same "
                          f"command to go on") from None
    failed = sum(1 for p in paths if done[os.path.realpath(p)].error is not None)
    return count, failed


OPTIONS_FILE = "options.json"  # in an output folder: what recognised the files of its results.jsonl


def recognition_options(b: Bundle) -> dict:
    """What decides the words of a bundle: the model and everything its search reads (by sha256), the
    head and the decoding. Output formats are not among them: they are written again from the records."""
    from .bundle import BUNDLE_FILE
    from .io import sha256

    files = {"model": b.model, "lexicon": b.lexicon, "lm": b.decoding.lm, "calibration": b.decoding.calibration,
             "grammar": b.decoding.grammar, "g2p": b.g2p}
    # bundle.json holds the sha256 of every file of the bundle (checked when it loaded): only files
    # from elsewhere (a bare checkpoint, an --lm or --calibration given) are hashed here
    digests = {"bundle.json": sha256(b.path / BUNDLE_FILE)} if b.path is not None else {}
    digests |= {k: sha256(p) for k, p in files.items() if p and (b.path is None or Path(p).parent != b.path)}
    # which LM and calibrator (or none) by name; their content is in the digests
    decoding = {k: (v and Path(v).name) if k in ("lm", "calibration", "grammar") else list(v) if k in ("phrases", "words", "boost") and v
                else v for k, v in dataclasses.asdict(b.decoding).items()}
    return {"head": b.head, "decoding": decoding, "sha256": digests}


def claim_output_folder(out_dir: str | Path, options: dict, results: str = "results.jsonl") -> None:
    """The one rule of every command that writes a folder of results (`transcribe`, `evaluate`,
    `tune`, `calibrate`, `report`): record ``options`` (what decides the results, as JSON holds
    them) in ``out_dir/options.json``, or refuse, before any work, to add to or overwrite results
    made with other options; the same options again are welcome (resumed or redone). ``results``
    names the file whose presence without options.json means results of unknown options.
    ``out_dir`` must be a folder (or not exist yet)."""
    out_dir = check_output_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / OPTIONS_FILE
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = None
        if before != options:
            before = before if isinstance(before, dict) else {}
            changed = [k for k in options if k != "decoding" and before.get(k) != options[k]]
            changed += [f"decoding.{k}" for k in options.get("decoding", {})
                        if (before.get("decoding") or {}).get(k) != options["decoding"][k]]
            what = {"sha256": "model, lexicon, LM or calibrator"}
            raise UserError(f"{out_dir}: its results were made with other options (another "
                            f"{', '.join(what.get(k, k) for k in changed) or OPTIONS_FILE}); give another --out, "
                            f"or remove {out_dir} to redo them")
    elif (out_dir / results).is_file() and (out_dir / results).stat().st_size:
        raise UserError(f"{out_dir}: holds {results} of unknown options (no {OPTIONS_FILE}); give another --out")
    else:
        atomic_write_text(path, json.dumps(options, indent=2) + "\n")


class OutputError(UserError):
    """The output folder cannot take what is written (disk full, quota): the run stops, resumable."""
