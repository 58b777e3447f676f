"""Peak RAM of the training data path when features are read from shards, simulated at 960 h.

    python benchmarks/shard_memory.py recipes/librispeech/conf/train-960.toml \\
        --manifest data/librispeech/train-clean-5.jsonl --shards exp/shards/speed1.0 --hours 960 --batches 200

The shards of a real manifest (written first if missing, as `asr features` does) get their
index entries replicated until they describe ``--hours`` of audio; the training examples
(targets, durations) of all those entries are built as training builds them, and ``--batches``
global batches of the config's ``batch_seconds`` are read through the DataLoader with the
config's ``data_workers``, as the training loop reads them. Prints the peak resident memory
(PSS) of this process plus its workers (sampled after every batch), against what the same features
would take cached in RAM (float16).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from asr.data import BucketingSampler, FeatureShards, ShardedFeature, write_feature_shards
from asr.manifest import read_manifest
from asr.train import TrainConfig, _batch_examples, _collate, _ExampleSet, make_examples


def tree_rss_bytes() -> int:
    """Proportional resident memory (PSS: shared pages split between their sharers, so the forked
    workers' copy-on-write pages count once) of this process and its children, from /proc."""
    pids, total = [Path("/proc/self").resolve().name], 0
    for task in Path("/proc/self/task").iterdir():
        pids += (task / "children").read_text().split()
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("Pss:"))) * 1024
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--manifest", required=True, help="real utterances whose shards are replicated")
    ap.add_argument("--shards", required=True, type=Path, help="their shard folder (written if missing)")
    ap.add_argument("--hours", type=float, default=960.0)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None, help="feature workers if the shards must be written")
    args = ap.parse_args()
    config = TrainConfig.load(args.config)
    utts = read_manifest(args.manifest)
    write_feature_shards(utts, config.model.features, args.shards, args.workers or config.feature_workers)
    shards = FeatureShards(args.shards, utts, config.model.features)
    hours = sum(u.duration for u in utts) / 3600
    copies = max(1, round(args.hours / hours))
    shards.index = shards.index * copies  # the simulation: the same rows stand for other utterances
    all_utts = [dataclasses.replace(u, id=f"{c}-{u.id}") for c in range(copies) for u in utts]
    rss0 = tree_rss_bytes()
    examples, _ = make_examples(all_utts, [ShardedFeature(shards, i) for i in range(len(all_utts))], config)
    rss_examples = tree_rss_bytes()
    sampler = BucketingSampler([e.utt.duration for e in examples], config.batch_seconds, seed=config.seed)
    loader = torch.utils.data.DataLoader(_ExampleSet(examples), batch_sampler=sampler, collate_fn=_collate,
                                         num_workers=config.data_workers)
    peak, audio, frames, start = 0, 0.0, 0, time.perf_counter()
    for n, collated in enumerate(loader):
        batch = _batch_examples(examples, collated)
        audio += sum(e.utt.duration for e in batch)
        frames += sum(e.feats.shape[0] for e in batch)
        peak = max(peak, tree_rss_bytes())
        if n + 1 == args.batches:
            break
    wall = time.perf_counter() - start
    total_frames = sum(r["frames"] for r in shards.index)
    gib = 2 ** 30
    print(f"{args.config}: {len(examples)} utterances = {copies} copies of {args.manifest} ({hours:.2f} h) = "
          f"{hours * copies:.0f} h; batch_seconds {config.batch_seconds:g}, data_workers {config.data_workers}")
    print(f"PSS before the examples {rss0 / gib:.2f} GiB; with {len(examples)} examples (targets, durations) "
          f"{rss_examples / gib:.2f} GiB")
    print(f"read {args.batches} batches ({audio / 3600:.1f} h of audio, {frames} frames) in {wall:.1f} s: "
          f"peak PSS (process + workers) {peak / gib:.2f} GiB")
    print(f"the same features cached in RAM as float16: {total_frames * shards.dim * 2 / gib:.1f} GiB")


if __name__ == "__main__":
    main()
