"""Training the word-level RNN LM of :mod:`asr.rnnlm` (torch): ``asr lm rnn TEXTS --out rnnlm.npz``.

The text (the n-gram LM's: books and training transcripts, one sentence a line) is read a sentence
at a time, from ``</s>`` and a zero state, exactly as the rescoring reads a hypothesis (a model
that carried its state across sentences would have learnt to lean on the sentence before, which
a hypothesis does not have); backpropagation runs through the whole sentence (at most
``max_words`` words). Sentences of similar length make a batch. The output layer is torch's
adaptive softmax (frequent words in a full softmax, rarer ones in smaller clusters: most of a
word-level LM's time is its output layer). ``valid_sentences`` sentences, evenly spaced through the
text (so that the training transcripts, which come last, are trained on), are held out for the
perplexity that is printed. The learning rate warms up and then, by default, falls along a cosine to
zero at the end of the budget (time or steps), which the budget fixes in advance. Sentences whose words are mostly outside ``english`` (a word list:
the n-gram LM's vocabulary) are left out as foreign-language text, as the n-gram LM does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .lm import english_share, iter_sentences, read_word_list
from .rnnlm import EOS, UNK


@dataclass(frozen=True)
class RNNLMTrainConfig:
    vocab: int = 20000  # most frequent words, plus </s> and <unk>
    embed: int = 256
    hidden: int = 512
    layers: int = 1
    cutoffs: tuple[int, ...] = (2000, 10000)  # adaptive softmax: head shortlist, then clusters
    dropout: float = 0.2
    max_words: int = 60  # a longer sentence is trained on its first max_words words
    words_per_batch: int = 4096  # sentences of similar length, padded to the longest
    lr: float = 2e-3
    # "cosine": from lr down to 0 over the budget (max_steps if given, else max_minutes), so that the
    # last updates are small and the model ends in a minimum rather than noise around one; "constant": lr throughout
    lr_schedule: str = "cosine"
    clip_norm: float = 1.0
    max_minutes: float = 60.0  # training time, not counting reading the text
    max_steps: int | None = None  # or this many batches, whichever comes first
    max_sentences: int | None = None
    valid_sentences: int = 5000
    min_english: float = 0.8
    seed: int = 0
    # True: each sentence is read right to left (a backward LM: P(w_t | the words after it)), whose
    # errors differ from a forward LM's; asr.rnnlm.RNNLM reads its hypotheses the same way
    reverse: bool = False

    def __post_init__(self):
        """Checked where the config is made (the CLI's --set, a caller), before any text is read."""
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"lr_schedule must be 'constant' or 'cosine', not {self.lr_schedule!r}")


class RNNLMModel(nn.Module):
    def __init__(self, c: RNNLMTrainConfig, vocab: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, c.embed)
        self.rnn = nn.RNN(c.embed, c.hidden, c.layers, nonlinearity="tanh", batch_first=True,
                          dropout=c.dropout if c.layers > 1 else 0.0)
        self.proj = nn.Linear(c.hidden, c.embed, bias=False)
        self.drop = nn.Dropout(c.dropout)
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(c.embed, vocab, list(c.cutoffs), div_value=4.0, head_bias=False)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T)`` word ids -> ``(B, T, E)`` softmax inputs, the state after them."""
        out, h = self.rnn(self.drop(self.emb(x)), h)
        return self.drop(self.proj(out)), h


def read_text(texts: list[str], english: set[str] | None, c: RNNLMTrainConfig) -> tuple[list[str], list[list[str]]]:
    """The vocabulary (by frequency) and the kept sentences, as word lists (right to left if ``c.reverse``)."""
    sentences = []
    for s in iter_sentences(texts, c.max_sentences):
        if english is None or english_share(s, english) >= c.min_english:
            sentences.append(s.split()[::-1] if c.reverse else s.split())
    counts = Counter(w for s in sentences for w in s)
    words = [EOS, UNK] + [w for w, _ in counts.most_common(c.vocab)]
    return words, sentences


def _encode(sentences: list[list[str]], index: dict[str, int], max_words: int) -> list[np.ndarray]:
    """Each sentence as word ids (at most ``max_words``), unknown words as <unk> (1)."""
    return [np.array([index.get(w, 1) for w in s[:max_words]], np.int64) for s in sentences]


def _batches(sentences: list[np.ndarray], words_per_batch: int, rng: np.random.Generator) -> list[list[int]]:
    """Sentences of similar length together (little padding), each batch about ``words_per_batch``
    words, in a random order."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    batches, current, longest = [], [], 0
    for i in order:
        longest = max(longest, len(sentences[i]) + 1)
        if current and longest * (len(current) + 1) > words_per_batch:
            batches.append(current)
            current, longest = [], len(sentences[i]) + 1
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def _tensors(sentences: list[np.ndarray], batch: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs ``</s> w1 .. wn`` and targets ``w1 .. wn </s>``, padded: ``(B, T)`` each and the mask of real targets."""
    longest = max(len(sentences[i]) for i in batch) + 1
    x = np.zeros((len(batch), longest), np.int64)
    y = np.zeros((len(batch), longest), np.int64)
    mask = np.zeros((len(batch), longest), bool)
    for row, i in enumerate(batch):
        ids = sentences[i]
        x[row, 1:len(ids) + 1] = ids
        y[row, :len(ids)] = ids
        mask[row, :len(ids) + 1] = True
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask)


def export(model: RNNLMModel, words: list[str], c: RNNLMTrainConfig, path: Path, produced_by: dict) -> None:
    """The weights as ``rnnlm.npz`` for :class:`asr.rnnlm.RNNLM` (arrays only), written atomically."""
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    arrays = {"words": np.array(words), "emb": state["emb.weight"], "proj": state["proj.weight"],
              "head": state["softmax.head.weight"],
              "config": np.array(json.dumps({**dataclasses.asdict(c), "layers": c.layers, **produced_by}))}
    for k in range(c.layers):
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            torch_name = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}[name]
            arrays[f"{name}{k}"] = state[f"rnn.{torch_name}_l{k}"]
    for i in range(len(c.cutoffs)):
        arrays[f"tail{i}_a"] = state[f"softmax.tail.{i}.0.weight"]
        arrays[f"tail{i}_b"] = state[f"softmax.tail.{i}.1.weight"]
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def evaluate(model: RNNLMModel, sentences: list[np.ndarray], c: RNNLMTrainConfig) -> float:
    """Perplexity over the words and sentence ends of ``sentences``, each read from the start, as
    :meth:`asr.rnnlm.RNNLM.score` reads a hypothesis."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in _batches(sentences, c.words_per_batch, np.random.default_rng(0)):
            x, y, mask = _tensors(sentences, batch)
            features, _ = model(x, None)
            res = model.softmax(features[mask], y[mask])
            total += float(res.loss) * int(mask.sum())
            count += int(mask.sum())
    model.train()
    return math.exp(total / max(count, 1))


def learning_rate(c: RNNLMTrainConfig, step: int, minutes: float) -> float:
    """The learning rate of update ``step`` (from 0), ``minutes`` into training: a linear warm-up over
    200 updates, then ``c.lr`` or a cosine from it to 0 at the end of the budget."""
    warm = min(1.0, (step + 1) / 200)
    if c.lr_schedule == "constant":
        return c.lr * warm
    done = step / c.max_steps if c.max_steps is not None else minutes / c.max_minutes
    return c.lr * warm * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


def train_rnnlm(texts: list[str], out: str | Path, c: RNNLMTrainConfig = RNNLMTrainConfig(),
                english: str | Path | None = None, log=print) -> dict:
    """Train on ``texts`` for ``c.max_minutes`` and write ``out`` (rnnlm.npz). Returns the figures."""
    torch.manual_seed(c.seed)
    start = time.perf_counter()
    words, sentences = read_text(texts, read_word_list(english) if english else None, c)
    stride = max(2, len(sentences) // max(c.valid_sentences, 1))
    held = set(range(stride - 1, len(sentences), stride)[:c.valid_sentences])
    valid = [s for i, s in enumerate(sentences) if i in held]
    train = [s for i, s in enumerate(sentences) if i not in held]
    index = {w: i for i, w in enumerate(words)}
    train_ids, valid_ids = _encode(train, index, c.max_words), _encode(valid, index, c.max_words)
    n_words = sum(len(t) + 1 for t in train_ids)
    unk = sum(int((t == 1).sum()) for t in train_ids) / max(n_words, 1)
    log(f"rnnlm: {len(train)} sentences, {n_words} words and sentence ends to train on, {len(valid)} held out; "
        f"vocabulary {len(words)} ({unk:.2%} of the words <unk>); read in {time.perf_counter() - start:.0f} s")
    cutoffs = tuple(k for k in c.cutoffs if k < len(words) - 1) or (max(1, len(words) // 2),)
    if cutoffs != c.cutoffs:  # a small text's vocabulary: clusters only where there are words for them
        c = dataclasses.replace(c, cutoffs=cutoffs)
    model = RNNLMModel(c, len(words))
    log(f"rnnlm: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    optimizer = torch.optim.Adam(model.parameters(), lr=c.lr)
    rng = np.random.default_rng(c.seed)
    t0 = time.perf_counter()
    seen, step, epoch = 0, 0, 0
    deadline = t0 + c.max_minutes * 60
    batches: list[list[int]] = []
    while time.perf_counter() < deadline and (c.max_steps is None or step < c.max_steps):
        if not batches:
            batches, epoch = _batches(train_ids, c.words_per_batch, rng), epoch + 1
        x, y, mask = _tensors(train_ids, batches.pop())
        for g in optimizer.param_groups:
            g["lr"] = learning_rate(c, step, (time.perf_counter() - t0) / 60)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features, _ = model(x, None)
        res = model.softmax(features.float()[mask], y[mask])
        optimizer.zero_grad()
        res.loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), c.clip_norm)
        optimizer.step()
        seen += int(mask.sum())
        step += 1
        if step % 500 == 0:
            minutes = (time.perf_counter() - t0) / 60
            log(f"rnnlm: step {step} (epoch {epoch}), {seen / 1e6:.2f} M words in {minutes:.1f} min "
                f"({seen / 60 / max(minutes, 1e-9):.0f} words/s), train perplexity {math.exp(res.loss.item()):.1f}")
    minutes = (time.perf_counter() - t0) / 60
    ppl = evaluate(model, valid_ids, c)
    figures = {"words_trained": seen, "steps": step, "minutes": round(minutes, 2), "valid_perplexity": round(ppl, 2),
               "vocabulary": len(words), "train_words": n_words}
    log(f"rnnlm: {seen / 1e6:.1f} M words ({seen / n_words:.2f} epochs) in {minutes:.1f} min; "
        f"held-out perplexity {ppl:.1f}")
    export(model, words, c, Path(out), {"trained": figures, "texts": [str(t) for t in texts]})
    return figures
