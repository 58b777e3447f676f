"""Do two `asr evaluate` runs give the same words? Utterances with identical transcripts and each run's WER.

    python benchmarks/same_words.py RUN_A/results.jsonl RUN_B/results.jsonl

Used to hold the torch-free runtime to the torch path: the same bundle evaluated on dev by
both (RESULTS.md, "Recognition without torch").
"""

import argparse
import json

from asr.metrics import wer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    runs = []
    for path in (args.a, args.b):
        with open(path, encoding="utf-8") as f:
            runs.append({r["id"]: r for r in map(json.loads, f) if r.get("id")})
    a, b = runs
    if a.keys() != b.keys():
        raise SystemExit(f"the runs have different utterances ({len(a.keys() ^ b.keys())} not in both)")
    ids = sorted(a)
    same = sum(a[i]["hyp"] == b[i]["hyp"] for i in ids)
    refs = [a[i]["ref"] for i in ids]
    print(f"{same} of {len(ids)} utterances identical ({100 * same / len(ids):.2f} %)")
    for name, run in ((args.a, a), (args.b, b)):
        print(f"WER {100 * wer(refs, [run[i]['hyp'] for i in ids]):.3f} %  {name}")


if __name__ == "__main__":
    main()
