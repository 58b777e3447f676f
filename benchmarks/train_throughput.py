"""Training throughput of a config's model: audio seconds trained per wall second on one device.

    python benchmarks/train_throughput.py recipes/librispeech/conf/train-clean-100.toml \\
        --manifest data/librispeech/train-clean-5.jsonl --cache exp/librispeech/train-clean-5/cache/train_feats.pt \\
        --precision fp32 bf16 --steps 200

The model, batch size (``batch_seconds``), optimizer and losses are the config's; the audio is
real train-clean-5 features (``--manifest`` and its feature ``--cache``), replicated as often
as ``--steps`` batches need. Each precision runs ``--warmup`` untimed steps, then ``--steps``
timed ones (CUDA synchronised), side by side in one run. Prints audio s/s and the projected
time of one epoch of 100 h and 960 h at that rate (before data loading and dev scoring).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import torch

from asr.data import bucket_batches, read_manifest
from asr.model import AcousticModel
from asr.train import TrainConfig, make_examples, train_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--manifest", required=True, help="manifest whose features are in --cache")
    ap.add_argument("--cache", required=True, help="feature cache written by training (train_feats.pt)")
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's)")
    args = ap.parse_args()
    config = TrainConfig.load(args.config)
    torch.set_num_threads(args.threads or config.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    saved = torch.load(args.cache, weights_only=True)
    examples, _ = make_examples(read_manifest(args.manifest), saved["features"], config)
    durations = [e.utt.duration for e in examples]
    batches: list[list[int]] = []
    seed = 0
    while len(batches) < args.warmup + args.steps:  # replicate the set (fresh shuffles) until there are enough batches
        batches += bucket_batches(durations, config.batch_seconds, shuffle=True, seed=seed)
        seed += 1
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)"
    print(f"{name}, torch {torch.__version__}; {args.config}: model {config.model}, batch_seconds "
          f"{config.batch_seconds}; audio: {len(examples)} utterances of {args.manifest}, replicated")
    for precision in args.precision:
        torch.manual_seed(0)
        run = dataclasses.replace(config, precision=precision)
        model = AcousticModel(config.model).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        audio, start = 0.0, 0.0
        for n, idx in enumerate(batches[: args.warmup + args.steps]):
            if n == args.warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
            batch = [examples[i] for i in idx]
            train_step(model, opt, batch, run, device)
            if n >= args.warmup:
                audio += sum(e.utt.duration for e in batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
        rate = audio / wall
        peak = f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.type == "cuda" else ""
        print(f"{precision}: {args.steps} steps, {audio:.0f} s audio in {wall:.1f} s -> {rate:.0f} audio s/s; "
              f"epoch of 100 h {100 * 3600 / rate / 60:.1f} min, 960 h {960 * 3600 / rate / 60:.1f} min{peak}")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)


if __name__ == "__main__":
    main()
