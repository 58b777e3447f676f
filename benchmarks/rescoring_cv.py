"""How much of a tuned decoding's dev WER is fit to dev: weights chosen on some dev speakers, scored on the others.

    python benchmarks/rescoring_cv.py --manifest data/librispeech/dev.jsonl [--word-scores -0.5 -1] [--blank-penalties 0 1]
        [--joint-weights 0 0.1] [--rescore-weights 0.2 0.3] [--token-scores 0 0.5 1] [--folds 5] [--workers 2]

The shipped bundle's search (its LM, LM weight and beam) runs once per word score and blank penalty
over every file, keeping its n-best, and what rescoring weighs is computed once
(``asr.search.nbest_scores``), as ``asr tune`` does. Every setting of the grid (word score × blank
penalty × joint weight × RNN LM weight × token score) then picks each file's words, and each speaker's word
errors are counted per setting. The speakers, sorted, are dealt into ``--folds`` folds (every k-th);
for each fold, the setting with the fewest errors on the other folds' speakers picks that fold's
words. Their errors summed over the folds are the cross-validated WER: what a decoding tuned on dev
makes on speakers it was not tuned on. Beside it, the bundle's own setting and the grid's best on
all of dev (what ``asr tune`` chooses). The confidence floor is off, as in ``asr tune``.
"""

import argparse
import dataclasses
import itertools
import os
import time

import numpy as np

from asr.bundle import resolve
from asr.ctc import Hypothesis
from asr.decode import DecodingConfig
from asr.evaluate import scored_nbests
from asr.manifest import read_manifest
from asr.metrics import word_errors
from asr.rnnlm import RNNLM
from asr.search import BeamDecoder, best_rescored, rescoring_weights
from asr.transcribe import Transcriber, item_outputs, merge_hypotheses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--word-scores", type=float, nargs="+")
    ap.add_argument("--blank-penalties", type=float, nargs="+")
    ap.add_argument("--joint-weights", type=float, nargs="+")
    ap.add_argument("--rescore-weights", type=float, nargs="+")
    ap.add_argument("--token-scores", type=float, nargs="+")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    utts = read_manifest(args.manifest)
    bundle = resolve()
    shipped = dataclasses.replace(bundle.decoding, calibration=None, confidence_floor=0.0)
    grid = {"word_score": args.word_scores or [shipped.word_score],
            "blank_penalty": args.blank_penalties or [shipped.blank_penalty],
            "joint_weight": args.joint_weights or [shipped.joint_weight],
            "rescore_weight": args.rescore_weights or [shipped.rescore_weight],
            "token_score": args.token_scores or [shipped.token_score]}
    settings = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    own = {k: getattr(shipped, k) for k in grid}
    if own not in settings:
        settings.append(own)
    head = bundle.head
    tr = Transcriber(dataclasses.replace(bundle, decoding=DecodingConfig()))
    lex, fs = tr.lexicon, tr.model.config.frame_seconds
    rnnlm = RNNLM(shipped.rescore) if shipped.rescore else None
    t0 = time.perf_counter()
    items, outputs = item_outputs(tr, [u.audio for u in utts], args.workers)
    speakers = sorted({u.speaker for u in utts})
    # errors[setting index, speaker index]
    errors = np.zeros((len(settings), len(speakers)), np.int64)
    ref_words = np.zeros(len(speakers), np.int64)
    for u in utts:
        ref_words[speakers.index(u.speaker)] += len(u.text.split())
    for word_score, penalty in itertools.product(grid["word_score"], grid["blank_penalty"]):
        beam = BeamDecoder(head, lex, dataclasses.replace(shipped, word_score=word_score, blank_penalty=penalty))
        scored = scored_nbests(beam, outputs, lex, fs, rnnlm, joint=any(grid["joint_weight"]))
        print(f"word score {word_score}, blank penalty {penalty}: model and search over {len(utts)} files ({len(items)} windows), "
              f"{time.perf_counter() - t0:.0f} s so far", flush=True)
        for i, setting in enumerate(settings):
            if (setting["word_score"], setting["blank_penalty"]) != (word_score, penalty):
                continue
            weights = rescoring_weights(dataclasses.replace(shipped, **setting))
            pieces: list[list] = [[] for _ in utts]
            for k, it in enumerate(items):
                words = []
                if k in scored:  # else digital silence
                    nbest, scores, members = scored[k]
                    words = best_rescored(nbest, scores, weights, members)
                pieces[it.file].append((it, Hypothesis([], words, [])))
            for u, p in zip(utts, pieces):
                errors[i, speakers.index(u.speaker)] += word_errors([u.text], [merge_hypotheses(p).text(head)]).errors

    def name(s: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in s.items())

    total = ref_words.sum()
    mine = settings.index(own)
    best = int(errors.sum(1).argmin())
    print(f"{len(settings)} settings; {len(speakers)} speakers, {total} reference words")
    print(f"the bundle's setting ({name(own)}): {100 * errors[mine].sum() / total:.2f} %")
    print(f"the best on all of dev ({name(settings[best])}): {100 * errors[best].sum() / total:.2f} %")
    folds = [speakers[f::args.folds] for f in range(args.folds)]
    cross = 0
    for fold in folds:
        held = np.array([s in fold for s in speakers])
        pick = int(errors[:, ~held].sum(1).argmin())
        cross += errors[pick, held].sum()
        print(f"  speakers {' '.join(fold)}: tuned on the others -> {name(settings[pick])}: "
              f"{errors[pick, held].sum()} errors (bundle's setting {errors[mine, held].sum()}, "
              f"of {ref_words[held].sum()} words)")
    print(f"cross-validated over {args.folds} folds of speakers: {100 * cross / total:.2f} % "
          f"(the bundle's setting {100 * errors[mine].sum() / total:.2f} %); {time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
