"""Accuracy and speed against PocketSphinx on all of a manifest: same files, same cores, one run.

    python benchmarks/against_pocketsphinx.py --manifest data/librispeech/dev.jsonl --out exp/bench/vs-pocketsphinx

Both systems decode every file of the manifest with their shipped defaults: ours with
`asr transcribe`'s default (the shipped head, beam search, lexicon and LM, in --cores worker
processes), PocketSphinx 5.1.1 with its bundled en-us model (pip install pocketsphinx==5.1.1)
in --cores processes, the files split between them by duration. Prints each system's WER,
CER, substitutions/deletions/insertions and RTF (wall seconds / audio seconds, model loading
excluded), and writes both systems' results and a side-by-side report (`asr report`) under --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from asr.manifest import read_manifest
import asr
from asr.report import comparison_text, write_report
from asr.transcribe import default_workers
from batch_transcribe import pocketsphinx_parallel, pocketsphinx_transcribe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--bundle", help="bundle folder (default: the shipped one)")
    ap.add_argument("--cores", type=int, default=default_workers(), help="cores to use (default: all usable)")
    ap.add_argument("--out", default="exp/bench/vs-pocketsphinx")
    args = ap.parse_args()
    utts = read_manifest(args.manifest)
    paths = [u.audio for u in utts]
    audio = sum(u.duration for u in utts)
    transcriber = asr.load(args.bundle)
    print(f"{len(paths)} files, {audio / 3600:.2f} h of audio, {args.cores} core(s); ours: head={transcriber.head} "
          f"{transcriber.decoding}")

    threadpool_limits(1)
    start = time.perf_counter()
    ours = {t.path: t for t in transcriber.transcribe_files(paths, workers=args.cores)}
    rtf = {"asr": (time.perf_counter() - start) / audio}
    if args.cores > 1:
        hyps, seconds = pocketsphinx_parallel(paths, [u.duration for u in utts], args.cores)
    else:
        hyps, seconds = pocketsphinx_transcribe(paths)
    rtf["pocketsphinx"] = seconds / audio

    failed = [t for t in ours.values() if t.error]
    assert not failed, failed[:3]
    systems = {
        "asr": [{"id": u.id, "ref": u.text, "hyp": ours[u.audio].text, "duration": u.duration, "speaker": u.speaker}
                for u in utts],
        "pocketsphinx": [{"id": u.id, "ref": u.text, "hyp": h, "duration": u.duration, "speaker": u.speaker}
                         for u, h in zip(utts, hyps)],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, records in systems.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = write_report(out / "report", systems)
    for name, s in summary["systems"].items():
        print(f"{name:13s} WER {s['wer']:.2%}  CER {s['cer']:.2%}  (sub {s['substitutions']}, del {s['deletions']}, "
              f"ins {s['insertions']} of {s['reference_words']} words)  RTF {rtf[name]:.4f} on {args.cores} core(s)")
    for name, c in summary["comparisons"].items():  # pocketsphinx against asr, the first system
        print(comparison_text(name, c))
    print(f"report: {out / 'report' / 'report.html'}")


if __name__ == "__main__":
    main()
