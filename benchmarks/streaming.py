"""Streaming recognition on dev: WER against offline, latency, revisions, real-time factor.

    python benchmarks/streaming.py --manifest data/librispeech/dev.jsonl [--limit N] \
        [--settings 0.48:0.24 0.24:0.12] [--decoders beam greedy] [--threads 1]
    python benchmarks/streaming.py --limit 40 --concurrent 8 12 16   # streams at once, in real time
    python benchmarks/streaming.py --long 60                         # memory over an hour-long stream
    python benchmarks/streaming.py --bundle DIR --offline-bundle default  # another model against the shipped offline
    python benchmarks/streaming.py --manifest data/librispeech/dev-8k.jsonl --rate 8000  # 8 kHz recordings

Each utterance is one stream fed 100 ms chunks as fast as the recognizer takes them, then 2 s
of quiet noise (-60 dBFS), so that its endpoint rather than the end of the audio ends it. A
chunk "arrives" when its last sample would have been spoken; a word's latency is the arrival of
the chunk after which it first shows in a partial result (same word within 0.3 s), plus the
time that chunk took: what a stream paced in real time would show, as long as the
recognizer keeps up (RTF < 1). The final latency runs from the last word's end to the final
result. Revisions: the share of words shown in a partial that the final result does not have.
For each decoder the offline WER of the same utterances (``Transcriber.transcribe``) is printed beside.
``--rate``: the rate the audio is read at and fed in (chunks of 100 ms of it), as a client of
recordings made at that rate sends them: at 8000 a bundle's narrow-band model hears the streams
(and the offline side), as it hears 8 kHz files.

``--concurrent N``: N streams at once, split over ``--processes`` processes of one thread each,
each fed a 100 ms chunk every 100 ms of a real-time clock (dev utterances one after another);
the largest lag of a chunk's processing behind its arrival says whether they keep up.

``--long MINUTES``: one stream of that much audio (the utterances one after another, with 1 s of
quiet noise between them, over again as needed), fed 100 ms chunks as fast as it takes them; the
process's resident memory (RSS, /proc/self/status) is printed every 5 minutes of audio, to show
that it stays flat however long the stream.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asr  # noqa: E402
from asr.features import load_audio as _load_audio  # noqa: E402
from asr.manifest import read_manifest  # noqa: E402
from asr.metrics import wer  # noqa: E402

CHUNK = 1600  # 100 ms at 16 kHz
TAIL_SECONDS = 2.0


def load_audio(path, rate: int = 16000):
    """The audio at ``rate`` Hz as a torch tensor: this benchmark mixes and corrupts it with torch (asr.augment)."""
    return torch.from_numpy(_load_audio(path, rate))


def run_stream(recognizer, wav: torch.Tensor, config: dict, rate: int = 16000) -> dict:
    """One stream of ``wav`` (samples at ``rate`` Hz), fed 100 ms chunks."""
    stream = recognizer.stream(**config)
    tail = 1e-3 * torch.randn(int(rate * TAIL_SECONDS), generator=torch.Generator().manual_seed(0))
    audio = torch.cat([wav, tail])
    chunk = rate // 10  # 100 ms
    first_seen: list[tuple[str, float, float]] = []  # (word, start, when shown)
    finals, compute = [], 0.0
    for i in range(0, len(audio), chunk):
        t0 = time.perf_counter()
        stream.accept(audio[i:i + chunk], rate)
        words = stream.partial_words
        got = []
        while (seg := stream.result()) is not None:
            got.append(seg)
        spent = time.perf_counter() - t0
        compute += spent
        arrival = min(i + chunk, len(audio)) / rate + spent
        for w in words:
            if not any(x == w.word and abs(s - w.start) <= 0.3 for x, s, _ in first_seen):
                first_seen.append((w.word, w.start, arrival))
        finals += [(seg, arrival) for seg in got]
    t0 = time.perf_counter()
    rest = stream.finish()
    spent = time.perf_counter() - t0
    compute += spent
    finals += [(seg, len(audio) / rate + spent) for seg in rest]
    latencies, final_latencies = [], []
    final_words = []
    for seg, when in finals:
        for w in seg.words:
            shown = [t for x, s, t in first_seen if x == w.word and abs(s - w.start) <= 0.3]
            latencies.append(min(shown + [when]) - w.end)
            final_words.append(w)
        if seg.words:
            final_latencies.append(when - seg.words[-1].end)
    revised = sum(1 for x, s, _ in first_seen if not any(w.word == x and abs(w.start - s) <= 0.3 for w in final_words))
    return {"text": " ".join(seg.text for seg, _ in finals), "latencies": latencies, "final": final_latencies,
            "shown": len(first_seen), "revised": revised, "compute": compute, "seconds": len(audio) / rate}


def _paced_worker(args) -> float:
    """``n`` streams through one recognizer on one core, fed 100 ms chunks in step with a real-time
    clock for ``seconds``; returns the largest lag (s) of a chunk's result behind its arrival."""
    bundle, wavs, n, seconds = args
    torch.set_num_threads(1)
    threadpool_limits(1)  # the runtime's numpy: one BLAS thread, one core a process
    rec = asr.load(bundle)
    streams = [rec.stream() for _ in range(n)]
    audio = [torch.cat([wavs[(k + i) % len(wavs)] for i in range(len(wavs))]) for k in range(n)]
    start, lag = time.perf_counter(), 0.0
    for tick in range(int(seconds * 10)):
        due = start + (tick + 1) * 0.1  # the chunk's last sample has been spoken
        time.sleep(max(0.0, due - time.perf_counter()))
        for s, a in zip(streams, audio):
            s.accept(a[tick * CHUNK:(tick + 1) * CHUNK])
            while s.result() is not None:
                pass
        lag = max(lag, time.perf_counter() - due)
    return lag


def concurrency(bundle: str, wavs: list, counts: list[int], seconds: float, processes: int) -> None:
    """Streams in real time: ``count`` streams over ``processes`` processes (one core each)."""
    import multiprocessing

    for count in counts:
        shares = [count // processes + (i < count % processes) for i in range(processes)]
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            lags = pool.map(_paced_worker, [(bundle, wavs, n, seconds) for n in shares if n])
        print(f"{count} concurrent streams in {processes} processes, {seconds:.0f} s of real time: "
              f"largest lag {max(lags):.2f} s ({'keeps up' if max(lags) < 0.5 else 'falls behind'})", flush=True)


def rss_mb() -> float:
    """This process's resident memory now, MB (Linux)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def long_stream(bundle: str, wavs: list, minutes: float) -> None:
    """One stream of ``minutes`` of audio: RSS every 5 minutes of it, and the words it gave."""
    rec = asr.load(bundle)
    stream = rec.stream()
    gap = 1e-3 * torch.randn(16000, generator=torch.Generator().manual_seed(0))  # 1 s of -60 dBFS noise
    fed, report, segments, words, i = 0, 0.0, 0, 0, 0
    t0 = time.perf_counter()
    print(f"one stream of {minutes:g} min: dev utterances one after another with 1 s gaps; bundle {bundle}; "
          f"RSS before any audio {rss_mb():.0f} MB", flush=True)
    while fed < minutes * 60 * 16000:
        audio = torch.cat([wavs[i % len(wavs)], gap])
        i += 1
        for k in range(0, len(audio), CHUNK):
            stream.accept(audio[k:k + CHUNK])
            while (seg := stream.result()) is not None:
                segments, words = segments + 1, words + len(seg.words)
        fed += len(audio)
        if fed / 16000 / 60 >= report + 5:
            report += 5
            print(f"{report:5.0f} min of audio: RSS {rss_mb():.0f} MB, {segments} final results, {words} words, "
                  f"RTF so far {(time.perf_counter() - t0) / (fed / 16000):.4f}", flush=True)
    rest = stream.finish()
    print(f"finished: {segments + len(rest)} final results, {words + sum(len(s.words) for s in rest)} words, "
          f"RSS {rss_mb():.0f} MB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", default="data/librispeech/dev.jsonl")
    ap.add_argument("--bundle", default="streaming")
    ap.add_argument("--limit", type=int, default=0, help="N utterances evenly spaced through the manifest (0: all)")
    ap.add_argument("--settings", nargs="+", default=[None], metavar="CHUNK:RIGHT",
                    help="model chunk and right context, seconds (default: the bundle's)")
    ap.add_argument("--decoders", nargs="+", default=["beam", "greedy"], choices=["beam", "greedy"])
    ap.add_argument("--prior-frames", type=float, nargs="+", default=[None], help="running-CMVN prior weights to try")
    ap.add_argument("--endpoint-silence", type=float, nargs="+", default=[None],
                    help="trailing non-speech (s) that ends an utterance, values to try")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rate", type=int, default=16000, help="the rate the audio was recorded at, read and fed in at")
    ap.add_argument("--concurrent", type=int, nargs="+", default=[],
                    help="instead: run this many streams at once in real time over --processes processes")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60.0, help="real time each concurrency run lasts")
    ap.add_argument("--long", type=float, default=0.0, metavar="MINUTES",
                    help="instead: one stream of this many minutes of audio, its memory every 5 minutes")
    ap.add_argument("--offline-bundle", default=None,
                    help="the WER ratio's offline side: this bundle's offline WER (default: --bundle's own)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # recognition runs on numpy: its BLAS threads are the ones that count
    utts = read_manifest(args.manifest)  # its audio paths as the manifest means them (relative to it)
    if args.limit and args.limit < len(utts):  # evenly spaced: every speaker, not the first one's
        utts = [utts[i * len(utts) // args.limit] for i in range(args.limit)]
    if args.rate != 16000 and (args.long or args.concurrent):
        raise SystemExit("--rate is for the WER and latency runs, not --long or --concurrent")
    wavs = [load_audio(u.audio, args.rate) for u in utts]
    if args.long:
        long_stream(args.bundle, wavs, args.long)
        return
    if args.concurrent:
        print(f"{len(utts)} utterances, one after another in each stream (each starts at another); bundle {args.bundle}")
        concurrency(args.bundle, wavs, args.concurrent, args.seconds, args.processes)
        return
    refs = [u.text for u in utts]
    audio = sum(len(w) for w in wavs) / args.rate
    print(f"{args.manifest}: {len(utts)} utterances, {audio / 60:.1f} min at {args.rate} Hz; bundle {args.bundle}; "
          f"{args.threads} thread(s); chunks of 100 ms, then {TAIL_SECONDS} s of -60 dBFS noise")
    for decoder in args.decoders:
        rec = asr.load(args.bundle, decoder=decoder) if decoder == "greedy" else asr.load(args.bundle)
        t0 = time.perf_counter()
        offline = [rec.transcribe(w.numpy(), sample_rate=args.rate).text for w in wavs]
        offline_rtf = (time.perf_counter() - t0) / audio
        print(f"{decoder}: offline WER {wer(refs, offline):.2%} (RTF {offline_rtf:.4f})", flush=True)
        if args.offline_bundle:
            other = asr.load(args.offline_bundle, decoder=decoder) if decoder == "greedy" else asr.load(args.offline_bundle)
            offline = [other.transcribe(w.numpy(), sample_rate=args.rate).text for w in wavs]
            print(f"{decoder}: offline WER of {args.offline_bundle} {wer(refs, offline):.2%} (the ratios' offline side)",
                  flush=True)
        for setting in args.settings:
            chunk, right = (float(x) for x in setting.split(":")) if setting else (None, None)
            for prior, silence in [(p, e) for p in args.prior_frames for e in args.endpoint_silence]:
                config = ({"chunk": chunk, "right_context": right} if setting else {}) \
                    | ({"prior_frames": prior} if prior is not None else {}) \
                    | ({"endpoint_silence": silence} if silence is not None else {})
                runs = [run_stream(rec, w, config, args.rate) for w in wavs]
                lat = [x for r in runs for x in r["latencies"]]
                fin = [x for r in runs for x in r["final"]]
                streaming = wer(refs, [r["text"] for r in runs])
                shown, revised = sum(r["shown"] for r in runs), sum(r["revised"] for r in runs)
                rtf = sum(r["compute"] for r in runs) / sum(r["seconds"] for r in runs)
                used = rec.stream(**config).config
                print(f"{decoder} chunk {used.chunk:.2f} s right {used.right_context:.2f} s prior {used.prior_frames:g} "
                      f"endpoint {used.endpoint_silence:g} s: WER {streaming:.2%} ({streaming / max(wer(refs, offline), 1e-9):.3f} x offline); "
                      f"word latency median {statistics.median(lat):.2f} s (p90 {sorted(lat)[int(0.9 * len(lat))]:.2f}); "
                      f"final median {statistics.median(fin):.2f} s (p90 {sorted(fin)[int(0.9 * len(fin))]:.2f}); "
                      f"revised {revised}/{shown} shown words ({revised / max(shown, 1):.1%}); RTF {rtf:.4f} "
                      f"(~{int(args.threads / rtf) if args.threads == 1 else '?'} streams a core)", flush=True)


if __name__ == "__main__":
    main()
