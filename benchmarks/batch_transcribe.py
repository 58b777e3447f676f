"""Batch against one-by-one transcription, and against PocketSphinx, on the same files and cores.

    python benchmarks/batch_transcribe.py --manifest data/librispeech/dev.jsonl --limit 60 --out exp/bench/batch

Prints the real-time factor (wall seconds / audio seconds; model loading excluded) of
  - `asr transcribe FILE` run once per file (a shell loop; --cli-files of them, scaled to all),
  - our model, one file per call in one process (no worker processes), on 1 and on --cores
    BLAS threads (the better of the two is the one-by-one baseline),
  - our model in batch (`Transcriber.transcribe_files(paths, workers=N)`: length-sorted batches, each
    read, featurised, recognised and searched in one of N worker processes) on 1 and --cores workers,
  - PocketSphinx 5.1.1 with its bundled en-us model (pip install pocketsphinx==5.1.1), in 1 and in
    --cores processes (the files split between them by duration; each process's decoding time
    counted, its model loading not),
and writes both systems' results plus a side-by-side report (asr report) under --out.
Our runs decode as `asr transcribe` does by default (--decoder shipped: the shipped head, beam
search, lexicon and LM) or greedily (--decoder greedy).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from asr.manifest import read_manifest
import asr
from asr.features import load_audio
from asr.metrics import wer
from asr.report import write_report
from asr.transcribe import default_workers


def pocketsphinx_pcm(path: str) -> bytes:
    """16 kHz 16-bit mono PCM of ``path`` for PocketSphinx: a file already in that form as it is
    (no round trip through floats), anything else as asr reads it."""
    import soundfile as sf

    info = sf.info(path)
    if (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"):
        return sf.read(path, dtype="int16")[0].tobytes()
    return (np.clip(load_audio(path), -1, 1) * 32767).astype("<i2").tobytes()


def pocketsphinx_transcribe(sources: list, **options) -> tuple[list[str], float]:
    """PocketSphinx's hypotheses for ``sources`` (paths, or 16 kHz samples) and the seconds spent
    decoding them (model load excluded); ``options`` go to its ``Decoder`` (e.g. ``jsgf=``)."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16000, loglevel="FATAL", **options)
    hyps, start = [], time.perf_counter()
    for p in sources:
        pcm = pocketsphinx_pcm(p) if isinstance(p, str) else (np.clip(p, -1, 1) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        hyps.append(hyp.hypstr.lower() if hyp is not None else "")
    return hyps, time.perf_counter() - start


def pocketsphinx_parallel(paths: list[str], durations: list[float], processes: int) -> tuple[list[str], float]:
    """PocketSphinx in ``processes`` processes, each given an equal share of the audio; the wall
    time is the longest share's decoding time."""
    shares: list[list[int]] = [[] for _ in range(processes)]
    load = [0.0] * processes
    for i in sorted(range(len(paths)), key=lambda i: -durations[i]):  # longest first, to the least loaded
        k = load.index(min(load))
        shares[k].append(i)
        load[k] += durations[i]
    # one BLAS thread in each forked worker: one core each
    with multiprocessing.get_context("fork").Pool(processes, initializer=threadpool_limits,
                                                 initargs=(1,)) as pool:
        runs = pool.map(pocketsphinx_transcribe, [[paths[i] for i in share] for share in shares])
    hyps = [""] * len(paths)
    for share, (share_hyps, _) in zip(shares, runs):
        for i, h in zip(share, share_hyps):
            hyps[i] = h
    return hyps, max(seconds for _, seconds in runs)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--limit", type=int, default=200, help="first N utterances (PocketSphinx is slow)")
    ap.add_argument("--bundle", help="bundle folder (default: the shipped one)")
    ap.add_argument("--cores", type=int, default=default_workers(), help="cores to use (default: all usable)")
    ap.add_argument("--out", default="exp/bench/batch")
    ap.add_argument("--no-pocketsphinx", action="store_true")
    ap.add_argument("--cli-files", type=int, default=10, help="files timed for the one-process-per-file loop")
    ap.add_argument("--decoder", choices=["shipped", "greedy"], default="shipped")
    args = ap.parse_args()
    utts = read_manifest(args.manifest)[: args.limit]
    paths = [u.audio for u in utts]
    audio = sum(u.duration for u in utts)
    transcriber = asr.load(args.bundle, **({"decoder": "greedy"} if args.decoder == "greedy" else {}))
    decoding = transcriber.decoding
    print(f"decoding: head={transcriber.head} {decoding}")
    print(f"{len(paths)} files, {audio / 60:.1f} min of audio, {args.cores} core(s)")
    list(transcriber.transcribe_files(paths[:2]))  # warm-up: first-call allocations, lexicon load

    def one_by_one():
        for p in paths:
            list(transcriber.transcribe_files([p], workers=0))

    rtf = {}
    for threads in sorted({1, args.cores}):
        threadpool_limits(threads)
        # The lexicon memoises closest-pronunciation look-ups (greedy phone head): start each
        # timed run with an empty memo, or a run would find the answers of the one before.
        transcriber.lexicon.clear_memo()
        rtf[f"one by one, {threads} thread(s)"] = timed(one_by_one) / audio
    threadpool_limits(1)
    results = {}
    for workers in sorted({1, args.cores}):
        transcriber.lexicon.clear_memo()
        seconds = timed(lambda: results.update((t.path, t) for t in transcriber.transcribe_files(paths, workers=workers)))
        rtf[f"batch, {workers} worker process(es)"] = seconds / audio

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = timed(lambda: [subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", p, "--decoder", decoding.decoder]
                                        + (["--bundle", args.bundle] if args.bundle else []),
                                        check=True, capture_output=True, env=env)
                         for p in paths[: args.cli_files]])
    rtf["one `asr transcribe FILE` process per file"] = cli * len(paths) / min(len(paths), args.cli_files) / audio

    systems = {"asr": [{"id": u.id, "ref": u.text, "hyp": results[u.audio].text, "duration": u.duration,
                        "speaker": u.speaker} for u in utts]}
    if not args.no_pocketsphinx:
        hyps, seconds = pocketsphinx_transcribe(paths)
        rtf["pocketsphinx, 1 process"] = seconds / audio
        if args.cores > 1:
            parallel_hyps, seconds = pocketsphinx_parallel(paths, [u.duration for u in utts], args.cores)
            rtf[f"pocketsphinx, {args.cores} processes"] = seconds / audio
            # PocketSphinx carries its cepstral mean from one utterance to the next, so its words
            # depend a little on which files a process saw before: say how much.
            print(f"pocketsphinx WER, 1 process {wer([u.text for u in utts], hyps):.2%}, {args.cores} processes "
                  f"{wer([u.text for u in utts], parallel_hyps):.2%} (the report uses the first)")
        systems["pocketsphinx"] = [{"id": u.id, "ref": u.text, "hyp": h, "duration": u.duration, "speaker": u.speaker}
                                   for u, h in zip(utts, hyps)]
    for name, value in rtf.items():
        print(f"{name:45s} RTF {value:.4f}")
    sys.stdout.flush()
    baseline = min(v for k, v in rtf.items() if k.startswith("one by one"))
    for cores in sorted({1, args.cores}):
        batch = rtf[f"batch, {cores} worker process(es)"]
        line = f"batch on {cores} core(s): {baseline / batch:.1f}x faster than one by one in one process"
        line += f", {rtf['one `asr transcribe FILE` process per file'] / batch:.0f}x faster than a process per file"
        ps = rtf.get("pocketsphinx, 1 process" if cores == 1 else f"pocketsphinx, {cores} processes")
        if ps is not None:
            line += f"; RTF {ps / batch:.1f}x lower than PocketSphinx on as many cores"
        print(line)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, records in systems.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = write_report(out / "report", systems)
    for name, s in summary.get("systems", {"asr": summary}).items():
        print(f"{name:17s} WER {s['wer']:.2%}  CER {s['cer']:.2%}")
    print(f"report: {out / 'report' / 'report.html'}")


if __name__ == "__main__":
    main()
