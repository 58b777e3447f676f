"""How long `asr transcribe --out` takes to stop on Ctrl-C, and that a rerun loses nothing.

    python benchmarks/interrupt.py --manifest data/librispeech/dev.jsonl [--files 120] [--after 4 8] [--runs 3]

Starts `asr transcribe FILES --out DIR` in a process group of its own, sends SIGINT to the
whole group after each of ``--after`` seconds (as a terminal's Ctrl-C does), and prints the
seconds from the signal to the exit, the exit status and the records on disk; then reruns the
same command and checks that every file has exactly one record.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asr.manifest import read_manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--after", type=float, nargs="+", default=[4.0, 8.0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    paths = [u.audio for u in read_manifest(args.manifest)[: args.files]]
    for after in args.after:
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "out"
                command = [sys.executable, "-m", "asr.cli", "transcribe", *paths, "--out", str(out), "--quiet"]
                proc = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
                time.sleep(after)
                start = time.perf_counter()
                os.killpg(proc.pid, signal.SIGINT)
                code = proc.wait()
                stopped = time.perf_counter() - start
                results = out / "results.jsonl"
                before = len(results.read_text().splitlines()) if results.is_file() else 0
                subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
                records = [json.loads(line)["path"] for line in results.read_text().splitlines()]
                ok = sorted(records) == sorted(paths)
                print(f"SIGINT after {after:g} s: exit {code} in {stopped:.2f} s with {before} record(s); "
                      f"the rerun: {len(records)} records, {'each file once' if ok else 'NOT each file once'}",
                      flush=True)


if __name__ == "__main__":
    main()
