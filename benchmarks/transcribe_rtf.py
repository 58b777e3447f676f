"""Real-time factor of transcription: wall seconds / audio seconds, model loading excluded.

    python benchmarks/transcribe_rtf.py --manifest data/librispeech/dev.jsonl [--bundle DIR] [--threads 1]
        [--workers 0 2] [--decoders greedy shipped] [--head char|phone]
        [--beam-sizes 1000 2000] [--history-steps 0 300]

Times ``Transcriber.transcribe`` over the manifest's files (audio decoding, resampling,
MFCC, the RNN and the decoder included), once per setting and decoder, side by side: in
this process on each of --threads BLAS threads (--workers 0), and in each other number of
--workers processes (one thread each). Decoders:
``greedy`` is best-path decoding, ``shipped`` the shipped decoding (beam search with the
shipped lexicon and LM, and joint and RNN LM rescoring if they are on), ``shipped-without-rnnlm``
the same without the RNN LM's rescoring (what it costs), ``shipped-without-ensemble`` the
shipped decoding with the bundle's first model alone (what its other models cost). The WER of each run is printed
beside its speed. The head defaults to the shipped one.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from threadpoolctl import threadpool_limits

from asr.manifest import read_manifest
from asr.bundle import load_bundle
from asr.decode import DecodingConfig
from asr.metrics import wer
from asr.transcribe import Transcriber


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--bundle", help="bundle folder (default: the shipped one)")
    ap.add_argument("--head", choices=["char", "phone"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--workers", type=int, nargs="+", default=[0], help="0: in this process, with --threads")
    ap.add_argument("--decoders", nargs="+", choices=["greedy", "shipped", "shipped-without-rnnlm",
                                                          "shipped-without-ensemble"],
                    default=["greedy", "shipped"])
    ap.add_argument("--limit", type=int, default=None, help="first N utterances only")
    ap.add_argument("--beam-sizes", type=int, nargs="+", default=None,
                    help="the shipped decoding at each of these beam sizes (default: the shipped beam)")
    ap.add_argument("--history-steps", type=int, nargs="+", default=None,
                    help="the shipped decoding holding each of these many search steps (0: no limit; "
                         "default: the shipped setting)")
    args = ap.parse_args()
    utts = read_manifest(args.manifest)[: args.limit]
    paths = [u.audio for u in utts]
    ref = {u.audio: u.text for u in utts}
    bundle = load_bundle(args.bundle)
    shipped_head, shipped = bundle.head, bundle.decoding
    head = args.head or shipped_head
    print(f"shipped decoding: head={shipped_head} {shipped}")
    runs = []  # (label, decoding, bundle): each decoder, the shipped one at each beam size
    for name in args.decoders:
        models = bundle.with_options(ensemble="none") if name == "shipped-without-ensemble" else bundle
        if name == "greedy":
            runs.append((name, DecodingConfig(), models))
            continue
        base = dataclasses.replace(shipped, rescore=None) if name == "shipped-without-rnnlm" else shipped
        for beam in args.beam_sizes or [shipped.beam_size]:
            for history in args.history_steps or [shipped.history_steps]:
                label = name + "".join([f"(beam {beam})" if args.beam_sizes else "",
                                        f"(history {history})" if args.history_steps else ""])
                runs.append((label, dataclasses.replace(base, beam_size=beam, history_steps=history), models))
    settings = [(t, 0) for t in args.threads if 0 in args.workers] + [(1, w) for w in args.workers if w > 0]
    for threads, workers in settings:
        threadpool_limits(threads)
        for name, decoding, models in runs:
            t0 = time.perf_counter()
            transcriber = Transcriber(dataclasses.replace(models, head=head, decoding=decoding))
            load = time.perf_counter() - t0
            # The lexicon (shared by every Transcriber) memoises closest-pronunciation look-ups of
            # the greedy phone head: empty it, or a run would find the answers of the run before.
            transcriber.lexicon.clear_memo()
            start = time.perf_counter()
            results = list(transcriber.transcribe_files(paths, workers=workers))
            wall = time.perf_counter() - start
            audio = sum(t.duration for t in results)
            score = wer([ref[t.path] for t in results], [t.text for t in results])
            where = f"workers={workers}" if workers else f"threads={threads}"
            print(f"{where} head={head} decoder={name}: {len(paths)} files, {audio:.0f} s audio in "
                  f"{wall:.1f} s -> RTF {wall / audio:.4f} ({audio / wall:.0f}x real time), WER {score:.1%}; "
                  f"model+decoder load {load:.2f} s not counted")


if __name__ == "__main__":
    main()
