"""Train variants of a recipe config side by side for a fixed number of epochs and tabulate dev scores.

    python benchmarks/lever_sweep.py recipes/librispeech/conf/train-clean-5.toml --epochs 12 \\
        --out exp/sweep --cache exp/librispeech/train-clean-5/cache --jobs 4 \\
        --variant base --variant wide:model.hidden=768 --variant irnn:model.nonlinearity=relu,model.identity_init=true

Each variant is ``NAME[:KEY=VALUE,...]`` (the keys of ``asr train --set``) and runs as its own
``python -m asr train`` process under ``OUT/NAME`` with the features of ``--cache`` (its
``train_feats*.pt`` and ``dev_feats.pt``, linked, not recomputed); at speed 1.0 only unless
``--set speed_perturb=[0.9,1.0,1.1]`` (whose features the cache must hold); ``--jobs`` of them at once
(a GPU runs several small RNNs concurrently; on a CPU keep ``--jobs 1`` and measure apart).
Prints one row per variant: parameters, epochs done, minutes, the best dev PER and the CER of
the same epoch, from each run's ``log.csv``. Comparing at equal epochs is a fixed-update
comparison: convert to this machine's minutes with benchmarks/train_epoch.py.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def parse_variant(spec: str) -> tuple[str, list[str]]:
    name, _, sets = spec.partition(":")
    return name, [s for s in sets.split(",") if s]


def run_variant(config: str, name: str, sets: list[str], args: argparse.Namespace) -> tuple[str, float, int]:
    out = args.out / name
    (out / "cache").mkdir(parents=True, exist_ok=True)
    for f in sorted(args.cache.glob("*_feats*.pt")):  # speed 1.0, dev, and any speed-perturbed copies
        link = out / "cache" / f.name
        if not link.exists():
            link.symlink_to(f.resolve())
    sets = [f"out_dir={out}", f"epochs={args.epochs}", "speed_perturb=[1.0]", f"threads={args.threads}",
            "average_last=0", *args.set, *sets]
    cmd = [sys.executable, "-m", "asr", "train", config] + [a for s in sets for a in ("--set", s)]
    t0 = time.perf_counter()
    with open(out / "sweep.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TQDM_DISABLE": "1"})
    return name, (time.perf_counter() - t0) / 60, rc


def summarize(out: Path, name: str, sets: list[str], minutes: float, rc: int) -> str:
    """One table row from ``out/name/log.csv`` (minutes: the run's wall time, or the log's with --report)."""
    rows = list(csv.DictReader(open(out / name / "log.csv"))) if (out / name / "log.csv").is_file() else []
    epochs = len(rows)
    rows = [r for r in rows if r.get("dev_per")]  # epochs that scored dev (see dev_every)
    if not rows:
        return f"| {name} | {' '.join(sets) or '(config)'} | - | 0 | {minutes:.1f} | - | - | - | failed (rc {rc}) |"
    best = min(rows, key=lambda r: float(r["dev_per"]))
    curve = " ".join(f"{100 * float(r['dev_per']):.1f}" for r in rows)
    if minutes != minutes:  # --report: the log's own clock
        minutes = float(rows[-1]["elapsed_minutes"])
    params = next((line.split("model: ")[1].split(" M")[0] for line in open(out / name / "train.log")
                   if "model: " in line), "?")
    return (f"| {name} | {' '.join(sets) or '(config)'} | {params} | {epochs} | {minutes:.1f} | "
            f"{100 * float(best['dev_per']):.1f} (ep {best['epoch']}) | {100 * float(best['dev_cer']):.1f} | "
            f"{curve} | {'ok' if rc == 0 else f'rc {rc}'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--variant", action="append", required=True, help="NAME[:KEY=VALUE,...]")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True, help="folder with train_feats.pt and dev_feats.pt")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every variant")
    ap.add_argument("--report", action="store_true", help="only print the table of the runs already under --out")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    if args.report:
        done = [(name, float("nan"), 0) for name, _ in variants]
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            done = list(pool.map(lambda v: run_variant(args.config, v[0], v[1], args), variants))
    print(f"{args.config}, {args.epochs} epochs, overrides {' '.join(args.set) or '(none)'}")
    print("| variant | overrides | M params | epochs | minutes | best dev PER % | its CER % | PER % by epoch | status |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, sets), (_, minutes, rc) in zip(variants, done):
        print(summarize(args.out, name, sets, minutes, rc))


if __name__ == "__main__":
    main()
