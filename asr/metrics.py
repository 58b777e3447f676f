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
