"""Peak memory and speed transcribing one long recording (default: one hour).

    python benchmarks/long_audio_memory.py --manifest data/librispeech/dev.jsonl --minutes 60

Builds a FLAC file of the given length by joining the manifest's utterances (with 0.5 s
of silence between them), then runs `asr transcribe` on it in a child process and prints
that process's peak resident memory (ru_maxrss) and real-time factor.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.data import read_manifest
from asr.features import load_audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    target = int(args.minutes * 60 * 16000)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.flac"
        with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
            written, utts = 0, read_manifest(args.manifest)
            while written < target:
                for u in utts:
                    wav = np.concatenate([load_audio(u.audio).numpy(), np.zeros(8000, np.float32)])[: target - written]
                    f.write(wav)
                    written += len(wav)
                    if written >= target:
                        break
        env_threads = {"OMP_NUM_THREADS": str(args.threads)}
        import os

        start = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", str(path), "--quiet"],
                           capture_output=True, text=True, env={**os.environ, **env_threads})
        wall = time.perf_counter() - start
        if r.returncode:
            sys.exit(r.stderr)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        words = len(r.stdout.split())
        print(f"{written / 16000 / 60:.1f} min recording: {words} words, peak RSS {peak_mb:.0f} MB, "
              f"wall {wall:.1f} s (model load included), RTF {wall / (written / 16000):.4f}")


if __name__ == "__main__":
    main()
