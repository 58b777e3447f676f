"""What a floor on calibrated word confidences does: dev WER, and the words left from audio without speech.

    python benchmarks/confidence_floor.py --results recipes/librispeech/results/dev-phone-beam-lm-joint/results.jsonl \
        [--floors 0 0.02 0.05 0.1] [--bundle DIR] [--seeds 11]

Dev WER at each floor is computed from an `asr evaluate` run's results (each hypothesis word
with its calibrated confidence): a word below the floor is left out, as the decoding's
``confidence_floor`` leaves it out (its confidence does not depend on the words left out after
it). Then 30 s of each kind of generated non-speech (asr.calibrate.synthetic_audio: noise,
tones, chirps, clicks, hum, silence), at full and at a low level, go through the bundle's
decoding without a floor, and the words at or above each floor are counted. With several
``--seeds`` each kind is generated once per seed and the counts are summed: a floor meant to
leave nothing of noise has to hold for noise it was not chosen on.
"""

from __future__ import annotations

import argparse
import json

import asr
from asr.calibrate import SYNTHETIC_KINDS, synthetic_audio
from asr.metrics import wer

NON_SPEECH = [(kind, level) for kind in SYNTHETIC_KINDS for level in (1.0, 0.05)]  # each at full and a low level


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="an `asr evaluate` results.jsonl (with confidences)")
    ap.add_argument("--floors", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1, 0.2])
    ap.add_argument("--bundle", help="bundle folder (default: the shipped one)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[11], help="the generated audio's seeds (one clip each)")
    args = ap.parse_args()
    with open(args.results, encoding="utf-8") as f:
        records = [r for r in map(json.loads, f) if not r.get("error")]
    refs = [r["ref"] for r in records]
    for floor in args.floors:
        hyps = [" ".join(w for w, c in zip(r["hyp"].split(), r["confidences"]) if c >= floor) for r in records]
        print(f"floor {floor:.2f}: dev WER {100 * wer(refs, hyps):.3f} % ({len(records)} utterances)")
    rec = asr.load(args.bundle, confidence_floor=0.0)
    for kind, level in NON_SPEECH:
        words = [w for seed in args.seeds
                 for w in rec.transcribe(synthetic_audio(kind, 30.0, seed=seed) * level, sample_rate=16000).words]
        kept = {floor: sum(w.confidence >= floor for w in words) for floor in args.floors}
        top = max((w.confidence for w in words), default=0.0)
        print(f"{kind:7s} x{level:<4g}: {len(words):4d} words, highest confidence {top:.3f}; words at or above "
              + ", ".join(f"{floor:.2f}: {n}" for floor, n in kept.items()))


if __name__ == "__main__":
    main()
