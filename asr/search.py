"""Beam search over one CTC head with a lexicon and a word n-gram LM (flashlight-text), and
joint rescoring of its n-best with the other head.

:class:`DecodingConfig` says how words are found; :func:`make_beam_decoder` builds the search
it asks for. Each word comes back with times, a raw confidence and the evidence its calibrated
confidence is computed from (:mod:`asr.confidence`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import statistics
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .confidence import Calibrator, nbest_posteriors
from .ctc import Token, Word, check_head, ctc_log_likelihood, group_words, lowest_posterior, seconds_of
from .errors import ConfigError
from .g2p import parse_words
from .io import sha256
from .lm import LMError, check_arpa, is_kenlm_binary
from .text import BOUNDARY as BOUNDARY_TOKEN
from .text import CHAR_VOCAB, PHONE_VOCAB, Lexicon


@contextlib.contextmanager
def _quiet_stderr():
    """Silence writes to file descriptor 2, including those of C++ libraries, for a moment."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class BeamDecoder:
    """CTC beam search over one head, words constrained to a lexicon, scored by an ARPA/KenLM LM.

    ``config`` (a :class:`DecodingConfig`) gives the LM, weights and pruning. For the character
    head a word is spelled by its letters; for the phone head by each of its pronunciations;
    the words are the LM's (its ``.words.txt``) that the lexicon has, or the whole lexicon.
    ``config.lm=None`` decodes with the lexicon alone. Words come back with
    times from the frames of their first and last tokens, and a confidence from the
    posteriors of the frames where their tokens were emitted.
    """

    def __init__(self, head: str, lexicon: Lexicon, config: "DecodingConfig", cache: str | Path | None = None,
                 g2p: str | Path | None = None):
        check_head(head)
        if config.lexicon_free and (head != "char" or config.lm is not None):
            raise ConfigError("lexicon-free search works on the character head only (--head char), without a word LM")
        self.grammar = config.load_grammar()
        if self.grammar is not None and config.lexicon_free:
            raise ConfigError("a grammar or phrase list needs the lexicon: not with --lexicon-free")
        lm = None if self.grammar is not None else config.lm  # a grammar is the search's language model
        if lm is not None and not Path(lm).is_file():
            raise FileNotFoundError(f"{lm}: language model not found")
        self.head, self.config = head, config
        self.rnnlm = None  # the n-best's RNN LM (`rescore_nbest`)
        if config.rescore is not None:
            from .rnnlm import RNNLM

            self.rnnlm = RNNLM(config.rescore)
        self.vocab = CHAR_VOCAB if head == "char" else PHONE_VOCAB
        self.lexicon_free = config.lexicon_free
        self.blank_skip = config.blank_skip  # see `skip_blank_frames`
        self.calibrator = None
        if config.calibration is not None:
            self.calibrator = Calibrator.load(config.calibration)
            if self.calibrator.head != head:
                raise ConfigError(f"{config.calibration}: calibrated for the {self.calibrator.head} head, "
                                  f"not the {head} head")
        added = [w for w, _ in parse_words(config.added_words(lexicon))] if config.words or config.boost else []
        if self.grammar is not None:
            spellings = spell_grammar(head, lexicon, self.grammar, g2p)
        else:
            spellings = None if config.lexicon_free else load_spellings(cache, spellings_key(head, lexicon, lm))
            if spellings is None:
                spellings = {} if config.lexicon_free else spell_vocabulary(head, lexicon, lm)
            # added words (in the lexicon given: see Transcriber) are words of the search, LM or not
            spellings |= spell_words(head, lexicon, [w for w in added if w not in spellings])
        if not config.lexicon_free and not spellings:
            raise ConfigError("no word of the vocabulary can be spelled with this head's tokens")
        try:
            with _quiet_stderr():  # KenLM draws a loading progress bar on stderr
                self.decoder = Flashlight(spellings, list(self.vocab.tokens), lm, config, grammar=self.grammar,
                                          stand_ins=stand_ins(lm, added) if lm and added else None,
                                          boosts=dict(parse_boosts(config.boost)) if config.boost else None)
        except RuntimeError as e:
            if lm is None:
                raise
            # KenLM's own message gives a C++ source line and a byte offset: find the bad line instead.
            if not is_kenlm_binary(lm):
                check_arpa(lm)
            raise LMError(f"{lm}: KenLM cannot load it: {str(e).splitlines()[-1]}") from None

    def lm_evidence(self, words: list[Word]) -> list[Word]:
        """``words`` (one utterance's, in order) with ``evidence["lm"]``: each word's LM log-probability
        given the words before it, and ``evidence["unigram"]``, without them (rare words are
        misheard more often); 0 without an LM."""
        if self.config.lm is None or self.grammar is not None:
            return [dataclasses.replace(w, evidence={**w.evidence, "lm": 0.0, "unigram": 0.0}) for w in words]
        lm = self.decoder.lm  # the search's own KenLM
        state, out = lm.start(False), []
        nothing = lm.start(True)  # no context: the unigram
        for w in words:
            index = self.decoder.word_dict.get_index(w.word)
            state, score = lm.score(state, index)
            _, unigram = lm.score(nothing, index)
            out.append(dataclasses.replace(w, evidence={**w.evidence, "lm": float(score), "unigram": float(unigram)}))
        return out

    def calibrate(self, words: list[Word]) -> list[Word]:
        """``words`` with calibrated confidences, if the config names a calibrator (with all their
        evidence), less those below ``confidence_floor``.

        With a grammar the sentence is kept or left out whole (a sentence less one of its words may be
        no sentence of the grammar): left out when its words' mean confidence is below the floor.
        Noise that the out-of-grammar rule lets through as a string of digits is heard at
        confidences near 0 (benchmarks/grammar_dev.py, RESULTS.md)."""
        if self.calibrator is None:
            return words
        floor = self.config.confidence_floor
        calibrated = [dataclasses.replace(w, confidence=round(self.calibrator.probability(w.evidence), 4)) for w in words]
        if self.grammar is not None:
            return calibrated if calibrated and statistics.fmean(w.confidence for w in calibrated) >= floor else []
        return [w for w in calibrated if w.confidence >= floor]

    def __call__(self, log_probs: np.ndarray, lengths: np.ndarray, frame_seconds: float) -> list[list[list[Word]]]:
        """``(B, T, V)`` log-probabilities -> for each utterance, its n-best lists of words."""
        return [[words for words, _ in nbest] for nbest in self.search(log_probs, lengths, frame_seconds)]

    search_in_thread = True  # see `search`

    def search(self, log_probs: np.ndarray, lengths: np.ndarray,
               frame_seconds: float) -> list[list[tuple[list[Word], float]]]:
        """Like calling the decoder, with each hypothesis's score (acoustic + weighted LM + word scores)."""
        if not self.search_in_thread or threading.current_thread() is not threading.main_thread():
            return self._search(log_probs, lengths, frame_seconds)
        # flashlight allocates and frees many small objects an utterance (hypotheses, LM
        # states). With glibc's malloc that ran ~1.8x slower on the main thread's heap than on
        # the separate heap (arena) glibc gives another thread, with every malloc tunable we tried
        # (benchmarks/beam_pruning.py --main-thread). A new thread per call, so that none is
        # left running when worker processes are forked; a caller already on another thread
        # (a worker process's, see asr.transcribe) searches on its own, so that the memory its
        # model run freed serves the search rather than staying in a second heap.
        with ThreadPoolExecutor(1, thread_name_prefix="asr-beam") as thread:
            return thread.submit(self._search, log_probs, lengths, frame_seconds).result()

    def _search(self, log_probs: np.ndarray, lengths: np.ndarray,
                frame_seconds: float) -> list[list[tuple[list[Word], float]]]:
        emissions = np.asarray(log_probs, dtype=np.float32)
        out = []
        for b, n in enumerate(np.asarray(lengths).tolist()):
            search = self.incremental()  # a whole utterance is one step of the streaming search
            search.accept(emissions[b, :n])
            out.append(search.finish(frame_seconds))
        return out

    def incremental(self) -> "IncrementalSearch":
        """A search of one utterance fed its frames as they come (:class:`IncrementalSearch`)."""
        return IncrementalSearch(self)

    def _words(self, hyp, emission: np.ndarray, frames: np.ndarray, frame_seconds: float) -> list[Word]:
        # `Flashlight` drops blanks and merges repeats; each token carries the step it was emitted
        # at, counted from an initial silence step that flashlight adds. Step k of the search
        # is frame frames[k] of the utterance.
        last = emission.shape[0] - 1  # flashlight may stamp the final token one step past the end
        steps = [min(max(t - 1, 0), last) for t in hyp.timesteps]
        tokens = [Token(tok, int(frames[k]), int(frames[k]) + 1, float(np.exp(emission[k, tok])))
                  for tok, k in zip(hyp.tokens, steps)]
        groups = group_words(tokens, self.vocab.boundary)
        spelled = [tuple(self.vocab.tokens[t.id] for t in group) for group in groups]
        # lexicon-free hypotheses have no words: a word is its characters between boundaries
        words = ["".join(s) for s in spelled] if self.lexicon_free else hyp.words
        return [Word(word, seconds_of(group[0].start, frame_seconds), seconds_of(group[-1].end, frame_seconds),
                     symbols, round(lowest_posterior(group), 4), _token_evidence(group))
                for word, group, symbols in zip(words, groups, spelled)]


def _token_evidence(tokens: list[Token]) -> dict[str, float]:
    """A beam word's acoustic evidence: the posteriors of its tokens at the frames where they were emitted."""
    logs = [math.log(max(t.prob, 1e-30)) for t in tokens]
    return {"acoustic_min": lowest_posterior(tokens), "acoustic_mean": math.exp(sum(logs) / len(logs)),
            "tokens": float(len(tokens))}


class IncrementalSearch:
    """One utterance's beam search, fed its frames as they come (streaming), with the best
    hypothesis so far at any time. Fed all at once, it is :meth:`BeamDecoder.search`, which
    runs through it: the frames are searched one by one either way, so how they are split
    into calls changes nothing.

    Each instance has its own flashlight decoder state over the beam decoder's shared trie and LM.
    """

    def __init__(self, beam: BeamDecoder):
        self.beam = beam
        self.decoder = beam.decoder.fresh()
        self.rows: list[np.ndarray] = []  # the searched frames' log-probabilities, (T_i, V) per accepted chunk
        # (the blank's less blank_penalty)
        self.frames: list[int] = []  # their indices in the utterance
        self.seen = 0  # frames accepted
        self.sure = False  # whether the last accepted frame was a sure blank (see `skip_blank_frames`)

    def accept(self, log_probs: np.ndarray) -> None:
        """Search the next ``(T, V)`` log-probabilities of the utterance."""
        if log_probs.shape[0] == 0:
            return
        log_probs = np.asarray(log_probs, dtype=np.float32)
        kept = skip_blank_frames(log_probs, self.beam.blank_skip, self.beam.vocab.blank, self.sure)
        if self.beam.blank_skip is not None:
            self.sure = bool(log_probs[-1, self.beam.vocab.blank] > math.log(self.beam.blank_skip))
        rows = np.ascontiguousarray(log_probs[kept])
        if self.beam.config.blank_penalty:  # only the blank's column: the words' token posteriors stay
            rows[:, self.beam.vocab.blank] -= self.beam.config.blank_penalty
        self.decoder.step(rows)
        self.rows.append(rows)
        self.frames += (kept + self.seen).tolist()
        self.seen += log_probs.shape[0]

    def best(self, frame_seconds: float) -> list[Word]:
        """The words of the best hypothesis so far (a partial result; no evidence)."""
        if not self.frames:
            return []
        return self.beam._words(self.decoder.best(), np.concatenate(self.rows), np.array(self.frames), frame_seconds)

    def finish(self, frame_seconds: float) -> list[tuple[list[Word], float]]:
        """End the utterance: its n-best (words, score), best first, as :meth:`BeamDecoder.search` gives them."""
        # flashlight's lexicon decoder closes a word only on a boundary token: give every
        # utterance one more frame, a certain boundary, right after its end.
        boundary = np.where(np.arange(len(self.beam.vocab.tokens)) == self.beam.vocab.boundary, 0.0, -1e4)
        boundary = boundary.astype(np.float32)[None]
        self.decoder.step(boundary)
        emission = np.concatenate([*self.rows, boundary])
        frames = np.array([*self.frames, self.seen])
        nbest = self.decoder.end()
        grammar = self.beam.grammar
        if grammar is not None:
            # Only the grammar's sentences come out. A sentence is complete only at its end, where
            # the grammar's `finish` blocks the others; until then the beam may have pruned every
            # hypothesis that completes one (by beam_threshold, for those still in the middle of a
            # word or a rule). Then the frames are searched again without that pruning (the beam
            # size still bounds it), and if no sentence comes out of that either, nothing was said.
            nbest = [h for h in nbest if grammar.accepts(h.words)]
            if not nbest:
                again = self.beam.decoder.fresh(beam_threshold=UNPRUNED)
                again.step(emission)
                nbest = [h for h in again.end() if grammar.accepts(h.words)]
            if nbest and out_of_grammar(emission, nbest[0].score, self.beam.vocab.blank,
                                        self.beam.config.grammar_reject):
                return []  # no sentence of the grammar was said: nothing, rather than the nearest command
        return [(self.beam._words(h, emission, frames, frame_seconds), float(h.score)) for h in nbest]


def out_of_grammar(emission: np.ndarray, score: float, blank: int, threshold: float) -> bool:
    """Whether the grammar's best sentence is too far below what was heard to be what was said.

    ``emission``: the searched ``(T, V)`` log-probabilities; ``score``: the best grammar
    hypothesis's (its path's log-probability: the grammar adds nothing on its sentences). The
    best free path (each frame's most likely token) scores at least as much; the gap between
    them, per frame where that path hears a token rather than a blank, is small when a sentence
    of the grammar was said and large when something else was (speech of other words, noise
    that sounds like speech). Above ``threshold`` it is rejected."""
    best = emission.argmax(-1)
    free = float(emission.max(-1).sum())
    heard = max(1, int((best != blank).sum()))
    return (free - score) / heard > threshold


def skip_blank_frames(log_probs: np.ndarray, threshold: float | None, blank: int = 0,
                      after_sure: bool = False) -> np.ndarray:
    """The frames of ``(T, V)`` CTC log-probabilities worth searching: all but the second and
    later frames of each run where the blank's posterior exceeds ``threshold`` (all if ``None``).

    A CTC model is peaky: most frames are near-certain blanks, and a hypothesis can only stay
    put through them. One frame of each such run is kept, so two equal tokens either side
    still read as two. ``after_sure``: the frame before these (of an earlier chunk) was a sure
    blank. Returns the ``(T',)`` frame indices kept, in order.
    """
    T = log_probs.shape[0]
    if threshold is None:
        return np.arange(T)
    sure = log_probs[:, blank] > math.log(threshold)
    follows_sure = np.concatenate([[after_sure], sure[:-1]])
    return np.flatnonzero(~(sure & follows_sure))


def distinct_words(nbest: list[tuple[list[Word], float]]) -> list[tuple[list[Word], float]]:
    """Each word sequence once, with its best score: flashlight's n-best repeats word sequences
    with other alignments."""
    unique: dict[tuple[str, ...], tuple[list[Word], float]] = {}
    for words, score in nbest:
        key = tuple(w.word for w in words)
        if key not in unique or score > unique[key][1]:
            unique[key] = (words, score)
    return list(unique.values())


def _ctc_scores(nbest: list[tuple[list[Word], float]], log_probs: np.ndarray, head: str, lexicon: Lexicon) -> np.ndarray:
    """Each hypothesis's CTC log-likelihood under ``head``'s ``log_probs (T, V)`` (``-inf`` where it
    cannot be spelled or said): the words spelled for the character head, said with each word's
    first pronunciation for the phone head."""
    texts = [[w.word for w in words] for words, _ in nbest]
    if head == "char":
        targets = [CHAR_VOCAB.encode(list(BOUNDARY_TOKEN.join(t))) for t in texts]
    else:
        targets = [PHONE_VOCAB.encode(lexicon.phones_for_words(t) or []) for t in texts]
    usable = [i for i, t in enumerate(targets) if t]
    scores = np.full(len(nbest), -np.inf)
    if usable:
        scores[usable] = ctc_log_likelihood(log_probs, [targets[i] for i in usable])
    return scores


RESCORING = ("search", "joint", "rnnlm", "tokens")  # the columns of `nbest_scores`


def nbest_scores(nbest: list[tuple[list[Word], float]], other_log_probs: np.ndarray | None, other_head: str,
                 lexicon: Lexicon, rnnlm=None, members: list[tuple[np.ndarray, float]] = (),
                 joint: bool = True) -> tuple[list[list[Word]], np.ndarray]:
    """The distinct word sequences of a beam's n-best and, for each, what its rescoring weighs
    ``(n, 4)``, the columns of :data:`RESCORING`:

    - ``search``: the search's score (acoustic + weighted LM + word scores), plus each other model
      of an n-best ensemble's CTC log-likelihood of the same tokens times its weight (``members``:
      each one's ``(T, V)`` log-probabilities of the searched head with its weight). Sequence
      scores do not care where each model puts its CTC spikes, which frame-by-frame averaging does
      (:class:`asr.rnn.Ensemble`, RESULTS.md).
    - ``joint``: the other head's CTC log-likelihood of the same words (``other_log_probs (T, V)``;
      ``-inf`` where they cannot be said in its frames; 0 if not ``joint``). Both heads read the same
      encoder frames but were trained on different targets, so their errors differ: the phone head
      hears words better, the character head knows how they are spelled (it tells homophones and
      near-homophones apart). The words are spelled for the character head, or said with each
      word's first pronunciation for the phone head.
    - ``rnnlm``: the RNN LM's natural-log probability of the words (:meth:`asr.rnnlm.RNNLM.score`;
      0 without one): the search's n-gram LM sees a few words back, the RNN the whole sentence.
    - ``tokens``: how many tokens (phones or letters, ``Word.tokens``) spelled the words, for a length
      bonus. The search leans to fewer, shorter words (every word costs LM probability, a CTC
      model's blank is cheap): more deletions than insertions. Its word score counts words
      whatever their length; this counts what was heard (RESULTS.md, "A blank penalty and a length bonus").

    flashlight's n-best repeats word sequences with other alignments: each is kept once, with its
    best search score (:func:`distinct_words`).
    """
    nbest = distinct_words(nbest)
    words = [w for w, _ in nbest]
    scores = np.zeros((len(nbest), len(RESCORING)))
    scores[:, 0] = [s for _, s in nbest]
    searched = "char" if other_head == "phone" else "phone"
    for log_probs, weight in members:
        scores[:, 0] += weight * _ctc_scores(nbest, log_probs, searched, lexicon)
    if joint:
        scores[:, 1] = _ctc_scores(nbest, other_log_probs, other_head, lexicon)
    if rnnlm is not None:
        scores[:, 2] = rnnlm.score([[w.word for w in ws] for ws in words])
    scores[:, 3] = [sum(len(w.tokens) for w in ws) for ws in words]
    return words, scores


def rescoring_weights(options: "DecodingConfig") -> np.ndarray:
    """The weights of :func:`nbest_scores`' columns that ``options`` gives: ``(1, joint_weight,
    rescore_weight, token_score)``."""
    return np.array([1.0, options.joint_weight, options.rescore_weight, options.token_score])


def rescored(words: list[list[Word]], scores: np.ndarray, weights: np.ndarray) -> list[tuple[list[Word], float]]:
    """``words`` with their total scores (``scores (n, 4) @ weights``, a column of weight 0 left
    out, so that its ``-inf`` does not count), best first."""
    total = scores[:, 0] * weights[0]
    for j in np.flatnonzero(weights[1:]) + 1:  # one column at a time, in order: the same sums everywhere
        total = total + weights[j] * scores[:, j]
    return sorted(zip(words, total.tolist()), key=lambda ws: -ws[1])


def _rescores(nbest: list, weights: np.ndarray, members) -> bool:
    """Whether rescoring can change the order of ``nbest``: two hypotheses or more, and an ensemble's
    other models or a weight other than the search's."""
    return len(nbest) > 1 and (bool(members) or bool(weights[1:].any()))


def best_rescored(nbest: list[tuple[list[Word], float]], scores: tuple[list[list[Word]], np.ndarray],
                  weights: np.ndarray, members: bool = False) -> list[Word]:
    """The words :func:`rescore_nbest` puts first, from the n-best's :func:`nbest_scores` computed
    once: for trying many ``weights`` (:func:`rescoring_weights`) on one search (``asr tune``)."""
    if not _rescores(nbest, weights, members):
        return nbest[0][0] if nbest else []
    return rescored(*scores, weights)[0][0]


def rescore_nbest(nbest: list[tuple[list[Word], float]], other_log_probs: np.ndarray | None, other_head: str,
                  lexicon: Lexicon, options: "DecodingConfig", rnnlm=None,
                  members: list[tuple[np.ndarray, float]] = ()) -> list[tuple[list[Word], float]]:
    """A beam's n-best, best first, after what ``options`` asks: an ensemble's other models (``members``),
    joint rescoring at ``joint_weight``, the RNN LM ``rnnlm`` at ``rescore_weight`` and a length bonus of
    ``token_score`` a token (:func:`nbest_scores`). Without any, or with one hypothesis, the n-best
    is returned as it is (repeats included)."""
    weights = rescoring_weights(options)
    if not _rescores(nbest, weights, members):
        return list(nbest)
    words, scores = nbest_scores(nbest, other_log_probs, other_head, lexicon,
                                 rnnlm if options.rescore_weight else None, members, joint=bool(options.joint_weight))
    return rescored(words, scores, weights)


def best_words(nbest: list[tuple[list[Word], float]], other_log_probs: np.ndarray, other_head: str,
               lexicon: Lexicon, options: "DecodingConfig", rnnlm=None,
               members: list[tuple[np.ndarray, float]] = ()) -> list[Word]:
    """The words of the best of a beam's n-best after :func:`rescore_nbest`, each with its n-best
    posterior in ``evidence["posterior"]`` (see :func:`nbest_posteriors`)."""
    nbest = rescore_nbest(nbest, other_log_probs, other_head, lexicon, options, rnnlm, members)
    if not nbest:
        return []
    return [dataclasses.replace(w, evidence={**w.evidence, "posterior": p})
            for w, p in zip(nbest[0][0], nbest_posteriors(nbest))]


@dataclass(frozen=True)
class DecodingConfig:
    """How words are found: ``greedy`` best path, or ``beam`` search with the lexicon and an optional LM.

    A bundle carries the one it was tuned with; keywords of :func:`asr.load` change its fields.
    Every value is checked where the config is made.

    >>> asr.load_bundle().decoding.beam_size
    2000
    >>> asr.load(beam_size=500, lm_weight=1.2).decoding.beam_size
    500
    >>> asr.DecodingConfig(decoder="beam", beam_size=0)
    Traceback (most recent call last):
    asr.errors.ConfigError: ...
    """

    decoder: str = "greedy"  # "greedy" or "beam"
    lm: str | None = None  # ARPA or KenLM binary; its OUT.words.txt (from `asr lm build`) limits the vocabulary
    beam_size: int = 50
    lm_weight: float = 1.0
    word_score: float = 0.0
    joint_weight: float = 0.0  # > 0: rescore the beam's n-best with the other head (`nbest_scores`)
    nbest: int = 16  # hypotheses kept for joint rescoring
    beam_size_token: int | None = None  # tokens tried per frame, likeliest first (None: all; with a grammar: all)
    beam_threshold: float = 50.0  # hypotheses scoring this far below the best are dropped
    lexicon_free: bool = False  # character head only: any spelling, no word LM (open vocabulary)
    blank_skip: float | None = None  # search skips repeated frames whose blank posterior exceeds this
    # The search holds every step's hypotheses (beam_size of them, 72 bytes each) to trace the
    # words back at the end: +159 MB for a 30 s window at beam 2000, +74 MB holding 300 steps
    # (results/bench-memory-breakdown.log). With this many steps held, it commits to the best
    # path's words before its first word start history_steps / 2 or more steps back and drops
    # the rest (the n-best then differ after that point only); 0: hold all.
    history_steps: int = 300
    calibration: str | None = None  # word confidences from this calibrator (`asr calibrate`), else raw posteriors
    # Words the calibrator gives less chance than this of being right are left out: what noise,
    # tones and hum alone make the search say (the shipped 0.15: benchmarks/confidence_floor.py,
    # RESULTS.md). Needs calibrated confidences: raw posteriors are on another scale. With a
    # grammar, a sentence whose words' mean confidence is below it is left out whole (`calibrate`).
    confidence_floor: float = 0.0
    # What may be said instead of the LM's sentences (asr.grammar): a JSGF file, or a phrase list
    # (Vosk's: any sequence of the phrases). Out of grammar: the best sentence's log-probability
    # per heard frame this far below the free best path's gives an empty result (`out_of_grammar`).
    # 2: on a command list of dev crops 1.5 makes 12-14 fewer errors either way (of ~600), but it rejects
    # real digit strings of FSDD's dev split, WER 37 -> 70 % (benchmarks/grammar_dev.py, RESULTS.md).
    # The shipped bundle, whose blank penalty moves these scores, says 1.5 (RESULTS.md).
    grammar: str | None = None
    phrases: tuple[str, ...] | None = None
    grammar_reject: float = 2.0
    # Words added to the lexicon ("word" or "word PH ON ES"; the bundle's G2P model says those
    # without phones): words of the search even where the LM lacks them (read as a rare word).
    words: tuple[str, ...] | None = None
    # Words or phrases raised in the search ("phrase:weight", weight in the LM's log10 units, default
    # BOOST): contextual biasing for names and terms. Each word of a phrase is raised; a word the
    # lexicon lacks is added (said by the G2P model). Costs speed: the LM is then read through Python.
    boost: tuple[str, ...] | None = None
    # A word-level RNN LM (rnnlm.npz, `asr lm rnn`) that rescores the beam's n-best: each
    # hypothesis gains rescore_weight times its natural-log probability under it (asr.rnnlm).
    rescore: str | None = None
    rescore_weight: float = 0.0
    # Subtracted from the blank's log-probability in every frame the search reads (icefall's and
    # sherpa-onnx's blank_penalty): a CTC model's blank is cheap and every word costs LM
    # probability, so the search drops words (more deletions than insertions). A constant per frame
    # would change no ranking; on the blank alone it favours paths that say more. 0: off.
    blank_penalty: float = 0.0
    # Each n-best hypothesis gains this much per token (phone or letter) of its words: a length
    # bonus at rescoring, for the same reason (`nbest_scores`).
    token_score: float = 0.0

    def __post_init__(self):
        """Every value checked once, here, where a config is made (the CLI, asr.load, a bundle.json)."""
        def bad(name: str, what: str) -> ConfigError:
            return ConfigError(f"decoding option {name} (--{name.replace('_', '-')}) must be {what}, "
                               f"not {getattr(self, name)!r}")

        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad(name, "a finite number")
            return value

        def count(name: str, least: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise bad(name, f"a whole number >= {least}")

        if self.decoder not in ("greedy", "beam"):
            raise bad("decoder", "'greedy' or 'beam'")
        count("beam_size", 1)
        count("nbest", 1)
        if self.beam_size_token is not None:
            count("beam_size_token", 1)
        number("lm_weight")
        number("word_score")
        if number("joint_weight") < 0:
            raise bad("joint_weight", "0 (off) or more")
        if number("beam_threshold") <= 0:
            raise bad("beam_threshold", "a positive number of log-probability units")
        if self.blank_skip is not None and not (number("blank_skip") > 0 and self.blank_skip <= 1):
            raise bad("blank_skip", "a probability in (0, 1]")
        count("history_steps", 0)
        if self.history_steps == 1:
            raise bad("history_steps", "0 (no limit) or at least 2")
        if not 0 <= number("confidence_floor") < 1:
            raise bad("confidence_floor", "a probability in [0, 1)")
        if self.confidence_floor and self.calibration is None:
            raise bad("confidence_floor", "0 without a calibrator (it is a floor on calibrated confidences)")
        number("token_score")
        number("blank_penalty")
        if number("rescore_weight") < 0:
            raise bad("rescore_weight", "0 (off) or more")
        if number("grammar_reject") <= 0:
            raise bad("grammar_reject", "a positive number of log-probability units a frame")
        if self.phrases is not None:
            if isinstance(self.phrases, str) or not all(isinstance(p, str) for p in self.phrases):
                raise bad("phrases", "a list of phrases (strings)")
            object.__setattr__(self, "phrases", tuple(self.phrases))  # a list given: stored as a tuple
        if self.grammar is not None and self.phrases is not None:
            raise ConfigError("give a grammar or phrases, not both")
        if self.words is not None:
            if isinstance(self.words, str) or not all(isinstance(w, str) for w in self.words):
                raise bad("words", "a list of words (strings: 'word' or 'word PH ON ES')")
            object.__setattr__(self, "words", tuple(self.words))
            parse_words(self.words)  # checked here, where the config is made
        if self.boost is not None:
            if isinstance(self.boost, str) or not all(isinstance(b, str) for b in self.boost):
                raise bad("boost", "a list of 'phrase:weight' strings")
            object.__setattr__(self, "boost", tuple(self.boost))
            parse_boosts(self.boost)

    def added_words(self, lexicon) -> list[str]:
        """The words added to the lexicon: ``words``' entries, and the boosted words it lacks."""
        added = list(self.words or ())
        known = {w for w, _ in parse_words(added)}
        for phrase, _ in parse_boosts(self.boost or ()):
            added += [w for w in phrase.split() if w not in lexicon and w not in known]
            known.update(phrase.split())
        return added

    def load_grammar(self):
        """The :class:`asr.grammar.Grammar` of ``grammar`` or ``phrases``, or ``None``."""
        from .grammar import load_grammar, phrase_grammar

        if self.grammar is not None:
            return load_grammar(self.grammar)
        if self.phrases is not None:
            return phrase_grammar(self.phrases)
        return None


class BeamHypothesis(NamedTuple):
    """One hypothesis of :class:`Flashlight`: what torchaudio's ``CTCHypothesis`` holds."""

    tokens: list[int]  # token ids, blanks dropped and repeats merged
    timesteps: list[int]  # the search step each token was emitted at (step 0: flashlight's initial silence)
    words: list[str]
    score: float  # acoustic + weighted LM + word scores


class Flashlight:
    """flashlight-text's CTC beam search: over a lexicon trie with a KenLM word LM, or, for an
    empty lexicon, over any token sequence (lexicon-free). What torchaudio's ``ctc_decoder``
    builds, built here from the lexicon in memory (that factory takes only a file, and
    writing then parsing 70k lines cost every start time), with its trie filled without a
    Python call per token.

    ``spellings``: word -> its token id sequences (a word boundary, ``sil_token``, closes each).
    """

    def __init__(self, spellings: dict[str, list[list[int]]], tokens: list[str], lm: str | None,
                 config: "DecodingConfig", sil_token: str = BOUNDARY_TOKEN, unk_word: str = "<unk>",
                 grammar=None, stand_ins: dict[str, str] | None = None, boosts: dict[str, float] | None = None):
        from flashlight.lib.text import decoder as fl  # loads only when beam search is asked for
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        self.blank, self.nbest = 0, config.nbest  # the blank is token 0 in both vocabularies
        self.history = config.history_steps
        index = {t: i for i, t in enumerate(tokens)}
        sil = index[sil_token]
        # A grammar's search tries every token: its words must be found where the model ranks their
        # tokens low ("clubs" heard as "close"), and its few words keep it small (RESULTS.md).
        beam_size_token = len(tokens) if grammar is not None else config.beam_size_token or len(tokens)
        self.word_dict = Dictionary()
        for word in [unk_word, *spellings]:
            self.word_dict.add_entry(word)
        self.word_dict.set_default_index(self.word_dict.get_index(unk_word))
        assert self.word_dict.index_size() == len(spellings) + 1, "word indices are the spellings' order, from 1"
        if grammar is not None:
            self.lm = grammar_lm(grammar, [unk_word, *spellings])
        else:
            lm_dict = self.word_dict
            if stand_ins:  # the LM reads an added word it does not know as a rare word it knows
                # KenLM looks each entry up by its C string, which ends at a NUL: "stand-in\0word" is
                # an entry of its own here (a Dictionary refuses the same entry twice) and the
                # stand-in there
                lm_dict = Dictionary()
                for word in [unk_word, *spellings]:
                    lm_dict.add_entry(f"{stand_ins[word]}\0{word}" if word in stand_ins else word)
            self.lm = KenLM(lm, lm_dict) if lm else fl.ZeroLM()
            self._lm_dict = lm_dict  # (KenLM keeps a reference to it, not a copy)
        if boosts:
            raised: dict[int, float] = {}
            for phrase, weight in boosts.items():
                for w in phrase.split():
                    if w in spellings:
                        raised[self.word_dict.get_index(w)] = max(weight, raised.get(self.word_dict.get_index(w), weight))
            self.lm = boosted_lm(self.lm, raised)
        if not spellings:
            self._options = lambda beam_threshold: fl.LexiconFreeDecoderOptions(
                beam_size=config.beam_size, beam_size_token=beam_size_token, beam_threshold=beam_threshold,
                lm_weight=config.lm_weight, sil_score=0.0, log_add=False, criterion_type=fl.CriterionType.CTC)
            self._default_options = self._options(config.beam_threshold)
            self._make = lambda options: fl.LexiconFreeDecoder(options, self.lm, sil, self.blank, [])
            return
        # The trie: each spelling, closed by a word boundary, leads to its words, with their
        # unigram LM scores smeared up the tree (a prefix's score is the best of the words
        # below it) for early pruning.
        trie = fl.Trie(len(tokens), sil)
        start, lm_score, insert = self.lm.start(False), self.lm.score, trie.insert
        for word_index, spelled in enumerate(spellings.values(), 1):  # 0 is the unknown word
            # (a grammar's words all 0: a word it allows nowhere at the start is still a word)
            score = 0.0 if grammar is not None else lm_score(start, word_index)[1]
            for spelling in spelled:
                insert([*spelling, sil], word_index, score)
        trie.smear(fl.SmearingMode.MAX)
        unk = self.word_dict.get_index(unk_word)

        self._options = lambda beam_threshold: fl.LexiconDecoderOptions(
            beam_size=config.beam_size, beam_size_token=beam_size_token, beam_threshold=beam_threshold,
            lm_weight=config.lm_weight, word_score=config.word_score, unk_score=float("-inf"), sil_score=0.0,
            log_add=False, criterion_type=fl.CriterionType.CTC)
        self._default_options = self._options(config.beam_threshold)  # built once: every search uses them
        # a decoder holds one search's state; each shares the trie and the LM
        self._make = lambda options: fl.LexiconDecoder(options, trie, self.lm, sil, self.blank, unk, [], False)

    def fresh(self, beam_threshold: float | None = None) -> "_Steps":
        """A new search over the same trie and LM, begun, to be fed frames step by step (streaming);
        ``beam_threshold`` replaces the configured one."""
        options = self._default_options if beam_threshold is None else self._options(beam_threshold)
        return _Steps(self._make(options), self)

    def _hypothesis(self, result, steps_done: Sequence[int] = (), words_done: Sequence[int] = ()) -> BeamHypothesis:
        """``result``'s hypothesis, after ``steps_done`` and ``words_done`` (those the search
        committed to and dropped from its memory: :meth:`_Steps.step`)."""
        steps = [*steps_done, *result.tokens]  # one token a search step, blanks and repeats included
        kept = [i for i, t in enumerate(steps) if t != self.blank and (i == 0 or t != steps[i - 1])]
        return BeamHypothesis([steps[i] for i in kept], kept,
                              [self.word_dict.get_entry(w) for w in [*words_done, *result.words] if w >= 0],
                              float(result.score))


class _Steps:
    """One flashlight search fed frames as they come: ``decode_begin``, ``decode_step`` per
    chunk, ``decode_end``; what ``decode`` does in one call."""

    def __init__(self, decoder, flashlight: Flashlight):
        self.decoder, self.flashlight = decoder, flashlight
        self.steps_done: list[int] = []  # the best path's tokens, one a step, of the steps pruned away
        self.words_done: list[int] = []  # and its words there
        self.held = 0  # search steps whose hypotheses the decoder holds
        decoder.decode_begin()

    def step(self, emission: np.ndarray) -> None:
        """Search the next ``(T, V)`` float32 log-probabilities, holding at most
        ``history_steps`` steps of hypotheses (:class:`DecodingConfig`)."""
        emission = np.ascontiguousarray(emission, dtype=np.float32)
        history, start = self.flashlight.history, 0
        while start < emission.shape[0]:
            part = emission[start:] if not history else emission[start:start + max(history - self.held, 1)]
            self.decoder.decode_step(part.ctypes.data, part.shape[0], part.shape[1])  # rows of a C-contiguous array
            self.held += part.shape[0]
            start += part.shape[0]
            if history and self.held >= history:
                self._commit(history // 2)

    def _commit(self, look_back: int) -> None:
        """Keep the best path's steps before its first word start ``look_back`` or more steps
        back, and have flashlight drop every hypothesis's history before that step (``prune``):
        its hypotheses there become the roots of the search."""
        best = self.decoder.get_best_hypothesis(look_back)  # the same step `prune` cuts at
        tokens = best.tokens  # (a copy of flashlight's vector at each access)
        done = len(tokens) - 1  # the steps before the cut (the last is the root's)
        if done > 0:
            self.decoder.prune(look_back)
            self.steps_done += tokens[:done]
            self.words_done += best.words[:done]
            self.held -= done

    def best(self) -> BeamHypothesis:
        """The best hypothesis so far."""
        return self.flashlight._hypothesis(self.decoder.get_best_hypothesis(), self.steps_done, self.words_done)

    def end(self) -> list[BeamHypothesis]:
        """End the search: its n-best hypotheses, best first."""
        self.decoder.decode_end()
        return [self.flashlight._hypothesis(r, self.steps_done, self.words_done)
                for r in self.decoder.get_all_final_hypothesis()[:self.flashlight.nbest]]


BLOCKED = -1e4  # a word the grammar does not allow here: the hypothesis falls out of the beam
UNPRUNED = 1e9  # a beam threshold that prunes nothing: a grammar's second search (IncrementalSearch.finish)


def grammar_lm(grammar, words: list[str]):
    """A flashlight LM that reads ``grammar`` (an :class:`asr.grammar.Grammar`): ``words[i]`` is
    the word of the search's word index ``i``. One LM state per automaton state, so that
    hypotheses in the same grammar state and the same place of the lexicon merge."""
    from flashlight.lib.text import decoder as fl

    class GrammarLM(fl.LM):
        def __init__(self):
            fl.LM.__init__(self)
            self.states = [fl.LMState() for _ in grammar.arcs]
            self.number = {id(s): k for k, s in enumerate(self.states)}
            self.dead = fl.LMState()
            index = {w: i for i, w in enumerate(words)}
            self.next = [{index[w]: t for w, t in arcs.items() if w in index} for arcs in grammar.arcs]
            self.finals = grammar.finals

        def start(self, start_with_nothing):
            return self.states[0]

        def score(self, state, word):
            k = self.number.get(id(state))
            to = None if k is None else self.next[k].get(word)
            return (self.dead, BLOCKED) if to is None else (self.states[to], 0.0)

        def finish(self, state):
            return state, 0.0 if self.number.get(id(state)) in self.finals else BLOCKED

    return GrammarLM()


BOOST = 2.0  # a boost without a weight: 100 times likelier to the LM (log10 units)


def parse_boosts(entries) -> list[tuple[str, float]]:
    """``"phrase:weight"`` entries (``"phrase"`` alone: :data:`BOOST`) -> ``(phrase, weight)``."""
    from .g2p import check_word

    out = []
    for entry in entries:
        phrase, sep, weight = entry.rpartition(":") if ":" in entry else (entry, "", "")
        try:
            value = float(weight) if sep else BOOST
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ConfigError(f"boost {entry!r}: the weight after ':' must be a number (e.g. 'acme:3')")
        words = phrase.split()
        if not words:
            raise ConfigError(f"boost {entry!r}: no word to raise")
        for w in words:
            check_word(w)
        out.append((" ".join(w.lower() for w in words), value))
    return out


def boosted_lm(inner, boosts: dict[int, float]):
    """``inner`` (a flashlight LM) with ``boosts[word index]`` added to those words' scores in
    every context. Python sits between the search and the LM: every word end of every
    hypothesis calls it (benchmarks/boost.py measures the cost)."""
    from flashlight.lib.text import decoder as fl

    class BoostedLM(fl.LM):
        def __init__(self):
            fl.LM.__init__(self)
            self.inner = inner  # (held: the search holds only this wrapper)

        def start(self, start_with_nothing):
            return inner.start(start_with_nothing)

        def score(self, state, word):
            state, score = inner.score(state, word)
            return state, score + boosts.get(word, 0.0)

        def finish(self, state):
            return inner.finish(state)

    return BoostedLM()


def spell_words(head: str, lexicon: Lexicon, words: list[str]) -> dict[str, list[list[int]]]:
    """``words`` spelled for ``head``: their letters, or every pronunciation the lexicon has
    (a word it lacks is left out)."""
    vocab = CHAR_VOCAB if head == "char" else PHONE_VOCAB
    index = {t: i for i, t in enumerate(vocab.tokens)}
    if head == "char":
        return {w: [[index[c] for c in w]] for w in words}
    return {w: [[index[t] for t in p] for p in lexicon.prons[w]] for w in words if w in lexicon}


def spell_grammar(head: str, lexicon: Lexicon, grammar, g2p: str | Path | None = None) -> dict[str, list[list[int]]]:
    """The grammar's words spelled for ``head`` (:func:`spell_words`); for the phone head, the
    G2P model says the words the lexicon lacks, and without one such a word is a
    :class:`asr.grammar.GrammarError`."""
    from .g2p import pronounce_words
    from .grammar import GrammarError

    missing = [w for w in grammar.words if head == "phone" and w not in lexicon]
    if missing:
        if g2p is None:
            raise GrammarError(f"{grammar.source}: the word {missing[0]!r} is not in the lexicon, and the bundle "
                               f"has no G2P model to say it: give it with --words 'WORD PHONES', or use --head char")
        lexicon = lexicon.with_words(pronounce_words(missing, g2p, grammar.source))
    return spell_words(head, lexicon, grammar.words)


# The unigram log10-probability of the LM word an added word is read as: a word seen about 1 200
# times in 40 million. Chosen on a second set of 50 dev words (benchmarks/added_words.py --skip 50,
# results/bench-added-words-skip50.log): -7, -6, -5 brought back 29, 51, 71 % of what the words' own
# statistics gave, -4.5 and -4 97 %, with dev WER lowest there too (fewer errors than at -6).
STAND_IN_LOG10 = -4.5


def stand_ins(lm: str, words: list[str]) -> dict[str, str]:
    """For each of ``words`` that the LM does not know (KenLM would give it its ``<unk>``'s
    -100), the LM word it is read as: the one whose unigram log10-probability is nearest
    ``STAND_IN_LOG10`` (a word seen about 1 200 times in 40 million), so that an added word is
    scored as a rare word is, in every context."""
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    vocab_file = Path(f"{lm}.words.txt")
    known = vocab_file.read_text(encoding="utf-8").split() if vocab_file.is_file() else []
    known = known[::max(1, len(known) // 2000)]  # about 2000 candidates: any rare word will do
    d = Dictionary()
    for w in dict.fromkeys(["<unk>", *known, *words]):
        d.add_entry(w)
    with _quiet_stderr():
        model = KenLM(lm, d)
    start = model.start(True)  # no context: the unigram
    unknown = [w for w in words if model.score(start, d.get_index(w))[1] <= -99]
    if not unknown:
        return {}
    if not known:
        raise ConfigError(f"{lm}: added words need the LM's word list ({vocab_file.name}, from `asr lm build`) "
                          f"to be scored as rare words")
    scores = np.array([model.score(start, d.get_index(w))[1] for w in known])
    stand_in = known[int(np.abs(scores - STAND_IN_LOG10).argmin())]
    return {w: stand_in for w in unknown}


def lm_vocabulary(lm: str | None, lexicon: Lexicon) -> list[str] | None:
    """The words of ``lm`` (its ``LM.words.txt``, written by `asr lm build`) that the lexicon
    can spell or say; ``None`` (all lexicon words) without an LM or a word list."""
    vocab = Path(f"{lm}.words.txt")
    if lm is None or not vocab.is_file():
        return None
    return [w for w in vocab.read_text(encoding="utf-8").split() if w in lexicon]


HOMOPHONES = 6  # flashlight's trie holds at most this many words per spelling


def spell_vocabulary(head: str, lexicon: Lexicon, lm: str | None) -> dict[str, list[list[int]]]:
    """The search's words (the LM's that the lexicon has: :func:`lm_vocabulary`) with their
    spellings as ``head``'s token ids: the letters of the word, or each of its pronunciations
    (at most ``HOMOPHONES`` words a pronunciation; the lexicon lists the most frequent words
    first, so the rarest homophones are the ones left out)."""
    words = lm_vocabulary(lm, lexicon)
    vocabulary = words if words is not None else list(lexicon.prons)
    vocab = CHAR_VOCAB if head == "char" else PHONE_VOCAB
    index = {t: i for i, t in enumerate(vocab.tokens)}
    if head == "char":
        letters = set(CHAR_VOCAB.tokens[2:])  # not the blank, not the boundary
        return {w: [[index[c] for c in w]] for w in vocabulary if w and letters.issuperset(w)}
    spellings, per_spelling = {}, {}
    for w in vocabulary:
        kept = []
        for p in lexicon.prons.get(w, ()):
            n = per_spelling.get(p, 0)
            if n < HOMOPHONES:
                per_spelling[p] = n + 1
                kept.append([index[t] for t in p])
        if kept:
            spellings[w] = kept
    return spellings


# The search's spellings, saved (`asr bundle`), so that a start need not parse the lexicon's 143k
# lines and spell each word again. A key names what they were built from, so that a bundle given
# another head, lexicon or LM builds its own.
SPELLINGS_FORMAT = 1


def spellings_key(head: str, lexicon, lm: str | None) -> dict | None:
    """What :func:`spell_vocabulary` read: the head, and the sha256 of the lexicon and the LM's word
    list (``None`` for a lexicon that is not a file)."""
    path = getattr(lexicon, "path", None)
    if path is None:
        return None
    words = Path(f"{lm}.words.txt") if lm else None
    return {"format": SPELLINGS_FORMAT, "head": head, "homophones": HOMOPHONES, "lexicon": sha256(path),
            "lm_words": sha256(words) if words is not None and words.is_file() else None}


def save_spellings(path: str | Path, spellings: dict[str, list[list[int]]], key: dict) -> None:
    """Write ``spellings`` with their ``key``: the words, and each spelling's word, length and token ids."""
    import io as _io

    from .io import atomic_write_bytes

    owner = [k for k, spelled in enumerate(spellings.values()) for _ in spelled]
    flat = [s for spelled in spellings.values() for s in spelled]
    buf = _io.BytesIO()
    np.savez(buf, key=np.array(json.dumps(key, sort_keys=True)), words=np.array("\n".join(spellings)),
             owner=np.array(owner, dtype=np.int32), lengths=np.array([len(s) for s in flat], dtype=np.int16),
             tokens=np.array([t for s in flat for t in s], dtype=np.int16))
    atomic_write_bytes(path, buf.getvalue())


def load_spellings(path: str | Path | None, key: dict | None) -> dict[str, list[list[int]]] | None:
    """The spellings :func:`save_spellings` wrote, if ``key`` is theirs; else ``None`` (build them)."""
    if path is None or key is None or not Path(path).is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["key"])) != key:
                return None
            words = str(z["words"]).split("\n")
            owner, lengths, tokens = z["owner"].tolist(), z["lengths"], z["tokens"].tolist()
    except (OSError, ValueError, KeyError, EOFError):
        return None  # unreadable: built from the lexicon instead (bundle.json's sha256 guards damage)
    ends = np.cumsum(lengths).tolist()
    spellings: dict[str, list[list[int]]] = {w: [] for w in words}
    start = 0
    for k, end in zip(owner, ends):
        spellings[words[k]].append(tokens[start:end])
        start = end
    return spellings


def make_beam_decoder(head: str, lexicon: Lexicon, config: DecodingConfig,
                      spellings: str | Path | None = None, g2p: str | Path | None = None) -> BeamDecoder | None:
    """The beam decoder ``config`` asks for, or ``None`` for greedy decoding; ``spellings``: a file
    of :func:`save_spellings` to read the search's words from where it fits."""
    if config.decoder == "greedy" and config.grammar is None and config.phrases is None:
        return None  # (a grammar is read by the beam search, whatever the decoder)
    if config.lexicon_free:  # open vocabulary: no lexicon, so no word LM either
        config = dataclasses.replace(config, lm=None)
    return BeamDecoder(head, lexicon, config, spellings, g2p)
