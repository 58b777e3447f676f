"""Grapheme-to-phoneme: a pronunciation for a word the lexicon lacks (a name, a product, a place),
from a small vanilla RNN trained on the lexicon (`asr g2p train`, :mod:`asr.train_g2p`).

The model reads a word's letters, each repeated ``repeat`` times (CTC can give at most one
token a step, and ``x`` says three phones), through a bidirectional ``nn.RNN`` and gives CTC
log-probabilities over the 39 phones; the best path is the pronunciation. It is stored as arrays
only (``g2p.npz``, read with ``allow_pickle=False``) and runs on numpy, like :mod:`asr.rnn`::

    g2p = G2P.load("g2p.npz")
    g2p("zorblax")              # -> ('Z', 'AO', 'R', 'B', 'L', 'AE', 'K', 'S')
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .text import CHARS, PHONES

LETTERS = ("<pad>",) + CHARS  # input symbols: index 0 pads a batch
OUTPUTS = ("<blank>",) + tuple(PHONES)  # CTC outputs: blank, then the 39 phones


class G2PError(UserError):
    """A word G2P cannot spell (letters outside a-z and '), or a model file that cannot be used."""


@dataclass(frozen=True)
class G2PConfig:
    """The G2P network: letters (embedded, each repeated) -> bidirectional tanh RNN -> phones."""

    embedding: int = 64
    hidden: int = 256  # per direction
    layers: int = 2
    repeat: int = 3  # steps per letter: CTC gives at most one phone a step (``x`` is K S, ``ex`` three)


def check_word(word: str) -> str:
    """``word`` as the lexicon writes words (lower case a-z and '), or :class:`G2PError`."""
    w = word.lower()
    if not w or any(c not in CHARS for c in w):
        raise G2PError(f"{word!r}: G2P spells words of the letters a-z and ' only (write numbers as words)")
    return w


def encode(words: list[str], repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """Words -> ``(B, T)`` letter indices, each letter ``repeat`` times, padded with 0; ``(B,)`` lengths."""
    index = {c: i for i, c in enumerate(LETTERS)}
    lengths = np.array([len(w) * repeat for w in words])
    x = np.zeros((len(words), int(lengths.max(initial=1))), dtype=np.int64)
    for b, w in enumerate(words):
        x[b, :lengths[b]] = np.repeat([index[c] for c in w], repeat)
    return x, lengths


class G2P:
    """A trained G2P model (numpy): ``g2p(word)`` -> phones."""

    def __init__(self, config: G2PConfig, weights: dict[str, np.ndarray]):
        self.config, self.w = config, weights

    @classmethod
    def load(cls, path: str | Path) -> "G2P":
        try:
            with np.load(path, allow_pickle=False) as z:
                config = G2PConfig(**json.loads(str(z["config"])))
                weights = {k: z[k].astype(np.float32) for k in z.files if k != "config"}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise G2PError(f"{path}: not a G2P model as `asr g2p train` writes it ({type(e).__name__}: {e})") from None
        return cls(config, weights)

    def save(self, path: str | Path) -> None:
        import io

        from .io import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, config=np.array(json.dumps(dataclasses.asdict(self.config))), **self.w)
        atomic_write_bytes(path, buf.getvalue())

    def log_probs(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """``(B, T)`` letter indices -> ``(B, T, 40)`` CTC log-probabilities (padding: ignored)."""
        w, c = self.w, self.config
        h = w["embedding.weight"][x]  # (B, T, E)
        B, T = x.shape
        mask = (np.arange(T)[None, :] < lengths[:, None])[..., None]  # (B, T, 1)
        for layer in range(c.layers):
            outs = []
            for suffix, steps in (("", range(T)), ("_reverse", range(T - 1, -1, -1))):
                w_ih, w_hh = w[f"rnn.weight_ih_l{layer}{suffix}"], w[f"rnn.weight_hh_l{layer}{suffix}"]
                b = w[f"rnn.bias_ih_l{layer}{suffix}"] + w[f"rnn.bias_hh_l{layer}{suffix}"]
                inputs = h @ w_ih.T + b  # (B, T, H): the input's part of every step at once
                state = np.zeros((B, c.hidden), dtype=np.float32)
                out = np.zeros((B, T, c.hidden), dtype=np.float32)
                for t in steps:
                    new = np.tanh(inputs[:, t] + state @ w_hh.T)
                    # padding leaves the state as it was: the backward direction starts at each word's end
                    state = np.where(mask[:, t], new, state)
                    out[:, t] = state
                outs.append(out)
            h = np.concatenate(outs, axis=-1)
        logits = h @ w["out.weight"].T + w["out.bias"]
        logits -= logits.max(-1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(-1, keepdims=True))

    def pronounce(self, words: list[str]) -> list[tuple[str, ...]]:
        """Each word's pronunciation (the best CTC path), in order; :class:`G2PError` for a word
        of other letters."""
        words = [check_word(w) for w in words]
        if not words:
            return []
        x, lengths = encode(words, self.config.repeat)
        best = self.log_probs(x, lengths).argmax(-1)
        prons = []
        for b, n in enumerate(lengths):
            path = best[b, :n]
            tokens = [int(t) for k, t in enumerate(path) if t != 0 and (k == 0 or t != path[k - 1])]
            prons.append(tuple(OUTPUTS[t] for t in tokens))
        return prons

    def __call__(self, word: str) -> tuple[str, ...]:
        return self.pronounce([word])[0]


def parse_words(entries, source: str = "words") -> list[tuple[str, tuple[str, ...] | None]]:
    """Added words, one entry each: ``"word"`` or ``"word PH ON ES"`` (a tab or spaces between;
    stress digits dropped, as the lexicon drops them) -> ``(word, phones or None)``."""
    out = []
    for k, entry in enumerate(entries, 1):
        if not isinstance(entry, str) or not entry.split():
            raise G2PError(f"{source}: entry {k} is not a word: {entry!r}")
        word, *phones = entry.split()
        try:
            word = check_word(word)
        except G2PError as e:
            raise G2PError(f"{source}: entry {k}: {e}") from None
        phones = [p.upper().rstrip("012") for p in phones]
        bad = [p for p in phones if p not in PHONES]
        if bad:
            raise G2PError(f"{source}: entry {k} ({entry!r}): {bad[0]!r} is not one of the 39 phones "
                           f"({' '.join(PHONES)})")
        out.append((word, tuple(phones) or None))
    return out


def pronounce_words(entries, g2p: str | Path | None, source: str = "words") -> dict[str, list[tuple[str, ...]]]:
    """Added words -> their pronunciations: those given, and the G2P model's for the others
    (:class:`G2PError` naming the first such word when there is no model)."""
    parsed = parse_words(entries, source)
    missing = [w for w, p in parsed if p is None]
    said: dict[str, tuple[str, ...]] = {}
    if missing:
        if g2p is None:
            raise G2PError(f"{source}: {missing[0]!r} has no pronunciation and the bundle has no G2P model to "
                           f"say it: give WORD<TAB>PHONES, or a bundle with one (asr bundle --g2p)")
        said = dict(zip(missing, G2P.load(g2p).pronounce(missing)))
    prons: dict[str, list[tuple[str, ...]]] = {}
    for w, p in parsed:
        pron = p if p is not None else said[w]
        if not pron:
            raise G2PError(f"{source}: G2P gives {w!r} no phones: give its pronunciation (WORD<TAB>PHONES)")
        if pron not in prons.setdefault(w, []):
            prons[w].append(pron)
    return prons
