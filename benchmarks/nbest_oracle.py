"""What rescoring the beam's n-best can win at most: the n-best's oracle word error rate on dev.

    python benchmarks/nbest_oracle.py --manifest data/librispeech/dev.jsonl [--sizes 1 4 16 50]
        [--rescore rnnlm.npz ...] [--workers 2]

The shipped bundle's beam search (its LM, weights and beam) runs once over every file, keeping the
largest of ``--sizes`` hypotheses (``nbest``). For each size k the oracle picks, in every file, the
one of the word sequences of the search's first k hypotheses (the n-best a search with ``nbest=k``
returns; some repeat a word sequence with another alignment) with the fewest word errors against
the reference: no rescoring of that n-best can do better. A file the search cuts into windows
(longer than asr.plan.CHUNK_SECONDS) takes the best combination of its windows' choices. Beside it,
what the shipped rescoring picks from the bundle's own n-best size (joint rescoring and the RNN LM at
the bundle's weights), and the same with each ``--rescore`` RNN LM in place of the bundle's, at each
of ``--rescore-weights``. ``--mbr-scales``: the pick of minimum Bayes risk instead (each hypothesis's
expected word errors against the others, weighted by their posterior, a softmax of the rescored
scores times the scale; the one of fewest), with the bundle's rescoring. The confidence floor is off (as in ``asr tune``), so the shipped pick's
WER is ``asr tune``'s figure for the bundle's weights.
"""

import argparse
import dataclasses
import itertools
import os
import time

import numpy as np
from rapidfuzz.distance import Levenshtein

from asr.bundle import resolve
from asr.ctc import Hypothesis
from asr.manifest import read_manifest
from asr.metrics import word_errors
from asr.rnnlm import RNNLM
from asr.search import BeamDecoder, best_words, distinct_words, rescore_nbest
from asr.decode import DecodingConfig, member_outputs
from asr.transcribe import Transcriber, item_outputs, merge_hypotheses


def file_errors(ref: str, choices: list[list[tuple]], items) -> int:
    """The fewest word errors of any combination of one candidate per window (``choices[i]``:
    window i's candidate word lists, ``items[i]``: its Window)."""
    best = None
    for combo in itertools.product(*choices):
        hyp = merge_hypotheses([(it, Hypothesis([], list(words), [])) for it, words in zip(items, combo)])
        e = word_errors([ref], [hyp.text("phone")])
        errors = e.substitutions + e.deletions + e.insertions
        best = errors if best is None else min(best, errors)
    return best


def mbr_pick(ranked: list[tuple[list, float]], scale: float) -> list:
    """The words of least expected word errors against ``ranked`` (distinct, with scores)."""
    if len(ranked) < 2:
        return ranked[0][0] if ranked else []
    scores = np.array([sc for _, sc in ranked]) * scale
    post = np.exp(scores - scores.max())
    post /= post.sum()
    texts = [[w.word for w in words] for words, _ in ranked]
    risk = [sum(p * Levenshtein.distance(a, b) for b, p in zip(texts, post)) for a in texts]
    return ranked[int(np.argmin(risk))][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 50])
    ap.add_argument("--rescore", nargs="*", default=[], help="other RNN LMs to pick with in place of the bundle's")
    ap.add_argument("--rescore-weights", type=float, nargs="+", default=[0.2])
    ap.add_argument("--mbr-scales", type=float, nargs="*", default=[])
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    utts = read_manifest(args.manifest)
    refs = [u.text for u in utts]
    ref_words = sum(len(r.split()) for r in refs)
    bundle = resolve()
    shipped = dataclasses.replace(bundle.decoding, calibration=None, confidence_floor=0.0)
    head = bundle.head
    other = "char" if head == "phone" else "phone"
    tr = Transcriber(dataclasses.replace(bundle, decoding=DecodingConfig()))
    lex, fs = tr.lexicon, tr.model.config.frame_seconds
    t0 = time.perf_counter()
    items, outputs = item_outputs(tr, [u.audio for u in utts], args.workers)
    big = max(args.sizes)
    beam = BeamDecoder(head, lex, dataclasses.replace(shipped, nbest=big))
    nbests: dict[int, tuple] = {}
    for idx, out in outputs:
        for b, (k, hyps) in enumerate(zip(idx, beam.search(out[head], out["lengths"], fs))):
            n = out["lengths"][b]
            nbests[k] = (hyps, out[other][b, :n], member_outputs(out, head, b, n))
    print(f"model and search over {len(utts)} files ({len(items)} windows), n-best of {big}: "
          f"{time.perf_counter() - t0:.0f} s; decoding: head {head}, beam {shipped.beam_size}, "
          f"LM weight {shipped.lm_weight}, word score {shipped.word_score}, joint {shipped.joint_weight}, "
          f"RNN LM {shipped.rescore} at {shipped.rescore_weight}, the bundle's n-best {shipped.nbest}")
    windows: list[list[int]] = [[] for _ in utts]
    for k, it in enumerate(items):
        windows[it.file].append(k)
    for size in sorted(args.sizes):
        distinct = [len(distinct_words(nbests[k][0][:size])) if k in nbests else 0 for k in range(len(items))]
        print(f"the first {size} hypotheses: distinct word sequences per window, mean {sum(distinct) / len(items):.1f}")

    def words_of(k: int, limit: int) -> list[list]:
        if k not in nbests or not nbests[k][0]:
            return [[]]  # digital silence, or nothing came out
        return [words for words, _ in distinct_words(nbests[k][0][:limit])]

    print(f"{'':46s} {'word errors':>11s} {'WER':>8s}")
    for size in sorted(args.sizes):
        total = sum(file_errors(refs[f], [words_of(k, size) for k in windows[f]], [items[k] for k in windows[f]])
                    for f in range(len(utts)))
        print(f"{f'oracle of the first {size} (search order)':46s} {total:11d} {100 * total / ref_words:7.2f} %")

    def errors_of(pick) -> int:
        """Word errors over all files, each window's words ``pick(hyps, other head's log-probs, members)``."""
        return sum(file_errors(refs[f], [[pick(*nbests[k]) if k in nbests else []] for k in windows[f]],
                               [items[k] for k in windows[f]]) for f in range(len(utts)))

    lms = [(shipped.rescore, RNNLM(shipped.rescore) if shipped.rescore else None, [shipped.rescore_weight])]
    lms += [(path, RNNLM(path), args.rescore_weights) for path in args.rescore]
    for path, lm, weights in lms:
        for w in weights:
            total = errors_of(lambda hyps, other_lp, members, lm=lm, w=w: best_words(
                hyps[:shipped.nbest], other_lp, other, lex, dataclasses.replace(shipped, rescore_weight=w), lm, members))
            name = f"picked from {shipped.nbest}: joint + {os.path.basename(os.path.dirname(path or '')) or path} at {w}"
            print(f"{name:46s} {total:11d} {100 * total / ref_words:7.2f} %")

    for scale in args.mbr_scales:
        total = errors_of(lambda hyps, other_lp, members, scale=scale: mbr_pick(rescore_nbest(
            hyps[:shipped.nbest], other_lp, other, lex, shipped, lms[0][1], members), scale))
        name = f"minimum Bayes risk from {shipped.nbest}, scale {scale}"
        print(f"{name:46s} {total:11d} {100 * total / ref_words:7.2f} %")
    print(f"reference words: {ref_words}; {time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
