"""One training epoch as 1 process and as N DistributedDataParallel ranks (torchrun), side by side.

    python benchmarks/train_ranks.py recipes/librispeech/conf/train-clean-5.toml --ranks 1 2 \\
        --threads 2 --set train_manifest=data/librispeech/train-300.jsonl dev_manifest=null

Each run trains ``--epochs`` epochs (default 1) of the config under ``--out/ranks-N`` with the
same global batches; ``--threads`` CPU threads are split evenly between the ranks (2 cores: one
process on 2 threads against 2 ranks on 1 thread each). Features are computed before the
clock starts (the first run caches them; the others link that cache). Prints the training
seconds and audio seconds per second from each run's log.csv.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=2, help="CPU threads in all, split between the ranks")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("exp/bench-ranks"))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, as asr train --set")
    args = ap.parse_args()
    rows = []
    for n in args.ranks:
        out = args.out / f"ranks-{n}"
        first = args.out / f"ranks-{args.ranks[0]}" / "cache"
        if n != args.ranks[0] and first.is_dir() and not (out / "cache").exists():
            out.mkdir(parents=True, exist_ok=True)
            (out / "cache").symlink_to(first.resolve())
        sets = [f"out_dir={out}", f"epochs={args.epochs}", f"threads={max(1, args.threads // n)}", "average_last=0",
                *args.set]
        launcher = [sys.executable, "-m", "asr"] if n == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "asr"]
        cmd = [*launcher, "train", args.config, "--quiet"] + [a for s in sets for a in ("--set", s)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        log = list(csv.DictReader(open(out / "log.csv")))
        rows.append((n, sum(float(r["train_seconds"]) for r in log), float(log[-1]["audio_seconds_per_second"]),
                     float(log[-1]["loss"])))
    print(f"{args.config} {' '.join(args.set)}: {args.epochs} epoch(s), {args.threads} threads in all")
    for n, seconds, rate, loss in rows:
        print(f"{n} rank(s) x {max(1, args.threads // n)} thread(s): {seconds:.1f} s training, {rate:.1f} audio s/s, "
              f"loss {loss:.3f} ({rows[0][1] / max(seconds, 0.1):.2f}x the speed of the first)")


if __name__ == "__main__":
    main()
