"""Whole-command speed and memory of `asr transcribe` on many files, this checkout beside another.

    python benchmarks/batch_command.py --manifest data/librispeech/dev.jsonl --files 150 \
        [--checkout ../asr-before] [--runs 3] [--transcribe-args "--workers 2"]

Runs `python -m asr.cli transcribe FILES... --out DIR` (every file of the first ``--files`` of
the manifest, default workers: one per core) from this checkout and, with ``--checkout``, from
another one (its own code and shipped bundle), taking turns run by run so that the machine's
noise falls on both alike. Prints each run's wall time from start to exit (loading included),
its real-time factor (wall / audio seconds), and the peak memory of the process tree (PSS
summed over the processes, sampled every 0.1 s; see long_audio_memory.py), then the medians.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from long_audio_memory import tree_pss_kb

from asr.manifest import read_manifest


def run(command: list[str], cwd: str | None) -> tuple[float, float]:
    """Wall seconds and peak tree PSS (MB) of one command."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_pss_kb(proc.pid))
            time.sleep(0.1)
        wall = time.perf_counter() - start
        if proc.returncode:
            err.seek(0)
            sys.exit(f"{' '.join(command[:4])}... in {cwd or '.'}: exit {proc.returncode}\n{err.read()[-2000:]}")
    return wall, peak / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--files", type=int, default=150)
    ap.add_argument("--checkout", help="another checkout of asr, run beside this one")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--transcribe-args", default="", help="more `asr transcribe` options, one string")
    args = ap.parse_args()
    utts = read_manifest(args.manifest)[: args.files]
    audio = sum(u.duration for u in utts)
    here = str(Path(__file__).resolve().parent.parent)
    checkouts = {"this checkout": here} | ({f"checkout {args.checkout}": str(Path(args.checkout).resolve())}
                                           if args.checkout else {})
    print(f"{len(utts)} files, {audio / 60:.1f} min of audio; {os.cpu_count()} cores; "
          f"asr transcribe FILES --out DIR {args.transcribe_args}".rstrip())
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.runs):
            for name, cwd in checkouts.items():
                out = Path(tmp) / f"{k}-{len(results[name])}-{abs(hash(name))}"
                command = [sys.executable, "-m", "asr.cli", "transcribe", *[u.audio for u in utts], "--quiet",
                           "--out", str(out), *shlex.split(args.transcribe_args)]
                wall, peak = run(command, cwd)
                results[name].append((wall, peak))
                print(f"run {k + 1} {name}: wall {wall:.1f} s, RTF {wall / audio:.4f}, peak {peak:.0f} MB", flush=True)
    for name, rs in results.items():
        walls, peaks = [w for w, _ in rs], [p for _, p in rs]
        print(f"{name:40s} median RTF {statistics.median(walls) / audio:.4f} (fastest {min(walls) / audio:.4f}), "
              f"median peak {statistics.median(peaks):.0f} MB")


if __name__ == "__main__":
    main()
