"""CTC outputs as tokens and words: best path, greedy words of each head, forced alignment.

Greedy (best path) decoding: take the most likely token per frame, merge repeats, drop
blanks. Tokens between word boundaries form a word: the characters are concatenated, the
phones are looked up in the lexicon. A known transcript is placed on the frames by CTC
forced alignment; :func:`ctc_log_likelihood` scores one under all alignments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError
from .text import BOUNDARY as BOUNDARY_TOKEN
from .text import CHAR_VOCAB, PHONE_VOCAB, Lexicon


HEADS = ("char", "phone")  # the model's two CTC heads: characters and phones


def check_head(head: str, where: str = "") -> str:
    """``head``, if it names a head; else the one error every caller gives (``where``: a file to name)."""
    if head not in HEADS:
        raise ConfigError(f"{where + ': ' if where else ''}head must be 'char' or 'phone', not {head!r}")
    return head


@dataclass(frozen=True)
class Token:
    id: int
    start: int  # first frame (inclusive)
    end: int  # last frame + 1
    prob: float = 1.0  # mean posterior of this token over its frames


@dataclass(frozen=True)
class Word:
    """A recognised word: its text, where it was said (seconds from the start of the audio) and the
    probability that it is right.

    >>> w = asr.load().transcribe("672-122797-0060.opus").words[-1]
    >>> w.word, w.start < w.end, 0 <= w.confidence <= 1, w.tokens
    ('story', True, True, ('S', 'T', 'AO', 'R', 'IY'))
    """

    word: str
    start: float  # seconds
    end: float  # seconds
    tokens: tuple[str, ...] = ()  # characters or phones that spelled it
    confidence: float = 1.0  # in [0, 1]: calibrated (see asr.confidence), else the lowest posterior of its tokens
    # What the search knew about the word, the raw material of a calibrated confidence
    # (beam search only; names in asr.confidence.FEATURES).
    evidence: dict[str, float] = field(default_factory=dict, compare=False, repr=False)


def best_path(log_probs: np.ndarray, length: int | None = None, blank: int = 0) -> list[Token]:
    """CTC best path of ``(T, V)`` log-probabilities: tokens with their frame spans.

    A token spans the run of frames where it is the arg-max, so ``a a - a`` gives two
    tokens ``a`` (frames 0-2 and 3-4) and ``a a b`` gives ``a`` (0-2) and ``b`` (2-3).
    """
    if length is not None:
        log_probs = log_probs[:length]
    ids_a = log_probs.argmax(-1)
    ids, probs = ids_a.tolist(), np.exp(np.take_along_axis(log_probs, ids_a[:, None], -1)[:, 0]).tolist()
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
        out.append(Word("".join(chars), seconds_of(group[0].start, frame_seconds), seconds_of(group[-1].end, frame_seconds), chars,
                        lowest_posterior(group)))
    return out


def phone_words(tokens: list[Token], frame_seconds: float, lexicon: Lexicon) -> list[Word]:
    """Words whose pronunciation the phone head produced, through the lexicon (closest entry if none matches)."""
    out = []
    for group in group_words(tokens, PHONE_VOCAB.boundary):
        phones = tuple(PHONE_VOCAB.tokens[t.id] for t in group)
        word = lexicon.word_for(phones)
        conf = lowest_posterior(group) * (1.0 if lexicon.words_by_pron.get(phones) == word else 0.5)
        out.append(Word(word, seconds_of(group[0].start, frame_seconds), seconds_of(group[-1].end, frame_seconds), phones, conf))
    return out


def lowest_posterior(tokens: list[Token]) -> float:
    """A word is as sure as its least sure token."""
    return min(t.prob for t in tokens)


def seconds_of(frame: int, frame_seconds: float) -> float:
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
        return self.char_words if check_head(head) == "char" else self.phone_words

    def text(self, head: str = "char") -> str:
        return text_of(self.words(head))


def greedy_hypotheses(out: dict[str, np.ndarray], lexicon: Lexicon, frame_seconds: float,
                      phone_words_too: bool = True) -> tuple[list[Hypothesis], list[dict[str, list[Token]]]]:
    """Greedy decoding of a model's batch output (see ``AcousticModel.forward``): the
    hypotheses, and each utterance's best path per head (``{"char": tokens, "phone": tokens}``).

    ``phone_words_too=False`` skips the lexicon look-up of the phone head's words (its
    phones are still decoded), which is the costly part when only the character head is wanted.
    """
    hyps, paths = [], []
    for b, n in enumerate(np.asarray(out["lengths"]).tolist()):
        chars = best_path(out["char"][b], n)
        phones = best_path(out["phone"][b], n)
        pwords = phone_words(phones, frame_seconds, lexicon) if phone_words_too else []
        hyps.append(Hypothesis(char_words(chars, frame_seconds), pwords, phones_of(phones),
                               [seconds_of(t.start, frame_seconds) for t in phones if t.id != PHONE_VOCAB.boundary]))
        paths.append({"char": chars, "phone": phones})
    return hyps, paths


def align_words(log_probs: np.ndarray, words: list[str], head: str, lexicon: Lexicon,
                frame_seconds: float) -> list[Word] | None:
    """Where each of ``words`` (a known transcript) lies in one utterance's ``(T, V)`` CTC
    log-probabilities of ``head``: CTC forced alignment (:func:`forced_align`).

    Times follow the beam decoder's convention (first frame of the first token to the last
    frame + 1 of the last token), so the two can be compared. ``None`` if a word has no
    pronunciation (phone head) or the transcript cannot fit in ``T`` frames.
    """
    vocab = CHAR_VOCAB if head == "char" else PHONE_VOCAB
    symbols = list(BOUNDARY_TOKEN.join(words)) if head == "char" else lexicon.phones_for_words(words)
    if not words or symbols is None:
        return None
    tokens = forced_align(log_probs, vocab.encode(symbols), vocab.blank)
    if tokens is None:
        return None
    groups = group_words(tokens, vocab.boundary)
    if len(groups) != len(words):
        return None
    return [Word(w, seconds_of(g[0].start, frame_seconds), seconds_of(g[-1].end, frame_seconds),
                 tuple(vocab.tokens[t.id] for t in g), round(lowest_posterior(g), 4)) for w, g in zip(words, groups)]


def _extended(target: list[int], blank: int) -> tuple[np.ndarray, np.ndarray]:
    """CTC's states for ``target``: blanks around and between its tokens ``(2L + 1,)``, and
    whether each state may be entered from two states back (a token unlike the one before it)."""
    ext = np.full(2 * len(target) + 1, blank, dtype=np.int64)
    ext[1::2] = target
    skip = np.zeros(len(ext), dtype=bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    return ext, skip


def viterbi_path(log_probs: np.ndarray, target: list[int], blank: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """The most likely CTC alignment (Viterbi) of ``target`` token ids to ``(T, V)`` log-probabilities:
    each frame's label and state ``(T,)`` (state ``2k + 1`` is the ``k``-th token, even states
    blanks), as ``torchaudio.functional.forced_align`` finds it; ``None`` if the target cannot fit
    in ``T`` frames."""
    T = log_probs.shape[0]
    ext, skip = _extended(target, blank)
    S = len(ext)
    emit = log_probs[:, ext].astype(np.float64)  # (T, S)
    score = np.full(S, -np.inf)
    score[:2] = emit[0, :2]
    back = np.zeros((T, S), dtype=np.int8)  # how far back (0, 1, 2 states) each state was entered from
    one, two = np.full(S, -np.inf), np.full(S, -np.inf)  # the scores one and two states back
    no_skip = ~skip
    for t in range(1, T):
        one[1:] = score[:-1]
        two[2:] = score[:-2]
        two[no_skip] = -np.inf
        from_one, from_two = one > score, two > np.maximum(score, one)  # ties: stay, then the nearer state
        best = np.where(from_one, one, score)
        np.copyto(best, two, where=from_two)
        back[t] = from_one + from_two * (2 - from_one)
        score = best + emit[t]
    end = S - 1 if S == 1 or score[S - 1] > score[S - 2] else S - 2
    if not np.isfinite(score[end]):
        return None
    states = np.empty(T, dtype=np.int64)
    s = end
    for t in range(T - 1, -1, -1):
        states[t] = s
        s -= int(back[t, s])
    return ext[states], states


def forced_align(log_probs: np.ndarray, target: list[int], blank: int = 0) -> list[Token] | None:
    """The tokens of :func:`viterbi_path` with their frame spans and mean posteriors, as
    ``torchaudio.functional.forced_align`` then ``merge_tokens`` give them; ``None`` if the target
    cannot fit in ``T`` frames."""
    path = viterbi_path(log_probs, target, blank)
    if path is None:
        return None
    labels, states = path
    T = len(labels)
    probs = np.exp(log_probs[np.arange(T), labels].astype(np.float64))
    tokens, start = [], 0
    for t in range(1, T + 1):  # a token spans each run of its state (a repeat is a new state)
        if t == T or states[t] != states[t - 1]:
            if labels[start] != blank:
                tokens.append(Token(int(labels[start]), start, t, float(probs[start:t].mean())))
            start = t
    return tokens


def ctc_log_likelihood(log_probs: np.ndarray, targets: list[list[int]], blank: int = 0) -> np.ndarray:
    """``log P(target | x)`` under CTC (all alignments summed) for each of ``targets`` ``(n,)``, given
    one utterance's ``(T, V)`` log-probabilities; ``-inf`` where a target cannot fit in ``T`` frames.

    The forward algorithm for all targets at once, their states padded to the longest, in
    probabilities rescaled to sum to 1 at every step (the scales' logs add up to the answer:
    Graves et al. 2006, section 4.1); only the current step's ``(n, S)`` values are held."""
    if not targets:
        return np.zeros(0)
    S = 2 * max(len(t) for t in targets) + 1
    n = len(targets)
    ext = np.full((n, S), blank, dtype=np.int64)
    skip = np.zeros((n, S), dtype=bool)
    for i, target in enumerate(targets):
        e, k = _extended(target, blank)
        ext[i, :len(e)], skip[i, :len(k)] = e, k
    probs = np.exp(log_probs.astype(np.float64))
    alpha = np.zeros((n, S))
    alpha[:, :2] = probs[0][ext[:, :2]]
    log_scale = np.zeros(n)
    nxt = np.empty_like(alpha)
    for t in range(probs.shape[0]):
        if t:
            np.copyto(nxt, alpha)
            nxt[:, 1:] += alpha[:, :-1]
            nxt[:, 2:] += alpha[:, :-2] * skip[:, 2:]
            alpha, nxt = nxt * probs[t][ext], alpha
        total = alpha.sum(1)
        alive = total > 0
        alpha[alive] /= total[alive, None]
        log_scale[alive] += np.log(total[alive])
        log_scale[~alive] = -np.inf
    ends = np.array([2 * len(t) for t in targets])
    rows = np.arange(n)
    last = alpha[rows, ends] + np.where(ends > 0, alpha[rows, np.maximum(ends - 1, 0)], 0.0)
    with np.errstate(divide="ignore"):
        return np.log(last) + log_scale
