"""Real-time factor of transcription: wall seconds / audio seconds, model loading excluded.

    python benchmarks/transcribe_rtf.py --manifest data/librispeech/dev.jsonl [--model PATH] [--threads 1]

Times ``Transcriber.transcribe`` over the manifest's files (audio decoding, resampling,
MFCC, the RNN and greedy decoding included), once per thread count.
"""

from __future__ import annotations

import argparse
import time

import torch

from asr.data import read_manifest
from asr.transcribe import Transcriber


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--model")
    ap.add_argument("--head", default="char")
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--limit", type=int, default=None, help="first N utterances only")
    args = ap.parse_args()
    paths = [u.audio for u in read_manifest(args.manifest)][: args.limit]
    for threads in args.threads:
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        transcriber = Transcriber(args.model, head=args.head)
        load = time.perf_counter() - t0
        start = time.perf_counter()
        audio = sum(t.duration for t in transcriber.transcribe(paths))
        wall = time.perf_counter() - start
        print(f"threads={threads} head={args.head}: {len(paths)} files, {audio:.0f} s audio in {wall:.1f} s -> "
              f"RTF {wall / audio:.4f} ({audio / wall:.0f}x real time); model load {load:.2f} s not counted")


if __name__ == "__main__":
    main()
