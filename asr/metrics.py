"""Error rates, computed with jiwer (Levenshtein alignment of words or characters)."""

from __future__ import annotations

from dataclasses import dataclass

import jiwer


@dataclass(frozen=True)
class ErrorCounts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Errors / reference length; 0 for an empty reference with no insertions, else inf."""
        if self.reference_length == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.reference_length

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(self.substitutions + other.substitutions, self.deletions + other.deletions,
                           self.insertions + other.insertions, self.reference_length + other.reference_length)


def _counts(out) -> ErrorCounts:
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, out.substitutions + out.deletions + out.hits)


def word_errors(refs: list[str], hyps: list[str]) -> ErrorCounts:
    """Word-level counts over a corpus of space-separated sentences."""
    return _corpus(refs, hyps, jiwer.process_words)


def char_errors(refs: list[str], hyps: list[str]) -> ErrorCounts:
    """Character-level counts (spaces included, as jiwer's CER)."""
    return _corpus(refs, hyps, jiwer.process_characters)


def token_errors(refs: list[list[str]], hyps: list[list[str]]) -> ErrorCounts:
    """Counts over token sequences (phones): each token is mapped to one word for jiwer."""
    return word_errors([" ".join(r) for r in refs], [" ".join(h) for h in hyps])


def _corpus(refs: list[str], hyps: list[str], fn) -> ErrorCounts:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    total = ErrorCounts()
    for ref, hyp in zip(refs, hyps):
        if not ref.strip():
            # jiwer rejects empty references; every hypothesis word is then an insertion.
            total += ErrorCounts(insertions=len(hyp.split()) if fn is jiwer.process_words else len(hyp))
            continue
        total += _counts(fn(ref, hyp if hyp else ""))
    return total


def wer(refs: list[str], hyps: list[str]) -> float:
    return word_errors(refs, hyps).rate


def cer(refs: list[str], hyps: list[str]) -> float:
    return char_errors(refs, hyps).rate


def score_heads(refs: list[str], char_hyps: list[str], phone_hyps: list[str],
                ref_phones: list[list[str] | None], hyp_phones: list[list[str]]) -> dict[str, float | int]:
    """WER of both heads, CER of the character head, PER of the phone head (fractions).

    Utterances whose reference has no pronunciation (``None`` in ``ref_phones``: a word
    missing from the lexicon) are left out of the PER only; ``per_utterances`` counts the rest.
    """
    keep = [i for i, p in enumerate(ref_phones) if p is not None]
    return {
        "wer_char": wer(refs, char_hyps),
        "cer": cer(refs, char_hyps),
        "wer_phone": wer(refs, phone_hyps),
        "per": token_errors([ref_phones[i] for i in keep], [hyp_phones[i] for i in keep]).rate if keep else float("nan"),
        "per_utterances": len(keep),
    }


def roc_auc(scores: list[float], right: list[bool]) -> float:
    """Area under the ROC curve of ``scores`` separating right (True) from wrong words: the chance
    that a random right word scores above a random wrong one, ties counting half (Mann-Whitney U).
    NaN unless both kinds are present."""
    pos = sum(right)
    neg = len(right) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum, i = 0.0, 0
    while i < len(order):  # average ranks (1-based) over runs of equal scores
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1
        rank_sum += rank * sum(right[order[k]] for k in range(i, j + 1))
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def calibration_bins(confidences: list[float], right: list[bool], bins: int = 10) -> list[tuple[int, float, float]]:
    """``(count, mean confidence, share right)`` for ``bins`` equal-width confidence bins
    ([0, 0.1), ..., [0.9, 1.0]), empty bins included as ``(0, nan, nan)``."""
    groups: list[list[int]] = [[] for _ in range(bins)]
    for k, c in enumerate(confidences):
        groups[min(int(c * bins), bins - 1)].append(k)
    return [(len(g), sum(confidences[k] for k in g) / len(g), sum(right[k] for k in g) / len(g)) if g
            else (0, float("nan"), float("nan")) for g in groups]


def expected_calibration_error(confidences: list[float], right: list[bool], bins: int = 10) -> float:
    """ECE: the mean over words of |mean confidence - share right| of their confidence bin."""
    if not confidences:
        return float("nan")
    return sum(n * abs(c - r) for n, c, r in calibration_bins(confidences, right, bins) if n) / len(confidences)


def words_right(ref: str, hyp: list[str]) -> list[bool]:
    """For each hypothesis word, whether the WER alignment (jiwer) pairs it with the same reference word."""
    right = [False] * len(hyp)
    if not hyp or not ref.split():
        return right
    for chunk in jiwer.process_words(ref, " ".join(hyp)).alignments[0]:
        if chunk.type == "equal":
            right[chunk.hyp_start_idx:chunk.hyp_end_idx] = [True] * (chunk.hyp_end_idx - chunk.hyp_start_idx)
    return right


@dataclass(frozen=True)
class PairedBootstrap:
    """Two systems' WER on the same utterances, compared by resampling utterances.

    ``difference`` is WER(b) − WER(a) as a fraction (negative: b makes fewer errors);
    ``low``/``high`` bound its 95 % interval over the resamples; ``b_better`` is the share of
    resamples in which b has the lower WER (Bisani & Ney 2004's "probability of improvement").
    """

    difference: float
    low: float
    high: float
    b_better: float
    utterances: int
    samples: int


def paired_bootstrap(errors_a: list[int], errors_b: list[int], ref_words: list[int],
                     samples: int = 10_000, seed: int = 0) -> PairedBootstrap:
    """Compare systems a and b by the paired bootstrap over utterances (Bisani & Ney, ICASSP 2004).

    ``errors_a[i]``, ``errors_b[i]``: word errors of each system on utterance i;
    ``ref_words[i]``: its reference length. Each resample draws as many utterances as there
    are, with replacement, the same ones for both systems, and pools errors over words as WER
    does. Utterance-level resampling keeps the errors of one recording together, which are
    not independent of each other. Fixed ``seed``: the same inputs give the same figures.
    """
    import numpy as np

    n = len(ref_words)
    if not n or len(errors_a) != n or len(errors_b) != n:
        raise ValueError(f"paired bootstrap needs the same utterances for both systems: "
                         f"{len(errors_a)}, {len(errors_b)} and {n}")
    a, b, words = (np.asarray(x, dtype=np.int64) for x in (errors_a, errors_b, ref_words))
    if words.sum() == 0:
        raise ValueError("paired bootstrap: the references have no words")
    picks = np.random.default_rng(seed).integers(0, n, size=(samples, n))  # (samples, utterances)
    total = words[picks].sum(axis=1)
    diff = (b[picks].sum(axis=1) - a[picks].sum(axis=1)) / np.maximum(total, 1)  # (samples,)
    low, high = np.quantile(diff, [0.025, 0.975])
    return PairedBootstrap(difference=float((b.sum() - a.sum()) / words.sum()), low=float(low), high=float(high),
                           b_better=float((diff < 0).mean()), utterances=n, samples=samples)
