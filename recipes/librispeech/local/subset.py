"""The first HOURS of a training manifest in a seeded random order, for a learning curve:

    python recipes/librispeech/local/subset.py data/librispeech/train-clean-5.jsonl --hours 1 --out OUT.jsonl

Utterances are shuffled once with ``--seed`` and taken in that order until their durations add up
to ``--hours``, so the subsets of one seed are nested (the 1 h set lies inside the 2.5 h set) and a
point of the curve differs from the next only by the speech added. Speakers are not balanced
on purpose: a random draw of a few hundred utterances from train-clean-5 covers all of its
28 speakers anyway (the script prints how many it kept).
"""

import argparse
import json
import os
import random

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("manifest")
ap.add_argument("--hours", type=float, required=True)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--out", required=True)
args = ap.parse_args()

with open(args.manifest) as f:
    rows = [json.loads(line) for line in f if line.strip()]
total = sum(r["duration"] for r in rows)
if args.hours * 3600 > total:
    raise SystemExit(f"{args.manifest}: holds {total / 3600:.2f} h, fewer than the {args.hours} h asked")
random.Random(args.seed).shuffle(rows)
kept, seconds = [], 0.0
for row in rows:
    if seconds >= args.hours * 3600:
        break
    kept.append(row)
    seconds += row["duration"]
kept.sort(key=lambda r: r["id"])  # the manifest's own order, for a readable file
tmp = args.out + ".tmp"
with open(tmp, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in kept)
os.replace(tmp, args.out)
speakers = {r["id"].split("-")[0] for r in kept}
print(f"{args.out}: {len(kept)} of {len(rows)} utterances, {seconds / 3600:.2f} h, {len(speakers)} speakers")
