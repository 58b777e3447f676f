"""A word-level vanilla RNN language model, at recognition time (numpy; training: asr.train_rnnlm).

The probability of a sentence, a word at a time (Mikolov et al. 2010, with the output tied to the
input embedding, Press & Wolf 2017, and torch's adaptive softmax, Grave et al. 2017)::

    x_t = E[w_{t-1}]                                  # (embed,) the previous word; w_0 = </s>
    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)  # (hidden,) plain nn.RNN
    P(w_t | w_<t) = adaptive_softmax(P_out h_t)        # frequent words in the head, rare ones in clusters

Word 0 is ``</s>`` (it starts and ends every sentence), word 1 ``<unk>`` (every word outside the
vocabulary). The rescoring of a beam's n-best (:func:`asr.search.best_words`) adds
``rescore_weight`` times :meth:`RNNLM.score` to each hypothesis; hypotheses share most of their
words, so each distinct prefix is run once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import UserError
from .rnn import log_softmax

EOS, UNK = "</s>", "<unk>"


class RNNLMError(UserError):
    """An RNN LM file that cannot be used; the message names it."""


class RNNLM:
    """An RNN LM read from ``rnnlm.npz`` (arrays only, loaded without pickles)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError) as e:
            raise RNNLMError(f"{path}: not an RNN LM file ({e})") from None
        try:
            self.config = json.loads(str(arrays.pop("config")))
            self.words = [str(w) for w in arrays.pop("words")]
            self.emb = arrays.pop("emb").astype(np.float32)  # (V, E)
            self.layers = [(arrays.pop(f"w_ih{k}").astype(np.float32), arrays.pop(f"w_hh{k}").astype(np.float32),
                            (arrays.pop(f"b_ih{k}") + arrays.pop(f"b_hh{k}")).astype(np.float32))
                           for k in range(self.config["layers"])]
            self.proj = arrays.pop("proj").astype(np.float32)  # (E, H): hidden state to the softmax's input
            self.head = arrays.pop("head").astype(np.float32)  # (cutoffs[0] + clusters, E)
            self.cutoffs = [int(c) for c in self.config["cutoffs"]] + [len(self.words)]
            self.tails = [(arrays.pop(f"tail{i}_a").astype(np.float32), arrays.pop(f"tail{i}_b").astype(np.float32))
                          for i in range(len(self.cutoffs) - 1)]
        except KeyError as e:
            raise RNNLMError(f"{path}: not an RNN LM file (no {e})") from None
        self.index = {w: i for i, w in enumerate(self.words)}
        self.path = path
        # a backward LM (trained with reverse=true) reads each sentence from its last word
        self.reverse = bool(self.config.get("reverse", False))

    def ids(self, words: list[str]) -> list[int]:
        return [self.index.get(w, 1) for w in words]

    def _step(self, prev: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(B,)`` previous word ids, each layer's ``(B, H)`` state -> ``(B, E)`` softmax input, new states."""
        x = self.emb[prev]
        new = []
        for (w_ih, w_hh, b), h in zip(self.layers, state):
            x = np.tanh(x @ w_ih.T + h @ w_hh.T + b)
            new.append(x)
        return x @ self.proj.T, new

    def _log_probs(self, out: np.ndarray, targets: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``(R, E)`` softmax inputs, ``(B,)`` word ids -> ``(B,)`` natural log-probabilities of each
        target after row ``rows[i]`` of ``out`` (default: row i). Each softmax (the head's, a tail
        cluster's) is computed once per row that needs it, however many targets share the row: the
        sentences of an n-best that share a prefix share its row."""
        rows = np.arange(len(targets)) if rows is None else rows
        used, at = np.unique(rows, return_inverse=True)
        head = log_softmax(out[used] @ self.head.T)
        shortlist = self.cutoffs[0]
        result = np.empty(len(targets), np.float32)
        in_head = targets < shortlist
        result[in_head] = head[at[in_head], targets[in_head]]
        for i, (a, b) in enumerate(self.tails):
            picked = np.flatnonzero((targets >= self.cutoffs[i]) & (targets < self.cutoffs[i + 1]))
            if picked.size:
                tail_rows, tail_at = np.unique(rows[picked], return_inverse=True)
                tail = log_softmax((out[tail_rows] @ a.T) @ b.T)
                result[picked] = head[at[picked], shortlist + i] + tail[tail_at, targets[picked] - self.cutoffs[i]]
        return result

    def _initial(self, n: int) -> list[np.ndarray]:
        return [np.zeros((n, w_hh.shape[0]), np.float32) for _, w_hh, _ in self.layers]

    def score(self, sentences: list[list[str]], skip_unknown: bool = False) -> np.ndarray:
        """``ln P(sentence </s>)`` of each word list (natural log), all at once; a prefix that several
        sentences share is run once. ``skip_unknown``: words outside the vocabulary add nothing
        (they are still read as context), as perplexities leave out-of-vocabulary words out."""
        seqs = [self.ids(s[::-1] if self.reverse else s) + [0] for s in sentences]
        totals = np.zeros(len(seqs), np.float64)
        # One row per distinct prefix at each depth: sentences of a beam's n-best mostly share them.
        groups = {(): list(range(len(seqs)))}
        state = self._initial(1)
        rows = {(): 0}
        prev = np.zeros(1, np.int64)
        depth = 0
        while groups:
            keys = list(groups)
            out, state = self._step(prev, state)
            # each live prefix's next word: score it for every sentence that continues with it
            targets, owners = [], []
            for key in keys:
                for s in groups[key]:
                    targets.append(seqs[s][depth])
                    owners.append((rows[key], s))
            lp = self._log_probs(out, np.array(targets), np.array([r for r, _ in owners]))
            for (_, s), v, t in zip(owners, lp, targets):
                if not (skip_unknown and t == 1):
                    totals[s] += v
            # the prefixes one word longer that still go on
            next_groups: dict[tuple, list[int]] = {}
            for key in keys:
                for s in groups[key]:
                    if depth + 1 < len(seqs[s]):
                        next_groups.setdefault(key + (seqs[s][depth],), []).append(s)
            parent = [rows[k[:-1]] for k in next_groups]
            rows = {k: i for i, k in enumerate(next_groups)}
            state = [h[parent] for h in state]
            prev = np.array([k[-1] for k in next_groups], np.int64)
            groups = next_groups
            depth += 1
        return totals

    def perplexity(self, sentences: list[list[str]], batch: int = 256) -> tuple[float, int, int]:
        """Perplexity over the words and sentence ends of ``sentences`` that the vocabulary holds, how
        many were scored, and how many words were left out as out of vocabulary."""
        total, count, unknown = 0.0, 0, 0
        for i in range(0, len(sentences), batch):
            part = sentences[i:i + batch]
            total += float(self.score(part, skip_unknown=True).sum())
            oov = sum(w not in self.index for s in part for w in s)
            unknown += oov
            count += sum(len(s) + 1 for s in part) - oov
        return float(np.exp(-total / max(count, 1))), count, unknown

    def sample(self, n: int, rng: np.random.Generator, max_words: int = 40, temperature: float = 1.0) -> list[str]:
        """``n`` sentences drawn from the model, a word at a time (``<unk>`` is never drawn)."""
        state = self._initial(n)
        prev = np.zeros(n, np.int64)
        out_words: list[list[str]] = [[] for _ in range(n)]
        live = np.ones(n, bool)
        for _ in range(max_words):
            out, state = self._step(prev, state)
            logits = self._all_log_probs(out) / temperature
            logits[:, 1] = -np.inf
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            prev = np.array([rng.choice(len(self.words), p=row) for row in p], np.int64)
            for k in np.flatnonzero(live):
                if prev[k] == 0:
                    live[k] = False
                else:
                    out_words[k].append(self.words[prev[k]])
            if not live.any():
                break
        return [" ".join(w[::-1] if self.reverse else w) for w in out_words]

    def _all_log_probs(self, out: np.ndarray) -> np.ndarray:
        """``(B, E)`` -> ``(B, V)`` log-probabilities of every word."""
        head = log_softmax(out @ self.head.T)
        shortlist = self.cutoffs[0]
        parts = [head[:, :shortlist]]
        for i, (a, b) in enumerate(self.tails):
            parts.append(head[:, shortlist + i:shortlist + i + 1] + log_softmax((out @ a.T) @ b.T))
        return np.concatenate(parts, axis=1)
