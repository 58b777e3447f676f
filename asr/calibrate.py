"""Fitting the word-confidence calibrator (`asr calibrate`): the training side of the confidences.

The words of the bundle's own decoding on a dev set, corrupted copies of it (the recipe's
``[augment]``) and generated non-speech (all wrong) are the data; :func:`asr.confidence.fit_calibrator`
fits the logistic regression, and :class:`asr.confidence.Calibrator` is what recognition uses. The
corrupted copies and the non-speech are made with torch's random numbers (asr.augment), so
this module needs the training extra, as `asr train` does.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .augment import AugmentConfig, coloured_noise, corrupt_randomly
from .bundle import Bundle
from .confidence import FEATURES, feature_matrix, fit_calibrator
from .errors import UserError
from .features import SAMPLE_RATE, load_audio
from .io import atomic_write_text
from .manifest import read_manifest
from .metrics import expected_calibration_error, roc_auc, words_right
from .transcribe import Transcriber, claim_output_folder, recognition_options

# Non-speech the calibrator is fitted on (its words are all wrong), kept apart from the kinds
# the tests and benchmarks/confidence.py check it on (white and pink noise, a 440 Hz tone, silence).
FIT_NON_SPEECH = ("brown", "chord", "chirp", "clicks", "hum")


SYNTHETIC_KINDS = ("white", "pink", "brown", "tone", "chord", "chirp", "clicks", "hum", "silence")


def synthetic_audio(kind: str, seconds: float = 30.0, seed: int = 0) -> np.ndarray:
    """``(samples,)`` of generated non-speech at 16 kHz, peak 0.5 unless said.

    Kinds (:data:`SYNTHETIC_KINDS`): ``white``, ``pink`` (1/f), ``brown`` (1/f^2) noise; ``tone`` (440 Hz), ``chord``
    (three tones with vibrato), ``chirp`` (100 Hz to 4 kHz sweeps); ``clicks`` (a 1 ms click
    every 120 ms); ``hum`` (50 Hz and harmonics with faint hiss); ``silence`` (digital zeros).
    """
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SAMPLE_RATE)
    t = torch.arange(n, dtype=torch.float64) / SAMPLE_RATE
    if kind == "silence":
        return np.zeros(n, dtype=np.float32)
    if kind in ("white", "pink", "brown"):
        x = coloured_noise(kind, n, seed).double()
    elif kind == "tone":
        x = torch.sin(2 * math.pi * 440 * t)
    elif kind == "chord":
        vibrato = 0.003 * torch.sin(2 * math.pi * 5 * t)
        x = sum(torch.sin(2 * math.pi * f * t * (1 + vibrato)) for f in (261.6, 329.6, 392.0))
    elif kind == "chirp":
        period = 2.0  # seconds per sweep, exponential from 100 Hz to 4 kHz
        phase_t = t % period
        k = math.log(4000 / 100) / period
        x = torch.sin(2 * math.pi * 100 * (torch.exp(k * phase_t) - 1) / k)
    elif kind == "clicks":
        x = torch.zeros(n, dtype=torch.float64)
        for start in range(0, n, int(0.12 * SAMPLE_RATE)):
            x[start:start + 16] = torch.randn(min(16, n - start), generator=g, dtype=torch.float64)
    elif kind == "hum":
        x = sum(torch.sin(2 * math.pi * 50 * h * t) / h for h in (1, 2, 3, 5)) \
            + 0.01 * torch.randn(n, generator=g, dtype=torch.float64)
    else:
        raise ValueError(f"unknown kind of audio {kind!r}")
    return (0.5 * x / x.abs().max().clamp_min(1e-12)).float().numpy()


CALIBRATION_L2 = (1e-3, 1e-2, 1e-1)  # penalties tried; the one of least cross-validated log-loss is fitted


def calibrate(manifest: str | Path, out_dir: str | Path, bundle: Bundle, workers: int = 1,
              non_speech: tuple[str, ...] = FIT_NON_SPEECH, non_speech_seconds: float = 30.0,
              augment: "AugmentConfig | None" = None, log=print) -> dict[str, Any]:
    """Fit the word-confidence calibrator of ``bundle``'s decoding (beam search of its head) on
    ``manifest``, a dev set, and write it to ``out_dir/calibration.json`` with
    ``calibration-summary.json``. The words come the way of ``asr transcribe``.

    Every beam word of the dev set is labelled right or wrong by the WER alignment with its
    reference; words the search finds in generated non-speech (``non_speech`` kinds, see
    :func:`synthetic_audio`) are all wrong. With ``augment`` (a training
    config's ``[augment]``), ``augment.copies`` corrupted copies of the dev set join the fitting
    data, labelled by the same references, so that the confidences hold under noise, rooms and
    phone lines too. The figures reported are honest ones: the calibrator is fitted on half of
    the speakers and scored on the other half, both ways (2-fold cross-validation by speaker),
    for each L2 penalty of ``CALIBRATION_L2``; the shipped one is then fitted on all with the
    penalty of the lowest cross-validated log-loss.
    """

    bundle = bundle.with_options(decoder="beam", calibration="none")
    head = bundle.head
    utts = read_manifest(manifest)
    claim_output_folder(out_dir, recognition_options(bundle) | {
        "manifest": str(Path(manifest).resolve()), "non_speech": list(non_speech), "non_speech_seconds": non_speech_seconds,
        "augment": json.loads(json.dumps(dataclasses.asdict(augment))) if augment else None},  # as options.json holds it
                        results="calibration.json")
    tr = Transcriber(bundle)
    copies = augment.copies if augment is not None else 0
    paths = [u.audio for u in utts]
    sources: list = list(paths)
    for copy in range(1, copies + 1):  # corrupted in this process, fixed seeds: the same copies every run
        for k, path in enumerate(paths):
            x, _ = corrupt_randomly(torch.from_numpy(load_audio(path)), augment, augment.seed + 1_000_003 * copy + k,
                                    paths[:k] + paths[k + 1:])  # babble: the other dev talkers
            sources.append(x.numpy())
    words: list = [[] for _ in sources]
    for i, t, _ in tr.recognize(sources, workers=workers, evidence=True):
        if t.error:
            raise UserError(f"{manifest}: utterance {utts[i % len(utts)].id}: {t.error}")
        words[i] = t.words
    speakers = sorted({u.speaker for u in utts})
    evidence, right, fold, corrupted = [], [], [], []
    for i, ws in enumerate(words):
        u = utts[i % len(utts)]
        evidence += [w.evidence for w in ws]
        right += words_right(u.text, [w.word for w in ws])
        fold += [speakers.index(u.speaker) % 2] * len(ws)
        corrupted += [i >= len(utts)] * len(ws)
    noise = [synthetic_audio(kind, non_speech_seconds, seed=k) for k, kind in enumerate(non_speech)]
    noise_words = [[]] * len(noise)
    for k, t, _ in tr.recognize(noise, evidence=True):
        noise_words[k] = t.words
    for k, ws in enumerate(noise_words):
        evidence += [w.evidence for w in ws]
        right += [False] * len(ws)
        fold += [k % 2] * len(ws)
    log(f"{len(evidence)} words: {sum(right)} right; {sum(len(ws) for ws in noise_words)} from non-speech "
        f"({', '.join(f'{kind} {len(ws)}' for kind, ws in zip(non_speech, noise_words))})")
    corrupted += [False] * (len(evidence) - len(corrupted))
    features = tuple(FEATURES)
    crosses = {}
    for l2 in CALIBRATION_L2:
        cross = [0.0] * len(evidence)
        for k in (0, 1):
            train = [i for i, f in enumerate(fold) if f != k]
            c = fit_calibrator([evidence[i] for i in train], [right[i] for i in train], features, head, l2=l2)
            for i, f in enumerate(fold):
                if f == k:
                    cross[i] = c.probability(evidence[i])
        crosses[l2] = cross
    y = np.asarray(right, dtype=np.float64)

    def log_loss(p: np.ndarray) -> float:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    losses = {l2: log_loss(np.asarray(cross, dtype=np.float64)) for l2, cross in crosses.items()}
    l2 = min(CALIBRATION_L2, key=losses.get)
    cross = crosses[l2]
    calibrator = fit_calibrator(evidence, right, features, head, l2=l2)
    n_dev = sum(len(ws) for ws in words[:len(utts)])
    dev = range(n_dev)  # the clean dev words, without the corrupted copies' and the noise's

    def scores(indices) -> dict[str, float]:
        truth = [right[i] for i in indices]
        return {"auc": round(roc_auc([cross[i] for i in indices], truth), 4),
                "ece": round(expected_calibration_error([cross[i] for i in indices], truth), 4)}

    raw = [evidence[i]["acoustic_min"] for i in dev]
    summary = {
        "manifest": str(manifest), "head": head, "words": len(dev), "right": sum(right[i] for i in dev),
        "corrupted_copies": copies, "corrupted_words": sum(corrupted),
        "non_speech_words": sum(len(ws) for ws in noise_words),
        "l2": l2, "cross_validated_log_loss": {str(k): round(v, 5) for k, v in losses.items()},
        "auc_raw": round(roc_auc(raw, [right[i] for i in dev]), 4),
        "ece_raw": round(expected_calibration_error(raw, [right[i] for i in dev]), 4),
        **scores(dev),
        **({"corrupted": scores([i for i, c in enumerate(corrupted) if c])} if copies else {}),
        # each input alone (0.5 = no use; below 0.5 = it tells the other way)
        "auc_by_feature": {f: round(roc_auc(column.tolist(), [right[i] for i in dev]), 4)
                           for f, column in zip(features, feature_matrix([evidence[i] for i in dev], features).T)},
        "calibrator": dataclasses.asdict(calibrator),
    }
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "calibration.json", calibrator.to_json())
    atomic_write_text(out_dir / "calibration-summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
