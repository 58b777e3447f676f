"""From CTC log-probabilities to words with times.

Greedy (best path) decoding: take the most likely token per frame, merge repeats,
drop blanks. Tokens between word boundaries form a word: the characters are
concatenated, the phones are looked up in the lexicon.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

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
    confidence: float = 1.0  # in [0, 1]: the lowest mean posterior of its tokens


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

    def words(self, head: str = "char") -> list[Word]:
        if head not in ("char", "phone"):
            raise ValueError(f"head must be 'char' or 'phone', not {head!r}")
        return self.char_words if head == "char" else self.phone_words

    def text(self, head: str = "char") -> str:
        return text_of(self.words(head))


def decode_outputs(out: dict[str, torch.Tensor], lexicon: Lexicon, frame_seconds: float,
                   phone_words_too: bool = True) -> list[Hypothesis]:
    """Greedy decoding of a model's batch output (see ``AcousticModel.forward``).

    ``phone_words_too=False`` skips the lexicon look-up of the phone head's words (its
    phones are still decoded), which is the costly part when only the character head is wanted.
    """
    hyps = []
    for b, n in enumerate(out["lengths"].tolist()):
        chars = best_path(out["char"][b], n)
        phones = best_path(out["phone"][b], n)
        pwords = phone_words(phones, frame_seconds, lexicon) if phone_words_too else []
        hyps.append(Hypothesis(char_words(chars, frame_seconds), pwords, phones_of(phones)))
    return hyps


@torch.no_grad()
def recognize(model: torch.nn.Module, feats: list[torch.Tensor], lexicon: Lexicon,
              batch_frames: int = 24000, phone_words_too: bool = True,
              beam: "BeamDecoder | None" = None) -> list[Hypothesis]:
    """Hypotheses for feature matrices ``(T_i, D)``, batched by length, in input order.

    Both heads are decoded greedily; with ``beam``, the words of ``beam.head`` come from
    its beam search instead. ``model`` is an ``AcousticModel`` (its ``config.frame_seconds``
    gives the time scale).
    """
    model.eval()
    order = sorted(range(len(feats)), key=lambda i: feats[i].shape[0])
    results: list[Hypothesis | None] = [None] * len(feats)
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and feats[order[end]].shape[0] * (end - start + 1) <= batch_frames:
            end += 1
        idx = order[start:end]
        batch = [feats[i].float() for i in idx]
        lengths = torch.tensor([f.shape[0] for f in batch])
        x = torch.nn.utils.rnn.pad_sequence(batch, batch_first=True).to(next(model.parameters()).device)
        out = {k: v.cpu() for k, v in model(x, lengths).items()}
        hyps = decode_outputs(out, lexicon, model.config.frame_seconds, phone_words_too and
                              (beam is None or beam.head != "phone"))
        if beam is not None:
            for h, nbest in zip(hyps, beam(out[beam.head], out["lengths"], model.config.frame_seconds)):
                words = nbest[0] if nbest else []
                if beam.head == "char":
                    h.char_words = words
                else:
                    h.phone_words = words
        for i, h in zip(idx, hyps):
            results[i] = h
        start = end
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Beam search with a lexicon and an n-gram LM (flashlight-text through torchaudio)


class BeamDecoder:
    """CTC beam search over one head, words constrained to a lexicon, scored by an ARPA/KenLM LM.

    For the character head a word is spelled by its letters; for the phone head by each of
    its pronunciations. ``lm=None`` decodes with the lexicon alone. Words come back with
    times from the frames of their first and last tokens, and a confidence from the
    posteriors of the frames where their tokens were emitted.
    """

    def __init__(self, head: str, lexicon: Lexicon, lm: str | None = None, words: list[str] | None = None,
                 beam_size: int = 50, lm_weight: float = 2.0, word_score: float = 0.0, nbest: int = 1):
        from torchaudio.models.decoder import ctc_decoder  # loads flashlight-text: only when beam search is asked for

        if head not in ("char", "phone"):
            raise ValueError(f"head must be 'char' or 'phone', not {head!r}")
        self.head = head
        self.vocab = CHAR_VOCAB if head == "char" else PHONE_VOCAB
        vocabulary = words if words is not None else list(lexicon.prons)
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
        if not lines:
            raise ValueError("no word of the vocabulary can be spelled with this head's tokens")
        self._dir = tempfile.TemporaryDirectory(prefix="asr-beam-")
        lex_path = f"{self._dir.name}/lexicon.txt"
        with open(lex_path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self.decoder = ctc_decoder(lexicon=lex_path, tokens=list(self.vocab.tokens), lm=lm, nbest=nbest,
                                   beam_size=beam_size, lm_weight=lm_weight, word_score=word_score,
                                   blank_token=self.vocab.tokens[0], sil_token=BOUNDARY_TOKEN, unk_word="<unk>")

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor, frame_seconds: float) -> list[list[list[Word]]]:
        """``(B, T, V)`` log-probabilities -> for each utterance, its n-best lists of words."""
        emissions = log_probs.detach().to("cpu", torch.float32)
        B, T, V = emissions.shape
        # flashlight's lexicon decoder closes a word only on a boundary token: give every
        # utterance one more frame, a certain boundary, right after its end.
        padded = torch.full((B, T + 1, V), -1e4)
        padded[:, :T] = emissions
        lengths = lengths.cpu().to(torch.int64)
        padded[torch.arange(B), lengths] = torch.where(torch.arange(V) == self.vocab.boundary, 0.0, -1e4)
        emissions = padded.contiguous()
        out = []
        for b, hyps in enumerate(self.decoder(emissions, (lengths + 1).to(torch.int32))):
            out.append([self._words(h, emissions[b], frame_seconds) for h in hyps])
        return out

    def _words(self, hyp, emission: torch.Tensor, frame_seconds: float) -> list[Word]:
        # torchaudio drops blanks and merges repeats; each token carries the frame it was emitted
        # at, counted from an initial silence step that flashlight adds.
        tokens = [Token(tok, max(t - 1, 0), max(t, 1), float(emission[max(t - 1, 0), tok].exp()))
                  for tok, t in zip(hyp.tokens.tolist(), hyp.timesteps.tolist())]
        return [Word(word, _sec(group[0].start, frame_seconds), _sec(group[-1].end, frame_seconds),
                     tuple(self.vocab.tokens[t.id] for t in group), round(_confidence(group), 4))
                for word, group in zip(hyp.words, group_words(tokens, self.vocab.boundary))]


@dataclass(frozen=True)
class DecodingConfig:
    """How words are found: ``greedy`` best path, or ``beam`` search with the lexicon and an optional LM."""

    decoder: str = "greedy"  # "greedy" or "beam"
    lm: str | None = None  # ARPA or KenLM binary; its OUT.words.txt (from `asr lm build`) limits the vocabulary
    beam_size: int = 50
    lm_weight: float = 1.0
    word_score: float = 0.0


def make_beam_decoder(head: str, lexicon: Lexicon, config: DecodingConfig) -> BeamDecoder | None:
    """The beam decoder ``config`` asks for, or ``None`` for greedy decoding."""
    if config.decoder == "greedy":
        return None
    if config.decoder != "beam":
        raise ValueError(f"decoder must be 'greedy' or 'beam', not {config.decoder!r}")
    words = None
    if config.lm is not None:
        if not Path(config.lm).is_file():
            raise FileNotFoundError(f"{config.lm}: language model not found")
        vocab = Path(f"{config.lm}.words.txt")
        if vocab.is_file():
            words = [w for w in vocab.read_text(encoding="utf-8").split() if w in lexicon]
    return BeamDecoder(head, lexicon, lm=config.lm, words=words, beam_size=config.beam_size,
                       lm_weight=config.lm_weight, word_score=config.word_score)
