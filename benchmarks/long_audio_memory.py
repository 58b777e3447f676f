"""Peak memory and speed transcribing one long recording (default: one hour).

    python benchmarks/long_audio_memory.py --manifest data/librispeech/dev.jsonl --minutes 60 [--workers N]
        [--transcribe-args "--beam-size 1000"] [--checkout ../asr-before]

Builds a FLAC file of the given length by joining the manifest's utterances (with 0.5 s
of silence between them, whole utterances only, silence after the last), then runs `asr
transcribe` on it in a child process (with its default worker processes, one per core, unless
--workers) and prints the peak memory of the whole process tree: the sum of its processes'
proportional set sizes (PSS, pages shared between the forked workers counted once), sampled
every 0.1 s, and the peak resident set of the main process (ru_maxrss), with the real-time
factor and the word error rate against the joined transcripts. ``--runs N`` transcribes the
same file N times: the peak moves by tens of MB from run to run, with when the workers' peaks
happen to coincide. ``--checkout DIR`` runs another checkout of asr (its code and shipped
bundle) on the same file too, taking turns with this one run by run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.manifest import read_manifest
from asr.features import load_audio
from asr.metrics import wer


def tree_pss_kb(root: int) -> int:
    """Summed PSS (kB) of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:  # the process ended meanwhile
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--workers", type=int, help="asr transcribe --workers (default: its own, one per core)")
    ap.add_argument("--transcribe-args", default="",
                    help="more `asr transcribe` options, one string (e.g. \"--beam-size 1000 --lm other.arpa.gz\")")
    ap.add_argument("--runs", type=int, default=1, help="transcribe the file this many times (default 1)")
    ap.add_argument("--checkout", help="another checkout of asr to run beside this one")
    args = ap.parse_args()
    target = int(args.minutes * 60 * 16000)
    gap = np.zeros(8000, np.float32)  # 0.5 s at 16 kHz
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.flac"
        refs: list[str] = []
        with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
            written = 0
            for u in itertools.cycle(read_manifest(args.manifest)):  # the manifest again and again
                wav = np.concatenate([load_audio(u.audio), gap])
                if written + len(wav) > target:
                    break
                f.write(wav)
                written += len(wav)
                refs.append(u.text)
            f.write(np.zeros(target - written, np.float32))  # silence to the length asked for
            written = target
        command = [sys.executable, "-m", "asr.cli", "transcribe", str(path), "--quiet"]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        command += shlex.split(args.transcribe_args)
        here = str(Path(__file__).resolve().parent.parent)
        for _, cwd in itertools.product(range(args.runs), [here] + ([args.checkout] if args.checkout else [])):
            start = time.perf_counter()
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
                proc = subprocess.Popen(command, stdout=out, stderr=err, cwd=cwd,
                                        env={**os.environ, "OMP_NUM_THREADS": "1"})
                peak_pss, status, usage = 0, 0, None
                while usage is None:  # wait4: this child's own peak RSS, not the largest of all runs so far
                    pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        usage = rusage
                        break
                    peak_pss = max(peak_pss, tree_pss_kb(proc.pid))
                    time.sleep(0.1)
                proc.returncode = os.waitstatus_to_exitcode(status)
                wall = time.perf_counter() - start
                out.seek(0), err.seek(0)
                if proc.returncode:
                    sys.exit(err.read())
                hyp = out.read()
            max_rss = usage.ru_maxrss / 1024  # the asr process itself (its workers are its children)
            print(f"{'this checkout' if cwd == here else cwd}: "
                  f"{written / 16000 / 60:.1f} min recording, workers: {args.workers if args.workers is not None else 'default'}"
                  f"{' ' + args.transcribe_args if args.transcribe_args else ''}: {len(hyp.split())} words, "
                  f"WER {100 * wer([' '.join(refs)], [' '.join(hyp.split())]):.2f} %, "
                  f"peak memory {peak_pss / 1024:.0f} MB (PSS summed over the process tree), "
                  f"main process {max_rss:.0f} MB RSS, wall {wall:.1f} s (model load included), "
                  f"RTF {wall / (written / 16000):.4f}", flush=True)


if __name__ == "__main__":
    main()
