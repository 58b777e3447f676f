"""Transcribe audio files with a trained model (the shipped one by default)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .decode import Word, recognize
from .features import AudioError, SAMPLE_RATE, compute_features, load_audio
from .model import load_model
from .text import load_lexicon


@dataclass
class Transcript:
    path: str
    text: str = ""
    words: list[Word] = field(default_factory=list)
    duration: float = 0.0  # seconds of audio
    error: str | None = None  # set instead of text when the file could not be transcribed


class Transcriber:
    """A loaded model and lexicon, ready to turn files into :class:`Transcript`s."""

    def __init__(self, model_path: str | Path | None = None, head: str = "char", lexicon: str | None = None):
        if head not in ("char", "phone"):
            raise ValueError(f"head must be 'char' or 'phone', not {head!r}")
        self.model = load_model(model_path)
        self.lexicon = load_lexicon(lexicon)
        self.head = head

    def transcribe(self, paths: Iterable[str | Path], batch_files: int = 16) -> Iterator[Transcript]:
        """Yield one transcript per path, in order; unreadable files give a transcript with ``error`` set."""
        chunk: list[str] = []
        for p in paths:
            chunk.append(str(p))
            if len(chunk) == batch_files:
                yield from self._chunk(chunk)
                chunk = []
        if chunk:
            yield from self._chunk(chunk)

    def _chunk(self, paths: list[str]) -> list[Transcript]:
        results = [Transcript(p) for p in paths]
        feats, ok = [], []
        for r in results:
            try:
                wav = load_audio(r.path)
            except AudioError as e:
                r.error = str(e)
                continue
            r.duration = wav.shape[0] / SAMPLE_RATE
            feats.append(compute_features(wav, self.model.config.features))
            ok.append(r)
        if feats:
            for r, h in zip(ok, recognize(self.model, feats, self.lexicon, phone_words_too=self.head == "phone")):
                r.words = h.words(self.head)
                r.text = h.text(self.head)
        return results


def real_time_factor(paths: list[str], model_path: str | Path | None = None, threads: int = 1) -> dict[str, float]:
    """Wall seconds per audio second of :meth:`Transcriber.transcribe` (model loading excluded)."""
    torch.set_num_threads(threads)
    t = Transcriber(model_path)
    start = time.perf_counter()
    audio = sum(r.duration for r in t.transcribe(paths))
    wall = time.perf_counter() - start
    return {"audio_seconds": audio, "wall_seconds": wall, "rtf": wall / audio}
