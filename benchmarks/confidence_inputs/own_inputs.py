"""Each word's own inputs: the 13 of run 3, then the character head's forced gap, the unigram and position.

    python benchmarks/confidence_inputs/own_inputs.py ev.jsonl
"""

import sys

from sklearn.metrics import roc_auc_score

from common import cv_logistic, load

BASE = ["posterior", "acoustic_min", "acoustic_mean", "activity", "speech", "speech_sq", "llr", "match", "other_match",
        "agree", "lm", "seconds", "tokens"]

words = load(sys.argv[1])
print("char_llr alone", round(roc_auc_score(words.right, [e["char_llr"] for e in words.evidence]), 4),
      "unigram alone", round(roc_auc_score(words.right, [e["unigram"] for e in words.evidence]), 4))
for name, features in [("base", BASE), ("+char_llr", BASE + ["char_llr"]), ("+unigram", BASE + ["unigram"]),
                       ("+char_llr+unigram+first/last", BASE + ["char_llr", "unigram", "first", "last"])]:
    print(name, "lr", round(cv_logistic(words, features), 4), flush=True)
