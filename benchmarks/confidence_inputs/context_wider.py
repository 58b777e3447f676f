"""Wider context than context_inputs.py: the words two places away, the neighbours' length, and trees.

    python benchmarks/confidence_inputs/context_wider.py ev.jsonl
"""

import sys

from asr.confidence import FEATURES

from common import add_context, add_neighbours, context, cv_logistic, cv_trees, load
from context_inputs import K11, OWN

words = load(sys.argv[1])
add_context(words)
add_neighbours(words, K11, {"prev2": -2, "next2": 2})
for side in ("prev", "next"):  # the neighbours' length as this comparison took it: raw (the calibrator takes its log)
    for key in ("seconds", "tokens"):
        FEATURES[f"{side}_{key}"] = (f"{side}_{key}", "raw")
f0 = OWN + context(K11) + ["words", "rate"]
print("K11 gbdt", round(cv_trees(words, f0), 4), flush=True)
f1 = f0 + context(K11, ("prev2", "next2"))
print("K11+pm2 lr", round(cv_logistic(words, f1), 4), flush=True)
f2 = f0 + context(("seconds", "tokens"), ("prev", "next"))
print("K11+sec/tok lr", round(cv_logistic(words, f2), 4), flush=True)
print("K11+pm2 gbdt", round(cv_trees(words, f1), 4), flush=True)
