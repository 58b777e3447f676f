"""Dropout on the CPU: ``nn.Dropout`` against ``asr.model.Dropout``, side by side in one run.

    python benchmarks/dropout.py --threads 2 --shape 20 417 1024
    python benchmarks/dropout.py --train-config recipes/librispeech/conf/train-clean-5.toml --batches 8

The first times one dropout call (forward + backward) on a tensor; the default shape is one
between-layer activation of the shipped model in a 240 s training batch (20 utterances x 417 steps
of 30 ms x 2 x 512 units), and it prints the share of elements kept (which should be 1 - p for
both). The second times whole training steps of a config (forward, CTC, backward, AdamW) on real
cached features, alternating the two dropouts on the same batches and the same model (which one
goes first alternates too: ``benchmarks/steps.py``), so that a noisy machine slows both alike.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from asr.model import Dropout
from steps import alternate, load_examples, training_batches


def time_calls(shape: list[int], p: float, repeats: int) -> None:
    x = torch.randn(*shape, requires_grad=True)
    grad = torch.ones(*shape)
    times = {}
    for name, module in (("nn.Dropout", nn.Dropout(p)), ("asr.model.Dropout", Dropout(p))):
        module.train()
        for _ in range(2):  # warm-up
            module(x).backward(grad)
        start = time.perf_counter()
        for _ in range(repeats):
            y = module(x)
            y.backward(grad)
        times[name] = (time.perf_counter() - start) / repeats * 1000
        kept = (y != 0).float().mean().item()
        print(f"{name:18s} forward+backward {times[name]:7.1f} ms, kept {kept:.4f} (1 - p = {1 - p:.4f})")
    print(f"speed-up: {times['nn.Dropout'] / times['asr.model.Dropout']:.2f}x")


def use(dropout: nn.Module):
    """A variant setup: the model's dropout becomes ``dropout``."""
    return lambda model: setattr(model, "dropout", dropout)


def time_training_steps(config_path: str, n_batches: int) -> None:
    config, examples = load_examples(config_path)
    batches = training_batches(config, examples)[: n_batches + 1]
    audio = sum(e.utt.duration for b in batches[1:] for e in b)
    dropouts = {"nn.Dropout": nn.Dropout(config.model.dropout), "asr.model.Dropout": Dropout(config.model.dropout)}
    seconds = alternate(config, batches, {name: use(d) for name, d in dropouts.items()})
    print(f"{config_path}: {n_batches} batches ({audio:.0f} s of audio), precision {config.precision}, "
          f"model {config.model.layers} x {config.model.hidden}, dropout {config.model.dropout}")
    for name, s in seconds.items():
        print(f"{name:18s} {s:6.1f} s, {audio / s:5.1f} audio s/s")
    print(f"training steps: {seconds['nn.Dropout'] / seconds['asr.model.Dropout']:.2f}x faster with asr.model.Dropout")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", type=int, nargs="+", default=[20, 417, 1024])
    ap.add_argument("--p", type=float, default=0.15)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--train-config", help="also time training steps of this config (its feature cache must exist)")
    ap.add_argument("--batches", type=int, default=8, help="training batches timed with each dropout")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    print(f"one call, shape {tuple(args.shape)}, p {args.p}:")
    time_calls(args.shape, args.p, args.repeats)
    if args.train_config:
        time_training_steps(args.train_config, args.batches)


if __name__ == "__main__":
    main()
