"""Word crops: short clips of one to a few words cut from aligned training utterances.

A model trained only on LibriSpeech's 2-35 s utterances has never heard a word on its own: given a
clip cut tight around one word (a spoken digit, a command) it mostly answers with blanks. Crops
teach it that. Each training utterance is forced-aligned with a trained model
(:func:`asr.ctc.align_words` on its phone head), and a few spans of ``1 ... max_words`` consecutive
words are cut from it, each at the midpoints of the gaps to the words outside it (where a
sentence starts or ends, up to ``EDGE`` seconds of its pause are kept).

The crops are written as FLAC files beside a manifest (``crops.jsonl``), the same utterance format
training reads, so that a training config can take the original manifest and the crops together
(``extra_manifests``: ``recipes/librispeech/local/crops.py`` makes them, ``conf/finetune-crops.toml``
trains on them).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ctc import Word, align_words
from .features import SAMPLE_RATE, compute_features, load_audio
from .io import atomic_write_text
from .manifest import Utterance, read_manifest, write_manifest

EDGE = 0.2  # seconds of a sentence's leading or trailing pause kept in a crop that starts or ends there


@dataclass(frozen=True)
class CropConfig:
    per_utterance: int = 3  # crops drawn from each utterance (fewer where it has too few words)
    max_words: int = 3  # a crop holds 1 ... max_words consecutive words, the count drawn uniformly
    seed: int = 0


def cut_points(words: list[Word], duration: float) -> list[tuple[float, float]]:
    """Where each aligned word's crop would begin and end (seconds): the midpoint of the gap to the
    word before and to the word after; at the sentence's ends, ``EDGE`` s beyond the word (within
    ``[0, duration]``).

    >>> cut_points([Word("a", 0.5, 0.8), Word("b", 1.0, 1.3)], 2.0)
    [(0.3, 0.9), (0.9, 1.5)]
    """
    points = []
    for i, w in enumerate(words):
        start = (words[i - 1].end + w.start) / 2 if i else max(0.0, w.start - EDGE)
        end = (w.end + words[i + 1].start) / 2 if i + 1 < len(words) else min(duration, w.end + EDGE)
        points.append((round(start, 4), round(end, 4)))
    return points


def choose_spans(n_words: int, config: CropConfig, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``config.per_utterance`` non-overlapping spans ``[first, last)`` of 1 ... ``max_words``
    words among ``n_words``, drawn with ``rng``, in order."""
    spans: list[tuple[int, int]] = []
    free = np.ones(n_words, dtype=bool)
    for _ in range(4 * config.per_utterance):  # a few tries: a drawn span may overlap an earlier one
        if len(spans) == config.per_utterance:
            break
        size = int(rng.integers(1, config.max_words + 1))
        if size > n_words:
            continue
        first = int(rng.integers(0, n_words - size + 1))
        if free[first:first + size].all():
            free[first:first + size] = False
            spans.append((first, first + size))
    return sorted(spans)


def make_crops(transcriber, utts: list[Utterance], out_dir: str | Path, config: CropConfig = CropConfig(),
               log=print) -> list[Utterance]:
    """Cut crops from ``utts`` (aligned with ``transcriber``'s model and lexicon) into
    ``out_dir/audio/``, list them in ``out_dir/crops.jsonl`` and return them.

    Resumable: a finished manifest is read back and nothing is redone; clips already written by an
    interrupted run are kept. Utterances whose transcript cannot be aligned (a word without a
    pronunciation, too few frames) give no crops and are counted in the log.
    """
    out_dir = Path(out_dir)
    manifest = out_dir / "crops.jsonl"
    if manifest.exists():
        return read_manifest(manifest)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    import soundfile as sf

    model, lexicon = transcriber.model, transcriber.lexicon
    rng = np.random.default_rng(config.seed)
    crops: list[Utterance] = []
    unaligned = 0
    for k in range(0, len(utts), 32):  # 32 utterances a batch: the model's batches, a bounded memory
        group = utts[k:k + 32]
        wavs = [load_audio(u.audio) for u in group]
        feats = [compute_features(w, model.config.features) for w in wavs]
        for idx, out in model.forward_batches(feats):
            for b, i in enumerate(idx):
                u, wav = group[i], wavs[i]
                words = align_words(out["phone"][b, :out["lengths"][b]], u.text.split(), "phone", lexicon,
                                    model.config.frame_seconds)
                if words is None:
                    unaligned += 1
                    continue
                points = cut_points(words, len(wav) / SAMPLE_RATE)
                for n, (first, last) in enumerate(choose_spans(len(words), config, rng)):
                    start, end = points[first][0], points[last - 1][1]
                    path = out_dir / "audio" / f"{u.id}-crop{n}.flac"
                    clip = wav[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]
                    if not path.exists():
                        tmp = path.with_suffix(".tmp.flac")
                        sf.write(tmp, clip, SAMPLE_RATE)
                        tmp.replace(path)  # a killed run leaves no half-written clip under the final name
                    crops.append(Utterance(f"{u.id}-crop{n}", str(path.resolve()), round(len(clip) / SAMPLE_RATE, 3),
                                           " ".join(w.word for w in words[first:last]), u.speaker, SAMPLE_RATE))
        log(f"crops: {min(k + 32, len(utts))}/{len(utts)} utterances, {len(crops)} crops")
    write_manifest(crops, manifest)
    summary = {"utterances": len(utts), "unaligned": unaligned, "crops": len(crops),
               "hours": round(sum(c.duration for c in crops) / 3600, 3), "config": dataclasses.asdict(config)}
    atomic_write_text(out_dir / "crops.json", json.dumps(summary, indent=1) + "\n")
    return crops
