"""Dropout on the CPU: ``nn.Dropout`` against ``asr.model.Dropout``, forward + backward, side by side.

    python benchmarks/dropout.py --threads 2 --shape 20 417 1024

The default shape is one between-layer activation of the shipped model in a 240 s training batch
(20 utterances x 417 steps of 30 ms x 2 x 512 units). Prints milliseconds per call and the share
of elements kept (which should be 1 - p for both).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from asr.model import Dropout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", type=int, nargs="+", default=[20, 417, 1024])
    ap.add_argument("--p", type=float, default=0.15)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(*args.shape, requires_grad=True)
    grad = torch.ones(*args.shape)
    print(f"torch {torch.__version__}, {args.threads} thread(s), shape {tuple(args.shape)}, p {args.p}")
    times = {}
    for name, module in (("nn.Dropout", nn.Dropout(args.p)), ("asr.model.Dropout", Dropout(args.p))):
        module.train()
        for _ in range(2):  # warm-up
            module(x).backward(grad)
        start = time.perf_counter()
        for _ in range(args.repeats):
            y = module(x)
            y.backward(grad)
        times[name] = (time.perf_counter() - start) / args.repeats * 1000
        kept = (y != 0).float().mean().item()
        print(f"{name:18s} forward+backward {times[name]:7.1f} ms, kept {kept:.4f} (1 - p = {1 - args.p:.4f})")
    print(f"speed-up: {times['nn.Dropout'] / times['asr.model.Dropout']:.2f}x")


if __name__ == "__main__":
    main()
