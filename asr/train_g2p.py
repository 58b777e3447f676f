"""Training the G2P model (:mod:`asr.g2p`) on a lexicon: `asr g2p train`.

Every word's first pronunciation is a training pair, but for every ``held_out``-th word, which
is kept aside to measure the phone error rate (PER) of pronunciations of words the model never
saw. Batches of words of one length, Adam with a one-cycle schedule, CTC loss, bf16 autocast
where the CPU has it; the model after the last epoch is exported as arrays for :class:`asr.g2p.G2P`.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .g2p import LETTERS, OUTPUTS, G2P, G2PConfig, encode
from .metrics import word_errors
from .text import Lexicon


@dataclass(frozen=True)
class G2PTraining:
    """How the G2P model is trained (and which words it is tested on)."""

    model: G2PConfig = G2PConfig()
    epochs: int = 12
    batch_words: int = 256
    lr: float = 2e-3
    held_out: int = 50  # every 50th word of the lexicon is held out for the PER
    seed: int = 0


class G2PNet(nn.Module):
    def __init__(self, c: G2PConfig):
        super().__init__()
        self.embedding = nn.Embedding(len(LETTERS), c.embedding, padding_idx=0)
        self.rnn = nn.RNN(c.embedding, c.hidden, c.layers, nonlinearity="tanh", batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * c.hidden, len(OUTPUTS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` letter indices of words of one length (no padding) -> ``(B, T, 40)`` log-probabilities."""
        h, _ = self.rnn(self.embedding(x))
        return self.out(h).log_softmax(-1)


def split(lexicon: Lexicon, held_out: int) -> tuple[list[tuple[str, tuple[str, ...]]], list[tuple[str, tuple[str, ...]]]]:
    """(training pairs, held-out pairs): each word with its first pronunciation."""
    pairs = [(w, prons[0]) for w, prons in lexicon.prons.items() if w and prons and prons[0]]
    return ([p for i, p in enumerate(pairs) if i % held_out != held_out - 1],
            [p for i, p in enumerate(pairs) if i % held_out == held_out - 1])


def phone_error_rate(g2p: G2P, pairs: list[tuple[str, tuple[str, ...]]]) -> float:
    """PER of ``g2p``'s pronunciations against the lexicon's (edit distance over phones)."""
    hyps = []
    for i in range(0, len(pairs), 512):
        hyps += g2p.pronounce([w for w, _ in pairs[i:i + 512]])
    return word_errors([" ".join(p) for _, p in pairs], [" ".join(h) for h in hyps]).rate


def export(net: G2PNet, config: G2PConfig) -> G2P:
    return G2P(config, {k: v.detach().float().cpu().numpy() for k, v in net.state_dict().items()})


def train_g2p(lexicon_path: str | Path, out: str | Path, training: G2PTraining = G2PTraining(), log=print) -> float:
    """Train on ``lexicon_path``, write ``out`` (g2p.npz); returns the held-out PER."""
    torch.manual_seed(training.seed)
    rng = random.Random(training.seed)
    lexicon = Lexicon.load(lexicon_path)
    train, test = split(lexicon, training.held_out)
    phone_index = {p: i for i, p in enumerate(OUTPUTS)}
    c = training.model
    # CTC needs a step per phone and one between repeats: a word too short for its pronunciation is left out
    usable = [(w, p) for w, p in train
              if len(w) * c.repeat >= len(p) + sum(a == b for a, b in zip(p, p[1:]))]
    log(f"g2p: {len(usable)} training words ({len(train) - len(usable)} too short for their phones), "
        f"{len(test)} held out")
    net = G2PNet(c)
    optimizer = torch.optim.Adam(net.parameters(), lr=training.lr)

    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    bf16 = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported") \
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    # batches of words of one length: no padding, so that the backward direction starts at each
    # word's last letter, as the numpy model reads a word alone
    by_length: dict[int, list[int]] = {}
    for i, (w, _) in enumerate(usable):
        by_length.setdefault(len(w), []).append(i)
    batches = [same[k:k + training.batch_words] for same in by_length.values()
               for k in range(0, len(same), training.batch_words)]
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, training.lr, total_steps=training.epochs * len(batches),
                                                   pct_start=0.1)
    for epoch in range(1, training.epochs + 1):
        rng.shuffle(batches)
        start, total = time.perf_counter(), 0.0
        net.train()
        for batch in batches:
            words = [usable[i][0] for i in batch]
            x, lengths = encode(words, c.repeat)
            targets = [torch.tensor([phone_index[p] for p in usable[i][1]]) for i in batch]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                log_probs = net(torch.from_numpy(x))
            loss = ctc(log_probs.float().transpose(0, 1), torch.cat(targets), torch.from_numpy(lengths),
                       torch.tensor([len(t) for t in targets]))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        per = phone_error_rate(export(net.eval(), c), test[:500])
        log(f"g2p epoch {epoch}: loss {total / len(usable):.3f}, held-out PER (500 words) {100 * per:.2f} %, "
            f"{time.perf_counter() - start:.0f} s")
    g2p = export(net.eval(), c)
    per = phone_error_rate(g2p, test)
    g2p.save(out)
    log(f"g2p: {out}: held-out PER {100 * per:.2f} % on {len(test)} words the model never saw")
    return per


__all__ = ["G2PNet", "G2PTraining", "dataclasses", "export", "phone_error_rate", "split", "train_g2p"]
