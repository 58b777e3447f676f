"""Added words on dev: take 50 dev words out of the lexicon and the LM, add them back with
``words=`` (no pronunciation given: the bundle's G2P model says them), and count how many of
their occurrences are recognised again.

    python benchmarks/added_words.py --manifest data/librispeech/dev.jsonl [--workers 2]
        [--skip 50] [--stand-ins -6 -5]

The 50 words: the kind of word a user adds, rare in the LM's books (unigram log10-probability
below -5: names, terms) yet said in the recordings: the most frequent such words of the dev
transcripts that the lexicon has (chosen from the references and the LM, not from what the
recognizer does with them). Three runs of
the shipped bundle over all of dev:

1. **as shipped**: the words in the lexicon and in the LM;
2. **taken out**: the lexicon without them (so the search cannot say them);
3. **added back**: that lexicon, plus ``words=[the 50]``; the LM reads each of them as it reads
   a word it lacks (:func:`asr.search.stand_ins`: a rare word it knows stands in), which this
   benchmark forces for these 50 although the shipped LM has them, so that their n-gram
   statistics play no part.

A word occurrence counts as recognised where the hypothesis holds the word as often as the
reference (per utterance, the smaller of the two counts). Prints recall of the 50 words'
occurrences, of those recognised as shipped how many are recognised again (per utterance, the
smallest of the reference's and both hypotheses' counts), and each run's WER.

``--stand-ins``: run 3 once for each of these unigram log10-probabilities of the word an added
word is read as (:data:`asr.search.STAND_IN_LOG10`); ``--skip 50`` takes the next 50 words of the
same kind instead, a set to choose that value on without looking at the first 50.
"""

import argparse
import collections
import gzip
import os
import tempfile
import time

import asr.search
from asr.bundle import resolve
from asr.manifest import read_manifest
from asr.metrics import wer
from asr.transcribe import Transcriber


def recall(words: set[str], refs: list[str], hyps: list[str], *more: list[str]) -> tuple[int, int]:
    """``words``' occurrences in ``refs`` recognised in ``hyps`` (and in each of ``more``), and their total."""
    found = total = 0
    for r, *hs in zip(refs, hyps, *more):
        rc, hcs = collections.Counter(r.split()), [collections.Counter(h.split()) for h in hs]
        for w in words:
            total += rc[w]
            found += min(rc[w], *(hc[w] for hc in hcs))
    return found, total


RARE = -5.0  # the words taken out: unigram log10-probability in the shipped LM below this


def unigrams(lm: str, words: list[str]) -> dict[str, float]:
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    d = Dictionary()
    for w in ["<unk>", *words]:
        d.add_entry(w)
    model = KenLM(lm, d)
    start = model.start(True)  # no context: the unigram
    return {w: model.score(start, d.get_index(w))[1] for w in words}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--words", type=int, default=50)
    ap.add_argument("--skip", type=int, default=0, help="leave out the first N words of the kind (another set)")
    ap.add_argument("--stand-ins", type=float, nargs="+", default=[asr.search.STAND_IN_LOG10],
                    help="unigram log10-probabilities of the LM word an added word is read as (default: asr's)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    utts = read_manifest(args.manifest)
    refs = [u.text for u in utts]
    shipped = Transcriber(resolve()).lexicon.load()
    counts = collections.Counter(w for r in refs for w in r.split() if w in shipped)
    rarity = unigrams(resolve().decoding.lm, sorted(counts))
    # the kind of word a user adds: rare in the LM's books (names, terms), said in the recordings
    chosen = [w for w, _ in counts.most_common() if rarity[w] < RARE][args.skip: args.skip + args.words]
    print(f"{len(utts)} dev utterances; the {len(chosen)} words ({sum(counts[w] for w in chosen)} occurrences): "
          f"{' '.join(chosen)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        lexicon = os.path.join(tmp, "lexicon.txt.gz")
        with gzip.open(resolve().lexicon, "rt", encoding="utf-8") as f, gzip.open(lexicon, "wt", encoding="utf-8") as out:
            out.writelines(line for line in f if line.split("\t", 1)[0] not in set(chosen))
        real_stand_ins = asr.search.stand_ins

        def forced(lm, words):  # the 50 words read as words the LM lacks (it has them)
            chosen_set = set(chosen)
            hidden = {w: "\0" for w in words if w in chosen_set}
            found = real_stand_ins(lm, [f"zz{w}zz" for w in hidden])  # spellings the LM surely lacks
            return real_stand_ins(lm, [w for w in words if w not in hidden]) | {
                w: found[f"zz{w}zz"] for w in hidden}

        asr.search.stand_ins = forced
        runs = [("as shipped (in the lexicon and the LM)", resolve(), None),
                ("taken out of the lexicon (and so of the search)", resolve(lexicon=lexicon), None)]
        runs += [(f"added back: words=[...] without phones (G2P), read by the LM as words it lacks (stand-in "
                  f"log10 {v:g})", resolve(lexicon=lexicon, words=tuple(chosen)), v) for v in args.stand_ins]
        print(f"\n| run | the {len(chosen)} words' occurrences recognised | of those recognised as shipped, "
              f"recognised again | dev WER | wall (s) |\n|---|---|---|---|---|")
        found_shipped, as_shipped = None, None
        for name, bundle, stand_in in runs:
            if stand_in is not None:
                asr.search.STAND_IN_LOG10 = stand_in
            start = time.perf_counter()
            tr = Transcriber(bundle)
            hyps = [t.text for t in tr.transcribe_files([u.audio for u in utts], workers=args.workers, in_order=True)]
            found, total = recall(set(chosen), refs, hyps)
            if as_shipped is None:
                found_shipped, as_shipped = found, hyps
            again, _ = recall(set(chosen), refs, hyps, as_shipped)
            print(f"| {name} | {found}/{total} = {100 * found / total:.1f} % ({100 * found / found_shipped:.1f} % of "
                  f"as shipped) | {again}/{found_shipped} = {100 * again / found_shipped:.1f} % | "
                  f"{100 * wer(refs, hyps):.2f} % | {time.perf_counter() - start:.0f} |", flush=True)
        g2p = tr.lexicon
        print("\nG2P pronunciations against the lexicon's first:")
        same = sum(g2p.prons[w][0] == shipped.prons[w][0] for w in chosen)
        print(f"{same}/{len(chosen)} identical; the others: " + "; ".join(
            f"{w} {' '.join(g2p.prons[w][0])} (lexicon: {' '.join(shipped.prons[w][0])})"
            for w in chosen if g2p.prons[w][0] != shipped.prons[w][0]))


if __name__ == "__main__":
    main()
