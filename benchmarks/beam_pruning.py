"""Beam-search pruning side by side: WER and search speed of the shipped decoding at other
beam thresholds and blank-skip settings, on the same model outputs, in one run.

    python benchmarks/beam_pruning.py --manifest data/librispeech/dev.jsonl --every 3 \
        --settings 1000:25:none 1000:12:0.95

A setting is BEAM_SIZE:BEAM_THRESHOLD:BLANK_SKIP ("none": every frame searched); the other
decoding weights are the shipped ones. The model runs once; each setting's search is timed
alone on one thread (search RTF = search seconds / audio seconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from asr.data import load_features, read_manifest
from asr.decode import forward_batches, make_beam_decoder, shipped_decoding, skip_blank_frames, text_of
from asr.metrics import wer
from asr.model import load_model
from asr.text import load_lexicon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--every", type=int, default=1, help="every N-th utterance only")
    ap.add_argument("--settings", nargs="+", default=["1000:25:none", "1000:12:0.95"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    utts = read_manifest(args.manifest)[:: args.every]
    audio = sum(u.duration for u in utts)
    head, shipped = shipped_decoding()
    model, lexicon = load_model(None), load_lexicon(None)
    outputs = list(forward_batches(model, load_features(utts, model.config.features, progress=False)))
    print(f"{len(utts)} utterances, {audio / 60:.0f} min; shipped: head={head} {shipped}")
    for setting in args.settings:
        beam_size, threshold, skip = setting.split(":")
        config = dataclasses.replace(shipped, beam_size=int(beam_size), beam_threshold=float(threshold),
                                     blank_skip=None if skip == "none" else float(skip))
        beam = make_beam_decoder(head, lexicon, config)
        hyps, frames, searched = [""] * len(utts), 0, 0
        start = time.perf_counter()
        for idx, out in outputs:
            for i, nbest in zip(idx, beam.search(out[head], out["lengths"], model.config.frame_seconds)):
                hyps[i] = text_of(nbest[0][0]) if nbest else ""
        seconds = time.perf_counter() - start
        for _, out in outputs:
            for b, n in enumerate(out["lengths"].tolist()):
                frames += n
                searched += len(skip_blank_frames(out[head][b, :n], config.blank_skip))
        print(f"beam {beam_size:>5s} threshold {threshold:>4s} blank-skip {skip:>4s}: WER "
              f"{wer([u.text for u in utts], hyps):.2%}, search RTF {seconds / audio:.4f}, "
              f"frames searched {searched / frames:.0%}")


if __name__ == "__main__":
    main()
