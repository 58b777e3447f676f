"""What the scripts here share: the dumped evidence, folds by speaker and two cross-validated scorers.

Each script adds inputs to ``asr.confidence.FEATURES`` (name -> evidence key, transform) and
scores sets of them by ROC AUC of right vs wrong words, 2-fold cross-validation by speaker
(half the speakers fit, the other half are scored, then the other way round).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from asr.confidence import FEATURES, feature_matrix, fit_calibrator
from asr.decode import Word, context_evidence

# How a further neighbour's copy of an input enters: probabilities as log-odds, the rest raw.
LOGIT_KEYS = ("posterior", "acoustic_min", "acoustic_mean", "activity")


@dataclass
class Words:
    """The dumped words of dev, in utterance order: ``rows`` as written by dump_evidence.py."""

    rows: list[dict]
    evidence: list[dict[str, float]]  # each row's "ev", extended in place by the context functions
    right: np.ndarray  # (N,) bool
    fold: np.ndarray  # (N,) 0 or 1: the speaker's half

    def utterances(self) -> dict[str, list[dict]]:
        """utterance id -> its rows, in order."""
        by_utt: dict[str, list[dict]] = {}
        for r in self.rows:
            by_utt.setdefault(r["utt"], []).append(r)
        return by_utt


def load(path: str) -> Words:
    rows = [json.loads(line) for line in open(path)]
    speakers = sorted({r["spk"] for r in rows})
    return Words(rows, [r["ev"] for r in rows], np.array([r["right"] for r in rows]),
                 np.array([speakers.index(r["spk"]) % 2 for r in rows]))


def add_context(words: Words) -> None:
    """The context inputs the shipped calibrator takes (``prev_K``, ``next_K``, ``utt_K``, ``words``,
    ``rate``, ``first``, ``last``: ``asr.decode.context_evidence``), added to each word's evidence."""
    for rs in words.utterances().values():
        spans = [Word(r["word"], r["start"], r["end"], evidence=r["ev"]) for r in rs]
        for r, w in zip(rs, context_evidence(spans)):
            r["ev"].update(w.evidence)


def add_neighbours(words: Words, keys: tuple[str, ...], sides: dict[str, int]) -> None:
    """``{side}_{key}``: the evidence of the word ``sides[side]`` places away (0 beyond the ends),
    as log-odds for LOGIT_KEYS, else raw; for neighbours further away than the shipped ones."""
    for rs in words.utterances().values():
        for k, r in enumerate(rs):
            for side, offset in sides.items():
                j = k + offset
                for key in keys:
                    r["ev"][f"{side}_{key}"] = rs[j]["ev"][key] if 0 <= j < len(rs) else 0.0
    for side in sides:
        for key in keys:
            FEATURES[f"{side}_{key}"] = (f"{side}_{key}", "logit" if key in LOGIT_KEYS else "raw")


def context(keys: tuple[str, ...], sides: tuple[str, ...] = ("prev", "next", "utt")) -> list[str]:
    return [f"{side}_{key}" for side in sides for key in keys]


def cv_logistic(words: Words, features: list[str], l2: float = 1e-3) -> float:
    """ROC AUC of asr's own calibrator (logistic regression) over ``features``."""
    p = np.zeros(len(words.right))
    for k in (0, 1):
        fit = np.flatnonzero(words.fold != k)
        calibrator = fit_calibrator([words.evidence[i] for i in fit], [bool(words.right[i]) for i in fit],
                                    tuple(features), l2=l2)
        for i in np.flatnonzero(words.fold == k):
            p[i] = calibrator.probability(words.evidence[i])
    return roc_auc_score(words.right, p)


def cv_trees(words: Words, features: list[str], **options) -> float:
    """ROC AUC of scikit-learn's gradient-boosted trees over the same inputs (``options`` override the defaults)."""
    x = feature_matrix(words.evidence, tuple(features)).numpy()
    p = np.zeros(len(words.right))
    for k in (0, 1):
        model = HistGradientBoostingClassifier(**{"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15,
                                                  "min_samples_leaf": 40, **options})
        model.fit(x[words.fold != k], words.right[words.fold != k])
        p[words.fold == k] = model.predict_proba(x[words.fold == k])[:, 1]
    return roc_auc_score(words.right, p)
