"""Boosted words on dev: recall of rare words raised in the search, the WER of everything else,
and what the boost costs in speed.

    python benchmarks/boost.py --manifest data/librispeech/dev.jsonl [--weights 1 2 3] [--token-beams 8 41]

The biasing list, as contextual biasing is measured (a list of names and terms a user would
give, holding the words of the recordings and others): the 100 dev reference words the shipped
LM finds rarest (lowest unigram probability, among the words the search has), and 100
distractors, words as rare that dev never says. Every list word gets the same weight. Each
run decodes all of dev with the shipped bundle; recall counts the list's dev words recognised
(per utterance, the smaller of the reference's and hypothesis's counts). ``--token-beams``: also
with these many tokens tried a frame (``beam_size_token``; default: the bundle's), each weight.
"""

import argparse
import collections
import itertools
import os
import time

from added_words import unigrams

from asr.bundle import resolve
from asr.manifest import read_manifest
from asr.metrics import wer
from asr.transcribe import Transcriber


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--token-beams", type=int, nargs="+", default=[None],
                    help="tokens tried a frame (default: the bundle's)")
    args = ap.parse_args()
    utts = read_manifest(args.manifest)
    refs = [u.text for u in utts]
    bundle = resolve()
    vocab = set(open(f"{bundle.decoding.lm}.words.txt", encoding="utf-8").read().split())
    dev_words = sorted({w for r in refs for w in r.split()} & vocab)
    scores = unigrams(bundle.decoding.lm, dev_words)
    rare = sorted(dev_words, key=lambda w: scores[w])[:100]
    floor, ceiling = scores[rare[0]], scores[rare[-1]]
    others = sorted(vocab - set(dev_words))
    other_scores = unigrams(bundle.decoding.lm, others)
    distractors = [w for w in others if floor <= other_scores[w] <= ceiling][::7][:100]
    listed = rare + distractors
    print(f"{len(utts)} dev utterances; list: {len(rare)} rare dev words (unigram log10 {floor:.2f} to "
          f"{ceiling:.2f}, {sum(r.split().count(w) for r in refs for w in rare)} occurrences) + "
          f"{len(distractors)} distractors as rare", flush=True)
    print("\n| token beam | boost weight | the rare words' occurrences recognised | distractors said (false) | dev WER | "
          "RTF (2 workers) |")
    print("|---|---|---|---|---|---|")
    audio = sum(u.duration for u in utts)
    for tokens, weight in itertools.product(args.token_beams, [0.0, *args.weights]):
        b = bundle.with_options(beam_size_token=tokens)
        b = b if weight == 0 else b.with_options(boost=tuple(f"{w}:{weight:g}" for w in listed))
        start = time.perf_counter()
        tr = Transcriber(b)
        hyps = [t.text for t in tr.transcribe_files([u.audio for u in utts], workers=args.workers, in_order=True)]
        wall = time.perf_counter() - start
        found = total = false = 0
        for r, h in zip(refs, hyps):
            rc, hc = collections.Counter(r.split()), collections.Counter(h.split())
            total += sum(rc[w] for w in rare)
            found += sum(min(rc[w], hc[w]) for w in rare)
            false += sum(hc[w] for w in distractors)
        print(f"| {b.decoding.beam_size_token} | {'none' if weight == 0 else f'{weight:g}'} | "
              f"{found}/{total} = {100 * found / total:.1f} % | {false} | {100 * wer(refs, hyps):.2f} % | "
              f"{wall / audio:.4f} |", flush=True)


if __name__ == "__main__":
    main()
