"""The neighbours' and the utterance's evidence as inputs: errors come in runs.

    python benchmarks/confidence_inputs/context_inputs.py ev.jsonl
"""

import sys

from common import add_context, context, cv_logistic, cv_trees, load

OWN = ["posterior", "acoustic_min", "acoustic_mean", "activity", "speech", "speech_sq", "llr", "match", "other_match",
       "agree", "lm", "seconds", "tokens", "char_llr", "unigram", "first", "last"]
K6 = ("posterior", "llr", "char_llr", "agree", "other_match", "acoustic_min")
K8 = K6 + ("match", "lm")
K11 = K8 + ("unigram", "acoustic_mean", "activity")


def main() -> None:
    words = load(sys.argv[1])
    add_context(words)
    for name, features in [("K6", OWN + context(K6)), ("K8", OWN + context(K8)),
                           ("K8+uttwr", OWN + context(K8) + ["words", "rate"]),
                           ("K11+uttwr", OWN + context(K11) + ["words", "rate"])]:
        for l2 in (1e-4, 1e-3):
            print(name, "lr l2", l2, round(cv_logistic(words, features, l2), 4), flush=True)
    features = OWN + context(K8) + ["words", "rate"]
    print("K8+uttwr gbdt", round(cv_trees(words, features), 4), flush=True)
    print("K8+uttwr gbdt 400 0.03", round(cv_trees(words, features, max_iter=400, learning_rate=0.03), 4), flush=True)


if __name__ == "__main__":
    main()
