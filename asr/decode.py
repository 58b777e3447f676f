"""From CTC log-probabilities to words with times.

Greedy (best path) decoding: take the most likely token per frame, merge repeats,
drop blanks. Tokens between word boundaries form a word: the characters are
concatenated, the phones are looked up in the lexicon.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .confidence import CONTEXT_KINDS, Calibrator
from .errors import ConfigError
from .lm import LMError, check_arpa
from .model import AcousticModel, forward_batches
from .text import BOUNDARY as BOUNDARY_TOKEN
from .text import CHAR_VOCAB, PHONE_VOCAB, Lexicon


@dataclass(frozen=True)
class Token:
    id: int
    start: int  # first frame (inclusive)
    end: int  # last frame + 1
    prob: float = 1.0  # mean posterior of this token over its frames


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds
    end: float  # seconds
    tokens: tuple[str, ...] = ()  # characters or phones that spelled it
    confidence: float = 1.0  # in [0, 1]: calibrated (see asr.confidence), else the lowest posterior of its tokens
    # What the search knew about the word, the raw material of a calibrated confidence
    # (beam search only; names in asr.confidence.FEATURES).
    evidence: dict[str, float] = field(default_factory=dict, compare=False, repr=False)


def best_path(log_probs: torch.Tensor, length: int | None = None, blank: int = 0) -> list[Token]:
    """CTC best path of ``(T, V)`` log-probabilities: tokens with their frame spans.

    A token spans the run of frames where it is the arg-max, so ``a a - a`` gives two
    tokens ``a`` (frames 0-2 and 3-4) and ``a a b`` gives ``a`` (0-2) and ``b`` (2-3).
    """
    if length is not None:
        log_probs = log_probs[:length]
    best, ids_t = log_probs.max(-1)
    ids, probs = ids_t.tolist(), best.exp().tolist()
    tokens: list[Token] = []
    prev, start = None, 0
    for t, i in enumerate(ids + [None]):
        if i != prev:
            if prev is not None and prev != blank:
                tokens.append(Token(prev, start, t, round(sum(probs[start:t]) / (t - start), 4)))
            prev, start = i, t
    return tokens


def group_words(tokens: list[Token], boundary: int = 1) -> list[list[Token]]:
    """Split a token sequence at boundary tokens into words (empty words dropped)."""
    words, current = [], []
    for tok in tokens:
        if tok.id == boundary:
            if current:
                words.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        words.append(current)
    return words


def char_words(tokens: list[Token], frame_seconds: float) -> list[Word]:
    """Words spelled by the character head."""
    out = []
    for group in group_words(tokens, CHAR_VOCAB.boundary):
        chars = tuple(CHAR_VOCAB.tokens[t.id] for t in group)
        out.append(Word("".join(chars), _sec(group[0].start, frame_seconds), _sec(group[-1].end, frame_seconds), chars,
                        _confidence(group)))
    return out


def phone_words(tokens: list[Token], frame_seconds: float, lexicon: Lexicon) -> list[Word]:
    """Words whose pronunciation the phone head produced, through the lexicon (closest entry if none matches)."""
    out = []
    for group in group_words(tokens, PHONE_VOCAB.boundary):
        phones = tuple(PHONE_VOCAB.tokens[t.id] for t in group)
        word = lexicon.word_for(phones)
        conf = _confidence(group) * (1.0 if lexicon.words_by_pron.get(phones) == word else 0.5)
        out.append(Word(word, _sec(group[0].start, frame_seconds), _sec(group[-1].end, frame_seconds), phones, conf))
    return out


def _confidence(tokens: list[Token]) -> float:
    """A word is as sure as its least sure token."""
    return min(t.prob for t in tokens)


def _sec(frame: int, frame_seconds: float) -> float:
    return round(frame * frame_seconds, 3)


def phones_of(tokens: list[Token]) -> list[str]:
    """Phone symbols (boundaries dropped), for phone error rate."""
    return [PHONE_VOCAB.tokens[t.id] for t in tokens if t.id != PHONE_VOCAB.boundary]


def text_of(words: list[Word]) -> str:
    return " ".join(w.word for w in words)


@dataclass
class Hypothesis:
    """Both heads' readings of one utterance."""

    char_words: list[Word]
    phone_words: list[Word]
    phones: list[str]  # phone head's phones, boundaries dropped
    phone_starts: list[float] = field(default_factory=list)  # seconds: where each of ``phones`` begins
    # A known transcript's words where the decoded head places them (CTC forced alignment), when
    # `recognize` was given references; None if it cannot be aligned (see `align_words`).
    reference_words: list[Word] | None = None

    def words(self, head: str = "char") -> list[Word]:
        if head not in ("char", "phone"):
            raise ConfigError(f"head must be 'char' or 'phone', not {head!r}")
        return self.char_words if head == "char" else self.phone_words

    def text(self, head: str = "char") -> str:
        return text_of(self.words(head))


def _greedy_both_heads(out: dict[str, torch.Tensor], lexicon: Lexicon, frame_seconds: float,
                      phone_words_too: bool = True) -> tuple[list[Hypothesis], list[dict[str, list[Token]]]]:
    """Greedy decoding of a model's batch output (see ``AcousticModel.forward``): the
    hypotheses, and each utterance's best path per head (``{"char": tokens, "phone": tokens}``).

    ``phone_words_too=False`` skips the lexicon look-up of the phone head's words (its
    phones are still decoded), which is the costly part when only the character head is wanted.
    """
    hyps, paths = [], []
    for b, n in enumerate(out["lengths"].tolist()):
        chars = best_path(out["char"][b], n)
        phones = best_path(out["phone"][b], n)
        pwords = phone_words(phones, frame_seconds, lexicon) if phone_words_too else []
        hyps.append(Hypothesis(char_words(chars, frame_seconds), pwords, phones_of(phones),
                               [_sec(t.start, frame_seconds) for t in phones if t.id != PHONE_VOCAB.boundary]))
        paths.append({"char": chars, "phone": phones})
    return hyps, paths


def decode_batch(out: dict[str, torch.Tensor], lexicon: Lexicon, frame_seconds: float,
                 phone_words_too: bool = True, beam: "BeamDecoder | None" = None) -> list[Hypothesis]:
    """Hypotheses for one batch of model output (see :func:`forward_batches`).

    Both heads are decoded greedily; with ``beam``, the words of ``beam.head`` come from
    its beam search instead (rescored by the other head if ``beam.joint_weight``), with their
    evidence (:func:`word_evidence`) and confidences calibrated if the config says so.
    """
    hyps, paths = _greedy_both_heads(out, lexicon, frame_seconds,
                                     phone_words_too and (beam is None or beam.head != "phone"))
    if beam is not None:
        other = "phone" if beam.head == "char" else "char"
        nbests = beam.search(out[beam.head], out["lengths"], frame_seconds)
        for b, (n, nbest) in enumerate(zip(out["lengths"].tolist(), nbests)):
            words = best_words(nbest, out[other][b, :n], other, lexicon, beam.joint_weight)
            words = word_evidence(beam.lm_evidence(words), out[beam.head][b, :n], beam.vocab, paths[b][beam.head],
                                  paths[b]["char"] if other == "char" else None, hyps[b].words(other), frame_seconds,
                                  out["char"][b, :n] if other == "char" else None)
            hyps[b] = dataclasses.replace(hyps[b], **{f"{beam.head}_words": beam.calibrate(words)})
    return hyps


def recognize(model: AcousticModel, feats: list[torch.Tensor], lexicon: Lexicon,
              batch_frames: int = 24000, phone_words_too: bool = True,
              beam: "BeamDecoder | None" = None, precision: str = "fp32",
              references: list[list[str] | None] | None = None, reference_head: str = "char") -> list[Hypothesis]:
    """Hypotheses for feature matrices ``(T_i, D)``, batched by length, in input order
    (see :func:`decode_batch`; the model runs in :func:`asr.model.forward_batches`, in ``precision``).

    With ``references`` (words of a known transcript per matrix, or ``None``), each hypothesis
    also gets ``reference_words``: those words forced-aligned on ``reference_head``'s output
    (:func:`align_words`), to measure how far the decoded word times are from them."""
    results: list[Hypothesis | None] = [None] * len(feats)
    for idx, out in forward_batches(model, feats, batch_frames, precision):
        for b, (i, h) in enumerate(zip(idx, decode_batch(out, lexicon, model.config.frame_seconds,
                                                          phone_words_too, beam))):
            if references is not None and references[i] is not None:
                h.reference_words = align_words(out[reference_head][b, :out["lengths"][b]], references[i],
                                                reference_head, lexicon, model.config.frame_seconds)
            results[i] = h
    return results  # type: ignore[return-value]


def align_words(log_probs: torch.Tensor, words: list[str], head: str, lexicon: Lexicon,
                frame_seconds: float) -> list[Word] | None:
    """Where each of ``words`` (a known transcript) lies in one utterance's ``(T, V)`` CTC
    log-probabilities of ``head``: CTC forced alignment (``torchaudio.functional.forced_align``).

    Times follow the beam decoder's convention (first frame of the first token to the last
    frame + 1 of the last token), so the two can be compared. ``None`` if a word has no
    pronunciation (phone head) or the transcript cannot fit in ``T`` frames.
    """
    import torchaudio.functional as F

    vocab = CHAR_VOCAB if head == "char" else PHONE_VOCAB
    symbols = list(BOUNDARY_TOKEN.join(words)) if head == "char" else lexicon.phones_for_words(words)
    if not words or symbols is None:
        return None
    targets = torch.tensor([vocab.encode(symbols)], dtype=torch.int32)
    try:
        labels, scores = F.forced_align(log_probs[None].float().contiguous(), targets, blank=vocab.blank)
    except RuntimeError:  # too few frames for the targets
        return None
    spans = F.merge_tokens(labels[0], scores[0].exp(), blank=vocab.blank)
    tokens = [Token(s.token, s.start, s.end, s.score) for s in spans]
    groups = group_words(tokens, vocab.boundary)
    if len(groups) != len(words):
        return None
    return [Word(w, _sec(g[0].start, frame_seconds), _sec(g[-1].end, frame_seconds),
                 tuple(vocab.tokens[t.id] for t in g), round(_confidence(g), 4)) for w, g in zip(words, groups)]


# ---------------------------------------------------------------------------------------------
# Beam search with a lexicon and an n-gram LM (flashlight-text through torchaudio)


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

    def __init__(self, head: str, lexicon: Lexicon, config: "DecodingConfig"):
        from torchaudio.models.decoder import ctc_decoder  # loads flashlight-text: only when beam search is asked for

        if head not in ("char", "phone"):
            raise ConfigError(f"head must be 'char' or 'phone', not {head!r}")
        if config.lexicon_free and (head != "char" or config.lm is not None):
            raise ConfigError("lexicon-free search works on the character head only (--head char), without a word LM")
        lm = config.lm
        if lm is not None and not Path(lm).is_file():
            raise FileNotFoundError(f"{lm}: language model not found")
        self.head, self.config = head, config
        self.joint_weight = config.joint_weight  # read by `decode_batch`: see `joint_rescore`
        self.vocab = CHAR_VOCAB if head == "char" else PHONE_VOCAB
        self.lexicon_free = config.lexicon_free
        self.blank_skip = config.blank_skip  # see `skip_blank_frames`
        self.calibrator = None
        if config.calibration is not None:
            self.calibrator = Calibrator.load(config.calibration)
            if self.calibrator.head != head:
                raise ConfigError(f"{config.calibration}: calibrated for the {self.calibrator.head} head, "
                                  f"not the {head} head")
        words = lm_vocabulary(lm, lexicon)
        vocabulary = [] if config.lexicon_free else words if words is not None else list(lexicon.prons)
        lines: list[str] = []
        per_spelling: dict[tuple[str, ...], int] = {}
        for w in vocabulary:
            if head == "char":
                spelled = [c for c in w if c in CHAR_VOCAB.tokens[2:]]
                if spelled and len(spelled) == len(w):
                    lines.append(f"{w}\t{' '.join(spelled)} |")
            else:
                for p in lexicon.prons.get(w, []):
                    # flashlight's trie holds at most 6 words per spelling; the lexicon lists the
                    # most frequent words first, so the rarest homophones are the ones left out.
                    if per_spelling.setdefault(p, 0) < 6:
                        per_spelling[p] += 1
                        lines.append(f"{w}\t{' '.join(p)} |")
        lex_path = None
        if not config.lexicon_free:
            if not lines:
                raise ConfigError("no word of the vocabulary can be spelled with this head's tokens")
            self._dir = tempfile.TemporaryDirectory(prefix="asr-beam-")
            lex_path = f"{self._dir.name}/lexicon.txt"
            with open(lex_path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        try:
            with _quiet_stderr():  # KenLM draws a loading progress bar on stderr
                # The n-best serves joint rescoring and the words' posteriors (confidence).
                self.decoder = ctc_decoder(lexicon=lex_path, tokens=list(self.vocab.tokens),
                                           lm=lm, nbest=config.nbest,
                                           beam_size=config.beam_size, beam_size_token=config.beam_size_token,
                                           beam_threshold=config.beam_threshold, lm_weight=config.lm_weight,
                                           word_score=config.word_score,
                                           blank_token=self.vocab.tokens[0], sil_token=BOUNDARY_TOKEN,
                                           unk_word="<unk>")
        except RuntimeError as e:
            if lm is None:
                raise
            # KenLM's own message gives a C++ source line and a byte offset: find the bad line instead.
            check_arpa(lm)
            raise LMError(f"{lm}: KenLM cannot load it: {str(e).splitlines()[-1]}") from None

    def lm_evidence(self, words: list[Word]) -> list[Word]:
        """``words`` (one utterance's, in order) with ``evidence["lm"]``: each word's LM log-probability
        given the words before it, and ``evidence["unigram"]``, without them (rare words are
        misheard more often); 0 without an LM."""
        if self.config.lm is None:
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
        """``words`` with calibrated confidences, if the config names a calibrator (with all their evidence)."""
        if self.calibrator is None:
            return words
        return [dataclasses.replace(w, confidence=round(self.calibrator.probability(w.evidence), 4)) for w in words]

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor, frame_seconds: float) -> list[list[list[Word]]]:
        """``(B, T, V)`` log-probabilities -> for each utterance, its n-best lists of words."""
        return [[words for words, _ in nbest] for nbest in self.search(log_probs, lengths, frame_seconds)]

    search_in_thread = True  # see `search`

    def search(self, log_probs: torch.Tensor, lengths: torch.Tensor,
               frame_seconds: float) -> list[list[tuple[list[Word], float]]]:
        """Like calling the decoder, with each hypothesis's score (acoustic + weighted LM + word scores)."""
        if not self.search_in_thread:
            return self._search(log_probs, lengths, frame_seconds)
        # flashlight allocates and frees many small objects an utterance (hypotheses, LM
        # states). With glibc's malloc that ran ~1.8x slower on the main thread's heap than on
        # the separate heap (arena) glibc gives another thread, with every malloc tunable we tried
        # (benchmarks/beam_pruning.py --main-thread). A new thread per call, so that none is
        # left running when worker processes are forked.
        with ThreadPoolExecutor(1, thread_name_prefix="asr-beam") as thread:
            return thread.submit(self._search, log_probs, lengths, frame_seconds).result()

    def _search(self, log_probs: torch.Tensor, lengths: torch.Tensor,
                frame_seconds: float) -> list[list[tuple[list[Word], float]]]:
        emissions = log_probs.detach().to("cpu", torch.float32)
        boundary = torch.where(torch.arange(emissions.shape[-1]) == self.vocab.boundary, 0.0, -1e4)
        out = []
        for b, n in enumerate(lengths.tolist()):
            frames = skip_blank_frames(emissions[b, :n], self.blank_skip, self.vocab.blank)
            # flashlight's lexicon decoder closes a word only on a boundary token: give every
            # utterance one more frame, a certain boundary, right after its end.
            emission = torch.cat([emissions[b, frames], boundary[None]]).contiguous()
            frames = torch.cat([frames, torch.tensor([n])])
            hyps = self.decoder(emission[None], torch.tensor([emission.shape[0]], dtype=torch.int32))[0]
            out.append([(self._words(h, emission, frames, frame_seconds), float(h.score)) for h in hyps])
        return out

    def _words(self, hyp, emission: torch.Tensor, frames: torch.Tensor, frame_seconds: float) -> list[Word]:
        # torchaudio drops blanks and merges repeats; each token carries the step it was emitted
        # at, counted from an initial silence step that flashlight adds. Step k of the search
        # is frame frames[k] of the utterance.
        last = emission.shape[0] - 1  # flashlight may stamp the final token one step past the end
        steps = [min(max(t - 1, 0), last) for t in hyp.timesteps.tolist()]
        tokens = [Token(tok, int(frames[k]), int(frames[k]) + 1, float(emission[k, tok].exp()))
                  for tok, k in zip(hyp.tokens.tolist(), steps)]
        groups = group_words(tokens, self.vocab.boundary)
        spelled = [tuple(self.vocab.tokens[t.id] for t in group) for group in groups]
        # lexicon-free hypotheses have no words: a word is its characters between boundaries
        words = ["".join(s) for s in spelled] if self.lexicon_free else hyp.words
        return [Word(word, _sec(group[0].start, frame_seconds), _sec(group[-1].end, frame_seconds),
                     symbols, round(_confidence(group), 4), _token_evidence(group))
                for word, group, symbols in zip(words, groups, spelled)]


def _token_evidence(tokens: list[Token]) -> dict[str, float]:
    """A beam word's acoustic evidence: the posteriors of its tokens at the frames where they were emitted."""
    logs = [math.log(max(t.prob, 1e-30)) for t in tokens]
    return {"acoustic_min": _confidence(tokens), "acoustic_mean": math.exp(sum(logs) / len(logs)),
            "tokens": float(len(tokens))}


def skip_blank_frames(log_probs: torch.Tensor, threshold: float | None, blank: int = 0) -> torch.Tensor:
    """The frames of ``(T, V)`` CTC log-probabilities worth searching: all but the second and
    later frames of each run where the blank's posterior exceeds ``threshold`` (all if ``None``).

    A CTC model is peaky: most frames are near-certain blanks, and a hypothesis can only stay
    put through them. One frame of each such run is kept, so two equal tokens either side
    still read as two. Returns the ``(T',)`` frame indices kept, in order.
    """
    T = log_probs.shape[0]
    if threshold is None:
        return torch.arange(T)
    sure = log_probs[:, blank] > math.log(threshold)
    after_sure = torch.cat([torch.tensor([False]), sure[:-1]])
    return (~(sure & after_sure)).nonzero()[:, 0]


def ctc_log_likelihood(log_probs: torch.Tensor, targets: list[list[int]]) -> torch.Tensor:
    """``log P(target | x)`` under CTC (all alignments summed) for each of ``targets``, given one
    utterance's ``(T, V)`` log-probabilities; ``-inf`` where a target cannot fit in ``T`` frames."""
    T = log_probs.shape[0]
    n = len(targets)
    flat = torch.tensor([t for target in targets for t in target], dtype=torch.long)
    nll = torch.nn.functional.ctc_loss(log_probs.float()[:, None].expand(T, n, -1), flat,
                                       torch.full((n,), T, dtype=torch.long),
                                       torch.tensor([len(t) for t in targets]), reduction="none")
    return -nll


def joint_rescore(nbest: list[tuple[list[Word], float]], other_log_probs: torch.Tensor, other_head: str,
                  lexicon: Lexicon, weight: float) -> list[tuple[list[Word], float]]:
    """Rescore one head's beam hypotheses with the other head: add ``weight`` times the other
    head's CTC log-likelihood of the same words, and sort.

    Both heads read the same encoder frames but were trained on different targets, so their
    errors differ: the phone head hears words better, the character head knows how they are
    spelled (it tells homophones and near-homophones apart). The words are spelled for the
    character head, or said with each word's first pronunciation for the phone head;
    ``other_log_probs`` is ``(T, V)`` for one utterance.
    """
    unique: dict[tuple[str, ...], tuple[list[Word], float]] = {}
    for words, score in nbest:  # flashlight's n-best repeats word sequences with other alignments
        key = tuple(w.word for w in words)
        if key not in unique or score > unique[key][1]:
            unique[key] = (words, score)
    nbest = list(unique.values())
    texts = [[w.word for w in words] for words, _ in nbest]
    if other_head == "char":
        targets = [CHAR_VOCAB.encode(list(BOUNDARY_TOKEN.join(t))) for t in texts]
    else:
        targets = [PHONE_VOCAB.encode(lexicon.phones_for_words(t) or []) for t in texts]
    usable = [i for i, t in enumerate(targets) if t]
    other = torch.full((len(nbest),), float("-inf"))
    if usable:
        other[usable] = ctc_log_likelihood(other_log_probs, [targets[i] for i in usable])
    rescored = [(words, score + weight * float(o)) for (words, score), o in zip(nbest, other)]
    return sorted(rescored, key=lambda ws: -ws[1])


def best_words(nbest: list[tuple[list[Word], float]], other_log_probs: torch.Tensor, other_head: str,
               lexicon: Lexicon, joint_weight: float) -> list[Word]:
    """The words of the best of a beam's n-best, after joint rescoring if ``joint_weight``,
    each with its n-best posterior in ``evidence["posterior"]`` (see :func:`nbest_posteriors`)."""
    if joint_weight and len(nbest) > 1:
        nbest = joint_rescore(nbest, other_log_probs, other_head, lexicon, joint_weight)
    if not nbest:
        return []
    return [dataclasses.replace(w, evidence={**w.evidence, "posterior": p})
            for w, p in zip(nbest[0][0], nbest_posteriors(nbest))]


# ---------------------------------------------------------------------------------------------
# Word evidence: what the search knew about each word, the raw material of its confidence
# (asr.confidence turns it into a probability that the word is right)

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
    mass = torch.softmax(torch.tensor([score for _, score in nbest], dtype=torch.float64), 0).tolist()
    spans = []  # per hypothesis, its words by spelling: a word is looked for among its namesakes only
    for words, _ in nbest:
        by_word: dict[str, list[Word]] = {}
        for v in words:
            by_word.setdefault(v.word, []).append(v)
        spans.append(by_word)
    return [min(1.0, sum(m for by_word, m in zip(spans, mass) if any(_near(v, w) for v in by_word.get(w.word, ()))))
            for w in nbest[0][0]]


def word_evidence(words: list[Word], log_probs: torch.Tensor, vocab, greedy: list[Token],
                  char_greedy: list[Token] | None, other_words: list[Word], frame_seconds: float,
                  char_log_probs: torch.Tensor | None = None) -> list[Word]:
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
    nonblank = 1.0 - log_probs[:, vocab.blank].float().exp()
    speech = float((nonblank > 0.5).float().mean())
    running = [0.0] + nonblank.double().cumsum(0).tolist()  # a word's mean activity from two sums, not a slice each
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


def _forced_gaps(words: list[Word], log_probs: torch.Tensor, vocab, spell=lambda w: list(w.tokens)) -> list[float]:
    """Per word, the mean over its frames of (log-prob of the forced alignment's token - best
    log-prob) for the CTC forced alignment of the whole hypothesis, each word spelt in
    ``vocab``'s tokens by ``spell`` (``torchaudio``'s ``forced_align``); a word's frames run
    from the boundary before it to the one after it."""
    import torchaudio.functional as F

    symbols = [s for k, w in enumerate(words) for s in ([BOUNDARY_TOKEN] if k else []) + spell(w)]
    lp = log_probs.float()
    try:
        labels, scores = F.forced_align(lp[None].contiguous(), torch.tensor([vocab.encode(symbols)], dtype=torch.int32),
                                        blank=vocab.blank)
    except (RuntimeError, ValueError):  # more tokens than frames, or a symbol the head lacks: the words are doubtful
        return [FORCED_GAP_FLOOR] * len(words)
    gap = scores[0] - lp.max(-1).values
    # the frames of the n - 1 boundary tokens cut the utterance into the n words' spans
    edges = [0] + [e for span in F.merge_tokens(labels[0], scores[0], blank=vocab.blank)
                   if span.token == vocab.boundary for e in (span.start, span.end)] + [len(gap)]
    return [max(float(gap[a:b].mean()), FORCED_GAP_FLOOR) if b > a else FORCED_GAP_FLOOR
            for a, b in zip(edges[0::2], edges[1::2])]


FORCED_GAP_FLOOR = -10.0  # nats a frame: a word the acoustics do not support at all


@dataclass(frozen=True)
class DecodingConfig:
    """How words are found: ``greedy`` best path, or ``beam`` search with the lexicon and an optional LM."""

    decoder: str = "greedy"  # "greedy" or "beam"
    lm: str | None = None  # ARPA or KenLM binary; its OUT.words.txt (from `asr lm build`) limits the vocabulary
    beam_size: int = 50
    lm_weight: float = 1.0
    word_score: float = 0.0
    joint_weight: float = 0.0  # > 0: rescore the beam's n-best with the other head (`joint_rescore`)
    nbest: int = 16  # hypotheses kept for joint rescoring
    beam_size_token: int | None = None  # tokens tried per frame (None: all)
    beam_threshold: float = 50.0  # hypotheses scoring this far below the best are dropped
    lexicon_free: bool = False  # character head only: any spelling, no word LM (open vocabulary)
    blank_skip: float | None = None  # search skips repeated frames whose blank posterior exceeds this
    calibration: str | None = None  # word confidences from this calibrator (`asr calibrate`), else raw posteriors
    precision: str = "fp32"  # the acoustic model's arithmetic: fp32, bf16 or auto (see asr.model.forward_batches)


def lm_vocabulary(lm: str | None, lexicon: Lexicon) -> list[str] | None:
    """The words of ``lm`` (its ``LM.words.txt``, written by `asr lm build`) that the lexicon
    can spell or say; ``None`` (all lexicon words) without an LM or a word list."""
    vocab = Path(f"{lm}.words.txt")
    if lm is None or not vocab.is_file():
        return None
    return [w for w in vocab.read_text(encoding="utf-8").split() if w in lexicon]


def make_beam_decoder(head: str, lexicon: Lexicon, config: DecodingConfig) -> BeamDecoder | None:
    """The beam decoder ``config`` asks for, or ``None`` for greedy decoding."""
    if config.decoder == "greedy":
        return None
    if config.decoder != "beam":
        raise ConfigError(f"decoder must be 'greedy' or 'beam', not {config.decoder!r}")
    if config.lexicon_free:  # open vocabulary: no lexicon, so no word LM either
        config = dataclasses.replace(config, lm=None)
    return BeamDecoder(head, lexicon, config)
