"""Batch against one-by-one transcription, and against PocketSphinx, on the same files.

    python benchmarks/batch_transcribe.py --manifest data/librispeech/dev.jsonl --limit 200 --out exp/bench/batch

Prints the real-time factor (wall seconds / audio seconds; model loading excluded) of
  0. `asr transcribe FILE` run once per file (a shell loop; --cli-files of them, scaled to all),
  1. our model, one file per call in one process (batch of one, no worker processes),
  2. our model in batch (length-sorted batches, audio loaded in --workers processes),
  3. PocketSphinx 5.1.1 with its bundled en-us model (pip install pocketsphinx==5.1.1),
and writes both systems' results plus a side-by-side report (asr report) under --out.
All on --threads torch threads; PocketSphinx is single-threaded. Our runs decode as
`asr transcribe` does by default (--decoder shipped: the shipped head, beam search, lexicon
and LM) or greedily (--decoder greedy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from asr.data import read_manifest
from asr.decode import DecodingConfig, shipped_decoding
from asr.features import load_audio
from asr.report import write_report
from asr.transcribe import Transcriber


def pocketsphinx_transcribe(paths: list[str]) -> tuple[list[str], float]:
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16000, loglevel="FATAL")
    hyps, start = [], time.perf_counter()
    for p in paths:
        pcm = (np.clip(load_audio(p).numpy(), -1, 1) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        hyps.append(hyp.hypstr.lower() if hyp is not None else "")
    return hyps, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--limit", type=int, default=200, help="first N utterances (PocketSphinx is slow)")
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default="exp/bench/batch")
    ap.add_argument("--no-pocketsphinx", action="store_true")
    ap.add_argument("--cli-files", type=int, default=10, help="files timed for the one-process-per-file loop")
    ap.add_argument("--decoder", choices=["shipped", "greedy"], default="shipped")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    utts = read_manifest(args.manifest)[: args.limit]
    paths = [u.audio for u in utts]
    audio = sum(u.duration for u in utts)
    head, decoding = shipped_decoding()
    if args.decoder == "greedy":
        decoding = DecodingConfig()
    transcriber = Transcriber(args.model, head=head, decoding=decoding)
    print(f"decoding: head={head} {decoding}")
    list(transcriber.transcribe(paths[:2]))  # warm-up: first-call allocations, lexicon load

    # The lexicon memoises closest-pronunciation look-ups (greedy phone head): start each
    # timed run with an empty memo, or the second run would find the first one's answers.
    transcriber.lexicon.clear_memo()
    start = time.perf_counter()
    for p in paths:
        list(transcriber.transcribe([p]))
    one_by_one = time.perf_counter() - start

    transcriber.lexicon.clear_memo()
    start = time.perf_counter()
    results = {t.path: t for t in transcriber.transcribe(paths, workers=args.workers)}
    batch = time.perf_counter() - start

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    for p in paths[: args.cli_files]:
        subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", p, "--decoder", decoding.decoder]
                       + (["--model", args.model] if args.model else []),
                       check=True, capture_output=True, env=env)
    cli_loop = (time.perf_counter() - start) * len(paths) / min(len(paths), args.cli_files)

    print(f"{len(paths)} files, {audio / 60:.1f} min of audio, {args.threads} thread(s)")
    print(f"asr per process:  RTF {cli_loop / audio:.4f}  (one `asr transcribe FILE` per file, "
          f"{args.cli_files} timed and scaled, model loading included)")
    print(f"asr one by one:   RTF {one_by_one / audio:.4f}  ({one_by_one:.1f} s)")
    print(f"asr batch:        RTF {batch / audio:.4f}  ({batch:.1f} s, {args.workers} loader process(es)); "
          f"{one_by_one / batch:.1f}x faster than one by one in one process, "
          f"{cli_loop / batch:.1f}x faster than one process per file")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    systems = {"asr": [{"id": u.id, "ref": u.text, "hyp": results[u.audio].text, "duration": u.duration,
                        "speaker": u.speaker} for u in utts]}
    if not args.no_pocketsphinx:
        hyps, ps = pocketsphinx_transcribe(paths)
        print(f"pocketsphinx:     RTF {ps / audio:.4f}  ({ps:.1f} s); asr batch RTF is {ps / batch:.1f}x lower")
        systems["pocketsphinx"] = [{"id": u.id, "ref": u.text, "hyp": h, "duration": u.duration, "speaker": u.speaker}
                                   for u, h in zip(utts, hyps)]
    for name, records in systems.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = write_report(out / "report", systems)
    for name, s in summary.get("systems", {"asr": summary}).items():
        print(f"{name:17s} WER {s['wer']:.2%}  CER {s['cer']:.2%}")
    print(f"report: {out / 'report' / 'report.html'}")


if __name__ == "__main__":
    main()
