"""Word confidences: the probability that a word is right, from what the beam search knew about it.

The decoder gives each word raw evidence (``Word.evidence``, see
:func:`word_evidence`, below): its n-best posterior, the posteriors of its tokens, its LM
score, how well the forced alignment and the greedy readings of both heads support it, how much
of the utterance and of the word's own frames the model heard as speech, its length. None of these is a probability that the word is right. A :class:`Calibrator`, a
logistic regression over them fitted on a dev set by ``asr calibrate`` (words labelled right
or wrong by aligning them to the reference), turns them into one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .ctc import Token, Word, viterbi_path
from .errors import UserError
from .text import BOUNDARY as BOUNDARY_TOKEN
from .text import CHAR_VOCAB

# The regression's inputs: name -> (the word's evidence it reads, how). Probabilities enter as
# log-odds (a posterior of 0.999 against 0.99 is ten times fewer errors, not 1 % more), counts
# and durations as logs, the rest as they are. Speech enters twice, as log-odds and their square:
# real speech lies in between, silence reads near 0 and noise unusually high (the model hears
# phones everywhere in it), so its effect on a word's chance of being right is not monotone.
# How the context features (CONTEXT_KEYS of the neighbours and the utterance) enter.
CONTEXT_KINDS = {"posterior": "logit", "acoustic_min": "logit", "acoustic_mean": "logit", "activity": "logit", "llr": "raw",
         "char_llr": "raw", "match": "raw", "other_match": "raw", "agree": "raw", "lm": "raw", "unigram": "raw",
         "seconds": "log", "tokens": "log"}
FEATURES = {
    "posterior": ("posterior", "logit"),  # share of the n-best's mass with this word at this time
    "acoustic_min": ("acoustic_min", "logit"),  # lowest posterior of its tokens where they were emitted
    "acoustic_mean": ("acoustic_mean", "logit"),  # geometric mean of those posteriors
    "activity": ("activity", "logit"),  # mean non-blank posterior over its frames
    "speech": ("speech", "logit"),  # share of the utterance's frames heard as non-blank
    "speech_sq": ("speech", "logit_sq"),
    "llr": ("llr", "raw"),  # forced alignment's log-prob gap to the best frame by frame (<= 0)
    "match": ("match", "raw"),  # the same head's greedy reading spells it (share)
    "other_match": ("other_match", "raw"),  # the character head's greedy reading spells it (share)
    "agree": ("agree", "raw"),  # the other head's greedy reading has it (0/1)
    "lm": ("lm", "raw"),  # LM log-probability given the words before it
    "seconds": ("seconds", "log"),  # from first to last token
    "tokens": ("tokens", "log"),  # characters or phones
    "char_llr": ("char_llr", "raw"),  # llr of the character head spelling it (phone head searched; else 0)
    "unigram": ("unigram", "raw"),  # LM log-probability without context: rare words are misheard more
    "first": ("first", "raw"),  # first word of the utterance (0/1)
    "last": ("last", "raw"),  # last word (0/1)
    "words": ("words", "log"),  # words in the utterance
    "rate": ("rate", "raw"),  # the utterance's words a second
    # the neighbours' evidence (0 beyond the ends) and the utterance's mean: errors come in runs
    **{f"{side}_{key}": (f"{side}_{key}", CONTEXT_KINDS[key]) for side in ("prev", "next", "utt") for key in CONTEXT_KINDS},
}
EPS = 1e-4  # probabilities are clipped to [EPS, 1 - EPS] before the log-odds: +-9.2


class CalibrationError(UserError):
    pass


def _value(feature: str, evidence: dict[str, float]) -> float:
    key, kind = FEATURES[feature]
    x = evidence[key]
    if kind in ("logit", "logit_sq"):
        p = min(max(x, EPS), 1 - EPS)
        z = math.log(p / (1 - p))
        return z if kind == "logit" else z * z
    if kind == "log":
        return math.log(max(x, 1e-3))
    return float(x)


def feature_matrix(evidence: list[dict[str, float]], features: tuple[str, ...]) -> np.ndarray:
    """``(N, F)`` regression inputs: each word's evidence, transformed (see ``FEATURES``)."""
    return np.array([[_value(f, e) for f in features] for e in evidence],
                    dtype=np.float64).reshape(len(evidence), len(features))


@dataclass(frozen=True)
class Calibrator:
    """``P(right) = sigmoid(bias + weights . x)``, ``x`` the word's transformed evidence."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    head: str = "phone"  # the head whose beam words it was fitted on

    def probability(self, evidence: dict[str, float]) -> float:
        z = self.bias + sum(w * _value(f, evidence) for f, w in zip(self.features, self.weights))
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "features": list(self.features), "weights": list(self.weights)}, indent=2) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> "Calibrator":
        """Read a calibrator written by ``asr calibrate``; a clear error if the file is not one."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            features, weights = tuple(d["features"]), tuple(float(w) for w in d["weights"])
            calibrator = cls(features, weights, float(d["bias"]), str(d.get("head", "phone")))
        except FileNotFoundError:
            raise CalibrationError(f"{path}: confidence calibrator not found") from None
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
            raise CalibrationError(f"{path}: not a confidence calibrator ({type(e).__name__}: {e})") from None
        unknown = [f for f in features if f not in FEATURES]
        if unknown or len(features) != len(weights):
            raise CalibrationError(f"{path}: not a confidence calibrator (unknown features {unknown} "
                                   f"or {len(weights)} weights for {len(features)} features)")
        return calibrator


def fit_calibrator(evidence: list[dict[str, float]], right: list[bool], features: tuple[str, ...] = tuple(FEATURES),
                   head: str = "phone", l2: float = 1e-3) -> Calibrator:
    """Logistic regression of ``right`` (one flag a word) on the words' evidence, by L-BFGS on the
    mean log-loss plus ``l2`` times the squared weights of the standardised inputs."""
    if len(evidence) != len(right) or not evidence:
        raise ValueError(f"{len(evidence)} words of evidence but {len(right)} labels")
    x = feature_matrix(evidence, features)
    y = np.asarray(right, dtype=np.float64)
    mean, scale = x.mean(0), np.maximum(x.std(0, ddof=1) if len(x) > 1 else np.ones(x.shape[1]), 1e-6)
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])  # standardised, so one l2 suits every feature; bias last
    penalty = np.full(z.shape[1], 2 * l2)
    penalty[-1] = 0.0  # the bias is not shrunk

    def loss(theta: np.ndarray) -> float:
        logits = z @ theta
        return float(np.mean(np.logaddexp(0, logits) - y * logits) + l2 * (theta[:-1] ** 2).sum())

    # Newton's method (iteratively reweighted least squares): the loss is convex, and each
    # step solves the quadratic model; a step that does not lower it is halved
    theta = np.zeros(z.shape[1])
    current = loss(theta)
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(z @ theta, -50, 50)))
        grad = z.T @ (p - y) / len(y) + penalty * theta
        hess = (z * (p * (1 - p))[:, None]).T @ z / len(y) + np.diag(penalty) + 1e-12 * np.eye(len(theta))
        step = np.linalg.solve(hess, grad)
        size = 1.0
        while size > 1e-6 and loss(theta - size * step) > current:
            size /= 2
        theta, previous = theta - size * step, current
        current = loss(theta)
        if abs(previous - current) < 1e-13 or np.abs(size * step).max() < 1e-10:
            break
    weights = theta[:-1] / scale  # back to the raw (transformed) inputs
    bias = float(theta[-1] - (weights * mean).sum())
    return Calibrator(tuple(features), tuple(round(float(v), 6) for v in weights), round(bias, 6), head)


# ---------------------------------------------------------------------------------------------
# Word evidence: what the search knew about each word, the raw material of its confidence
# (the Calibrator above turns it into a probability that the word is right)

NEAR = 0.1  # seconds: another reading has "the same word" if its span, widened this much, overlaps


SPAN_PAD = 3  # frames either side of a word where the greedy reading may spell it


def _near(v: Word, w: Word) -> bool:
    return v.word == w.word and v.start - NEAR < w.end and w.start < v.end + NEAR


def nbest_posteriors(nbest: list[tuple[list[Word], float]]) -> list[float]:
    """For each word of the best hypothesis (``nbest[0]``), the share of the n-best's probability
    mass (softmax of the scores) in hypotheses that have the same word at about the same time.

    A word all competing hypotheses agree on gets 1; one the search was torn about, less.
    Hypotheses that differ only in alignment count separately: their mass adds up.
    """
    scores = np.array([score for _, score in nbest], dtype=np.float64)
    if not np.isfinite(scores.max()):  # none scores (e.g. the other head cannot say any in so few
        scores = np.zeros_like(scores)  # frames, see nbest_scores): no score tells them apart
    mass = np.exp(scores - scores.max())
    mass = (mass / mass.sum()).tolist()
    spans = []  # per hypothesis, its words by spelling: a word is looked for among its namesakes only
    for words, _ in nbest:
        by_word: dict[str, list[Word]] = {}
        for v in words:
            by_word.setdefault(v.word, []).append(v)
        spans.append(by_word)
    return [min(1.0, sum(m for by_word, m in zip(spans, mass) if any(_near(v, w) for v in by_word.get(w.word, ()))))
            for w in nbest[0][0]]


def word_evidence(words: list[Word], log_probs: np.ndarray, vocab, greedy: list[Token],
                  char_greedy: list[Token] | None, other_words: list[Word], frame_seconds: float,
                  char_log_probs: np.ndarray | None = None) -> list[Word]:
    """One utterance's beam words with the evidence that needs the whole utterance.

    ``log_probs`` ``(T, V)`` are the searched head's (``vocab``), ``greedy`` its best path;
    ``char_greedy`` is the character head's best path when the phone head is searched (else
    ``None``), ``other_words`` the other head's greedy words. Adds, per word: ``speech``, the
    share of the utterance's frames that are not sure blanks (P(blank) < 0.5: unusually high in
    noise, near 0 in silence); ``activity``, the mean non-blank posterior over the word's
    frames; ``llr``, the mean per-frame log-probability gap between the CTC forced alignment of
    the hypothesis and the best token of each frame, over the word's frames (0: the acoustics
    alone would have said it); ``match``, the share of the word's tokens that the greedy reading
    of the same head has, in order, within ``SPAN_PAD`` frames of it (longest common
    subsequence); ``other_match``, the same for the character head's reading of the phone
    head's words (``agree``: it has the very word); ``char_llr``, ``llr`` of the character head
    (``char_log_probs``, ``(T, 29)``) forced to spell the phone head's words: the only evidence
    that tells homophones apart, which the phone head cannot. Then :func:`context_evidence`.
    """
    from rapidfuzz.distance import LCSseq

    if not words:
        return words
    nonblank = 1.0 - np.exp(log_probs[:, vocab.blank].astype(np.float32))
    speech = float((nonblank > 0.5).mean())
    running = [0.0] + np.cumsum(nonblank, dtype=np.float64).tolist()  # a word's mean activity from two sums, not a slice each
    llrs = _forced_gaps(words, log_probs, vocab)
    char_llrs = (_forced_gaps(words, char_log_probs, CHAR_VOCAB, spell=lambda w: list(w.word))
                 if char_log_probs is not None else [0.0] * len(words))

    def match(w: Word, tokens: list[Token], symbols: list[str], tokens_vocab) -> float:
        first = int(round(w.start / frame_seconds)) - SPAN_PAD
        last = int(round(w.end / frame_seconds)) + SPAN_PAD
        seen = [tokens_vocab.tokens[t.id] for t in tokens if first <= t.start < last and t.id != tokens_vocab.boundary]
        return LCSseq.similarity(symbols, seen) / max(len(symbols), 1)

    out = []
    for w, llr, char_llr in zip(words, llrs, char_llrs):
        first = int(round(w.start / frame_seconds))
        last = max(first + 1, int(round(w.end / frame_seconds)))
        end = min(last, len(nonblank))
        evidence = {"speech": speech, "activity": (running[end] - running[first]) / (end - first) if first < end else 0.0,
                    "llr": llr, "match": match(w, greedy, list(w.tokens), vocab),
                    "other_match": match(w, char_greedy, list(w.word), CHAR_VOCAB) if char_greedy is not None else 0.0,
                    "agree": float(any(_near(v, w) for v in other_words)), "seconds": w.end - w.start,
                    "char_llr": char_llr}
        out.append(dataclasses.replace(w, evidence={**w.evidence, **evidence}))
    return context_evidence(out)


# Evidence a word's neighbours lend it: errors come in runs (a misheard stretch puts several
# wrong words side by side), so the words around a doubtful one, and the utterance as a whole,
# say something about it.
# (On dev, 2-fold CV by speaker, logistic regression: AUC 0.814 with the word's own evidence,
# 0.819 with its neighbours' posterior, llr, char_llr, agree, other_match and acoustic_min,
# 0.844 with all of these keys and the utterance's word count and rate.)


CONTEXT_KEYS = tuple(CONTEXT_KINDS)  # the calibrator's table of how each enters is the one list


MIN_UTTERANCE_SECONDS = 0.5  # floor of the span that words per second are counted over


def context_evidence(words: list[Word]) -> list[Word]:
    """One utterance's words with ``prev_K`` / ``next_K`` (the neighbour's evidence ``K`` for
    each of ``CONTEXT_KEYS``; 0 at the ends, with ``first`` / ``last`` 1), ``utt_K`` (the
    mean over the utterance's words), ``words`` (their number) and ``rate`` (words a second
    from the first word's start to the last one's end) added to each word's evidence."""
    if not words:
        return words
    keys = [k for k in CONTEXT_KEYS if all(k in w.evidence for w in words)]
    means = {f"utt_{k}": sum(w.evidence[k] for w in words) / len(words) for k in keys}
    means["words"] = float(len(words))
    means["rate"] = len(words) / max(words[-1].end - words[0].start, MIN_UTTERANCE_SECONDS)
    out = []
    for i, w in enumerate(words):
        ctx = {"first": float(i == 0), "last": float(i == len(words) - 1), **means}
        for side, j in (("prev", i - 1), ("next", i + 1)):
            ctx.update({f"{side}_{k}": words[j].evidence[k] if 0 <= j < len(words) else 0.0 for k in keys})
        out.append(dataclasses.replace(w, evidence={**w.evidence, **ctx}))
    return out


def _forced_gaps(words: list[Word], log_probs: np.ndarray, vocab, spell=lambda w: list(w.tokens)) -> list[float]:
    """Per word, the mean over its frames of (log-prob of the forced alignment's token - best
    log-prob) for the CTC forced alignment of the whole hypothesis, each word spelt in
    ``vocab``'s tokens by ``spell`` (:func:`asr.ctc.viterbi_path`); a word's frames run
    from the boundary before it to the one after it."""
    symbols = [s for k, w in enumerate(words) for s in ([BOUNDARY_TOKEN] if k else []) + spell(w)]
    lp = log_probs.astype(np.float32)
    try:
        path = viterbi_path(lp, vocab.encode(symbols), vocab.blank)
    except ValueError:  # a symbol the head lacks: the words are doubtful
        path = None
    if path is None:  # more tokens than frames
        return [FORCED_GAP_FLOOR] * len(words)
    labels, states = path
    gap = lp[np.arange(len(labels)), labels] - lp.max(-1)
    # the frames of the n - 1 boundary tokens cut the utterance into the n words' spans
    edges = [0]
    for t in range(len(labels)):
        if labels[t] == vocab.boundary and (t == 0 or states[t] != states[t - 1]):
            edges.append(t)
        if labels[t] == vocab.boundary and (t == len(labels) - 1 or states[t + 1] != states[t]):
            edges.append(t + 1)
    edges.append(len(gap))
    return [max(float(gap[a:b].mean()), FORCED_GAP_FLOOR) if b > a else FORCED_GAP_FLOOR
            for a, b in zip(edges[0::2], edges[1::2])]


FORCED_GAP_FLOOR = -10.0  # nats a frame: a word the acoustics do not support at all
