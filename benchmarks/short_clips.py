"""Short clips: words heard on their own, cut from dev (a command, a name, a digit said alone).

    python benchmarks/short_clips.py --manifest data/librispeech/dev.jsonl [--bundle DIR ...]
        [--crops exp/short-clips/dev] [--workers 2]

The clips are word crops of the dev utterances (:mod:`asr.crops`: one span of 1-3 consecutive
words from each utterance, cut at the midpoints of the gaps to the words around it), aligned by the
shipped bundle's model and written once under ``--crops`` (every bundle hears the same clips).
Each bundle (default: the shipped one) transcribes them with its own decoding and greedily; prints
WER, clips wrong, clips with no words at all, and the clips' length.
"""

import argparse
import os
import time

import asr
from asr.crops import CropConfig, make_crops
from asr.manifest import read_manifest
from asr.metrics import wer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--bundle", action="append", help="bundle folder(s) (default: the shipped one)")
    ap.add_argument("--crops", default="exp/short-clips/dev", help="folder of the clips (made once, then reused)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    crops = make_crops(asr.load(), read_manifest(args.manifest), args.crops, CropConfig(per_utterance=1, seed=1),
                       log=lambda m: None)
    seconds = sum(c.duration for c in crops)
    words = sum(len(c.text.split()) for c in crops)
    print(f"{len(crops)} clips of {args.manifest} ({words} words, {seconds / 60:.1f} min, "
          f"{seconds / len(crops):.2f} s each on average), aligned by the shipped model, in {args.crops}")
    print("\n| bundle | decoding | WER | clips wrong | clips with no words | wall (s) |\n|---|---|---|---|---|---|")
    refs = [c.text for c in crops]
    for bundle in args.bundle or [None]:
        for decoding, options in (("its own", {}), ("greedy", {"decoder": "greedy"})):
            start = time.perf_counter()
            rec = asr.load(bundle, **options)
            hyps = [t.text for t in rec.transcribe_files([c.audio for c in crops], workers=args.workers, in_order=True)]
            print(f"| {bundle or 'shipped'} | {decoding} | {100 * wer(refs, hyps):.2f} % | "
                  f"{sum(h != r for h, r in zip(hyps, refs))}/{len(refs)} | {sum(not h for h in hyps)} | "
                  f"{time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
