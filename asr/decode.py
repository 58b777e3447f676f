"""From a model's CTC outputs to each head's words: greedy, or the beam search a
:class:`DecodingConfig` asks for, with calibrated confidences.

The stage is split by what it does: :mod:`asr.ctc` (best path, greedy words, forced
alignment), :mod:`asr.search` (lexicon + LM beam search, joint rescoring) and
:mod:`asr.confidence` (each word's evidence and the calibrator); this module joins them for
one batch of model output (:func:`decode_batch`) or feature matrices (:func:`recognize`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .confidence import word_evidence
from .ctc import Hypothesis, Word, align_words, greedy_hypotheses, text_of
from .rnn import BATCH_FRAMES, RNNModel
from .search import BeamDecoder, DecodingConfig, best_words, make_beam_decoder
from .text import Lexicon

__all__ = ["BeamDecoder", "DecodingConfig", "Hypothesis", "Word", "decode_batch", "make_beam_decoder", "recognize",
           "text_of"]


def decode_batch(out: dict[str, np.ndarray], lexicon: Lexicon, frame_seconds: float,
                 phone_words_too: bool = True, beam: "BeamDecoder | None" = None,
                 nbests: list | None = None) -> list[Hypothesis]:
    """Hypotheses for one batch of model output (see :meth:`asr.rnn.RNNModel.forward`).

    Both heads are decoded greedily; with ``beam``, the words of ``beam.head`` come from
    its beam search instead (rescored as ``beam.config`` says: :func:`~asr.search.rescore_nbest`), with their
    evidence (:func:`word_evidence`) and confidences calibrated if the config says so.
    ``nbests``: each utterance's n-best where the search has already run (a stream's
    :class:`~asr.search.IncrementalSearch`), else ``beam.search`` finds them.
    """
    hyps, paths = greedy_hypotheses(out, lexicon, frame_seconds,
                                     phone_words_too and (beam is None or beam.head != "phone"))
    if beam is not None:
        other = "phone" if beam.head == "char" else "char"
        if nbests is None:
            nbests = beam.search(out[beam.head], out["lengths"], frame_seconds)
        for b, (n, nbest) in enumerate(zip(np.asarray(out["lengths"]).tolist(), nbests)):
            words = best_words(nbest, out[other][b, :n], other, lexicon, beam.config, beam.rnnlm,
                               member_outputs(out, beam.head, b, n))
            words = word_evidence(beam.lm_evidence(words), out[beam.head][b, :n], beam.vocab, paths[b][beam.head],
                                  paths[b]["char"] if other == "char" else None, hyps[b].words(other), frame_seconds,
                                  out["char"][b, :n] if other == "char" else None)
            hyps[b] = dataclasses.replace(hyps[b], **{f"{beam.head}_words": beam.calibrate(words)})
    return hyps


def member_outputs(out: dict, head: str, b: int, n: int) -> list[tuple[np.ndarray, float]]:
    """An n-best ensemble's other models' ``head`` log-probabilities ``(n, V)`` for utterance ``b``
    of a batch, each with its weight (:meth:`asr.rnn.Ensemble.forward`); none for one model."""
    return [(m[head][b, :n], w) for m, w in zip(out.get("members", ()), out.get("member_weights", ()))]


def recognize(model: RNNModel, feats: list[np.ndarray], lexicon: Lexicon,
              batch_frames: int = BATCH_FRAMES, phone_words_too: bool = True,
              beam: "BeamDecoder | None" = None,
              references: list[list[str] | None] | None = None, reference_head: str = "char") -> list[Hypothesis]:
    """Hypotheses for feature matrices ``(T_i, D)``, batched by length, in input order
    (see :func:`decode_batch`; the model runs in :meth:`asr.rnn.RNNModel.forward_batches`).

    With ``references`` (words of a known transcript per matrix, or ``None``), each hypothesis
    also gets ``reference_words``: those words forced-aligned on ``reference_head``'s output
    (:func:`align_words`), to measure how far the decoded word times are from them."""
    results: list[Hypothesis | None] = [None] * len(feats)
    for idx, out in model.forward_batches(feats, batch_frames):
        for b, (i, h) in enumerate(zip(idx, decode_batch(out, lexicon, model.config.frame_seconds,
                                                          phone_words_too, beam))):
            if references is not None and references[i] is not None:
                h.reference_words = align_words(out[reference_head][b, :out["lengths"][b]], references[i],
                                                reference_head, lexicon, model.config.frame_seconds)
            results[i] = h
    return results  # type: ignore[return-value]
