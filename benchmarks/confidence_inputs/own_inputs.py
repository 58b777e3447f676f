import json, sys, numpy as np
rows = [json.loads(l) for l in open(sys.argv[1])]
import torch
from asr.confidence import FEATURES, feature_matrix, fit_calibrator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
ev = [r["ev"] for r in rows]; y = np.array([r["right"] for r in rows])
spk = sorted({r["spk"] for r in rows}); fold = np.array([spk.index(r["spk"]) % 2 for r in rows])
BASE = ["posterior", "acoustic_min", "acoustic_mean", "activity", "speech", "speech_sq", "llr", "match", "other_match", "agree", "lm", "seconds", "tokens"]
def cv_lr(feats, l2=1e-3):
    p = np.zeros(len(y))
    for k in (0, 1):
        tr = [i for i in range(len(y)) if fold[i] != k]
        c = fit_calibrator([ev[i] for i in tr], [bool(y[i]) for i in tr], tuple(feats), l2=l2)
        for i in np.where(fold == k)[0]: p[i] = c.probability(ev[i])
    return roc_auc_score(y, p)
def cv_gb(feats, **kw):
    X = feature_matrix(ev, tuple(feats)).numpy(); p = np.zeros(len(y))
    for k in (0, 1):
        m = HistGradientBoostingClassifier(**{"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 40, **kw})
        m.fit(X[fold != k], y[fold != k]); p[fold == k] = m.predict_proba(X[fold == k])[:, 1]
    return roc_auc_score(y, p)
ALL = list(FEATURES)
print("char_llr alone", round(roc_auc_score(y, [e["char_llr"] for e in ev]), 4), "unigram alone", round(roc_auc_score(y, [e["unigram"] for e in ev]), 4))
for name, f in [("base", BASE), ("+char_llr", BASE + ["char_llr"]), ("+unigram", BASE + ["unigram"]),
                ("+char_llr+unigram+first/last", BASE + ["char_llr", "unigram", "first", "last"])]:
    print(name, "lr", round(cv_lr(f), 4), flush=True)
