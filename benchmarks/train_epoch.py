"""Time one training epoch (forward, both CTC losses, backward, AdamW step) over a manifest.

    python benchmarks/train_epoch.py recipes/librispeech/conf/train-clean-5.toml --threads 1 2 --precision fp32 bf16

Features are extracted (or read from the cache) before the clock starts, as in training.
Prints seconds per epoch (of the unperturbed manifest) and audio seconds processed per wall
second for each thread count and precision, side by side in one run; ``--set`` overrides
config entries as `asr train --set` does (``--set model.hidden=384 batch_seconds=480``).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import torch

from asr.model import AcousticModel
from asr.train import parse_overrides, train_step
from steps import load_examples, training_batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--max-batches", type=int, default=None, help="time only this many batches, extrapolate")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (JSON values)")
    args = ap.parse_args()
    config, examples = load_examples(args.config, parse_overrides(args.set))
    total_audio = sum(e.utt.duration for e in examples)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {len(examples)} utterances, "
          f"{total_audio / 3600:.2f} h, model {config.model}")
    for threads, precision in [(t, p) for t in args.threads for p in args.precision]:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        run = dataclasses.replace(config, precision=precision)
        model = AcousticModel(config.model).train()
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
        batches = training_batches(config, examples)
        if args.max_batches:
            batches = batches[: args.max_batches]
        audio, start = 0.0, time.perf_counter()
        for batch in batches:
            train_step(model, opt, batch, run, torch.device("cpu"))
            audio += sum(e.utt.duration for e in batch)
        wall = time.perf_counter() - start
        epoch = wall * total_audio / audio
        print(f"threads={threads} {precision}: {len(batches)} batches, {audio:.0f} s audio in {wall:.1f} s -> "
              f"epoch {epoch:.1f} s{' (extrapolated)' if args.max_batches else ''}, {audio / wall:.1f} audio s/s")


if __name__ == "__main__":
    main()
