"""Training throughput of a config's model: audio seconds trained per wall second on one device.

    python benchmarks/train_throughput.py recipes/librispeech/conf/train-clean-100.toml \\
        --manifest data/librispeech/train-clean-5.jsonl --cache exp/librispeech/train-clean-5/cache/train_feats.pt \\
        --precision fp32 bf16 --steps 200 [--batch-seconds 1200 2400] [--profile 10] [--set KEY=VALUE ...]

The model, batch size (``batch_seconds``), optimizer and losses are the config's (``--set``
overrides entries as `asr train --set` does); the audio is real train-clean-5 features
(``--manifest`` and its feature ``--cache``), replicated as often as the batches need. Each
precision (and each of ``--batch-seconds``, default the config's) runs ``--warmup`` untimed
steps, then timed ones (CUDA synchronised), side by side in one run: ``--steps`` at the
config's batch size, proportionally fewer or more (at least 10) at the others, so that each
variant trains on about the same audio. Prints audio s/s and the projected time of one epoch of 100 h and 960 h
at that rate (before data loading and dev scoring). ``--profile N`` then profiles N more steps
of each variant: the operators with the most device time, and the device's busy share of the
wall time (the rest it waits for the host: launches, syncs, Python).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import torch

from asr.manifest import read_manifest
from asr.plan import bucket_batches
from asr.model import AcousticModel
from asr.train import TrainConfig, make_examples, parse_overrides, train_step


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
    ap.add_argument("--batch-seconds", type=float, nargs="+", default=None,
                    help="global batch sizes to compare (default: the config's batch_seconds)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="profile N more steps of each variant")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (JSON values)")
    args = ap.parse_args()
    config = TrainConfig.load(args.config, parse_overrides(args.set))
    torch.set_num_threads(args.threads or config.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    saved = torch.load(args.cache, weights_only=True)
    examples, _ = make_examples(read_manifest(args.manifest), saved["features"], config)
    durations = [e.utt.duration for e in examples]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)"
    print(f"{name}, torch {torch.__version__}; {args.config}: model {config.model}, batch_seconds "
          f"{config.batch_seconds}; audio: {len(examples)} utterances of {args.manifest}, replicated", flush=True)
    for batch_seconds in args.batch_seconds or [config.batch_seconds]:
        steps = max(10, round(args.steps * config.batch_seconds / batch_seconds))
        needed = args.warmup + steps + args.profile
        batches: list[list[int]] = []
        seed = 0
        while len(batches) < needed:  # replicate the set (fresh shuffles) until there are enough batches
            batches += bucket_batches(durations, batch_seconds, shuffle=True, seed=seed)
            seed += 1
        for precision in args.precision:
            run = dataclasses.replace(config, precision=precision, batch_seconds=batch_seconds)
            torch.manual_seed(0)
            model = AcousticModel(config.model).to(device).train()
            opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
            for idx in batches[: args.warmup]:
                train_step(model, opt, [examples[i] for i in idx], run, device)
            _sync(device)
            start, audio = time.perf_counter(), 0.0
            for idx in batches[args.warmup : args.warmup + steps]:
                batch = [examples[i] for i in idx]
                train_step(model, opt, batch, run, device)
                audio += sum(e.utt.duration for e in batch)
            _sync(device)
            rate = audio / (time.perf_counter() - start)
            peak = f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.type == "cuda" else ""
            print(f"{precision}, {batch_seconds:g} s batches: {steps} steps, {audio:.0f} s audio in {audio / rate:.1f} s -> "
                  f"{rate:.0f} audio s/s; epoch of 100 h {100 * 3600 / rate:.0f} s, 960 h {960 * 3600 / rate / 60:.1f} min{peak}",
                  flush=True)
            if args.profile:
                _profile(model, opt, [[examples[i] for i in idx] for idx in batches[args.warmup + steps : needed]], run, device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _profile(model: AcousticModel, opt: torch.optim.Optimizer, batches: list, run: TrainConfig, device: torch.device) -> None:
    """Profile training steps on ``batches``: the top operators by device (else CPU) time and the device's busy share."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for batch in batches:
            train_step(model, opt, batch, run, device)
        _sync(device)
    wall = time.perf_counter() - start
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = prof.key_averages()
    print(events.table(sort_by=key, row_limit=15, max_name_column_width=60))
    if device.type == "cuda":  # kernels' summed time, an upper bound on busy time where kernels overlap
        busy = sum(e.self_device_time_total for e in events) / 1e6
        print(f"profile: {len(batches)} steps in {wall:.2f} s (under the profiler); device busy {busy:.2f} s, "
              f"{100 * busy / wall:.0f} % of the wall time", flush=True)

if __name__ == "__main__":
    main()
