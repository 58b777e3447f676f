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
import json
import platform
import time

import torch

from asr.data import bucket_batches, load_features, read_manifest
from asr.model import AcousticModel
from asr.train import TrainConfig, make_examples, train_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--max-batches", type=int, default=None, help="time only this many batches, extrapolate")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (JSON values)")
    args = ap.parse_args()
    overrides = {key: json.loads(value) for key, _, value in (item.partition("=") for item in args.set)}
    config = TrainConfig.load(args.config, overrides)
    utts = read_manifest(config.train_manifest)
    feats = load_features(utts, config.model.features, f"{config.out_dir}/cache/train_feats.pt", config.feature_workers)
    examples, _ = make_examples(utts, feats, config)
    total_audio = sum(e.utt.duration for e in examples)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {len(examples)} utterances, "
          f"{total_audio / 3600:.2f} h, model {config.model}")
    for threads, precision in [(t, p) for t in args.threads for p in args.precision]:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        run = dataclasses.replace(config, precision=precision)
        model = AcousticModel(config.model).train()
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
        batches = bucket_batches([e.utt.duration for e in examples], config.batch_seconds, shuffle=True, seed=1)
        if args.max_batches:
            batches = batches[: args.max_batches]
        audio, start = 0.0, time.perf_counter()
        for idx in batches:
            batch = [examples[i] for i in idx]
            train_step(model, opt, batch, run, torch.device("cpu"))
            audio += sum(e.utt.duration for e in batch)
        wall = time.perf_counter() - start
        epoch = wall * total_audio / audio
        print(f"threads={threads} {precision}: {len(batches)} batches, {audio:.0f} s audio in {wall:.1f} s -> "
              f"epoch {epoch:.1f} s{' (extrapolated)' if args.max_batches else ''}, {audio / wall:.1f} audio s/s")


if __name__ == "__main__":
    main()
