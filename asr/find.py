"""Finding phrases in recordings (keyword search, PocketSphinx's kws mode as the peer):
``asr find "phrase" [more...] FILES|folders --out DIR``.

Each file is transcribed with the phrases raised in the search (their words added to the
lexicon where it lacks them, :class:`asr.decode.DecodingConfig` ``boost``) and no confidence
floor, and every place where a phrase's words follow one another in the transcript is a hit:
file, phrase, start and end (seconds), and a confidence, the lowest calibrated confidence of
its words (the chance that all of them are right is at most that). Hits at or above the
threshold are written to ``DIR/hits.jsonl`` and ``DIR/hits.csv``; the transcripts go to
``DIR/results.jsonl`` as `asr transcribe --out` writes them, so an interrupted run resumes.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import ConfigError
from .io import atomic_write_text
from .bundle import Bundle
from .transcribe import Transcriber, Transcript, read_results, transcribe_to_dir

THRESHOLD = 0.5  # hits whose confidence is below this are not listed (0 lists all)


@dataclass(frozen=True)
class Hit:
    path: str
    phrase: str
    start: float  # seconds
    end: float
    confidence: float


def phrase_words(phrases: list[str]) -> list[list[str]]:
    """Phrases as word lists (lower case, written as transcripts are)."""
    from .g2p import check_word

    out = []
    for p in phrases:
        words = [check_word(w) for w in p.split()]
        if not words:
            raise ConfigError(f"phrase {p!r} has no word")
        out.append(words)
    return out


def hits_in(t: Transcript, phrases: list[list[str]]) -> list[Hit]:
    """Every occurrence of each phrase in a transcript's words, in time order."""
    words = [w.word for w in t.words]
    hits = []
    for phrase in phrases:
        n = len(phrase)
        for i in range(len(words) - n + 1):
            if words[i:i + n] == phrase:
                span = t.words[i:i + n]
                hits.append(Hit(t.path, " ".join(phrase), span[0].start, span[-1].end,
                                round(min(w.confidence for w in span), 4)))
    return sorted(hits, key=lambda h: (h.start, h.phrase))


def searching(bundle: Bundle, phrases: list[str]) -> Bundle:
    """``bundle`` with the phrases raised (beside the boosts it has) and every word kept (no
    confidence floor)."""
    return bundle.with_options(boost=(*(bundle.decoding.boost or ()), *phrases), confidence_floor=0.0)


def find(bundle: Bundle, phrases: list[str], paths: list[str], out_dir: str | Path,
         threshold: float = THRESHOLD, workers: int = 0, progress: bool = True, log=None) -> tuple[int, int, int]:
    """Search ``paths`` for ``phrases`` with ``bundle`` into ``out_dir`` (resumable); returns (files
    transcribed now, files that failed, hits written)."""
    if not 0 <= threshold <= 1:
        raise ConfigError(f"--threshold must be a confidence in [0, 1], not {threshold}")
    words = phrase_words(phrases)
    out_dir = Path(out_dir)
    # the search is built once, for the phrases (not the bundle's own and then again)
    done, failed = transcribe_to_dir(Transcriber(searching(bundle, phrases)), paths, out_dir, workers=workers,
                                     progress=progress, log=log)
    records = read_results(out_dir / "results.jsonl")
    hits = [h for t in records.values() if t.error is None for h in hits_in(t, words) if h.confidence >= threshold]
    atomic_write_text(out_dir / "hits.jsonl", "".join(json.dumps(asdict(h)) + "\n" for h in hits))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "phrase", "start", "end", "confidence"])
    writer.writerows([h.path, h.phrase, h.start, h.end, h.confidence] for h in hits)
    atomic_write_text(out_dir / "hits.csv", buf.getvalue())
    return done, failed, len(hits)
