import json, sys, math, numpy as np
rows = [json.loads(l) for l in open(sys.argv[1])]
import asr.confidence as C
from asr.confidence import fit_calibrator
from sklearn.metrics import roc_auc_score
from sklearn.ensemble import HistGradientBoostingClassifier
KEYS = ("posterior", "llr", "char_llr", "agree", "other_match", "acoustic_min", "match", "lm", "unigram", "acoustic_mean", "activity")
byutt = {}
for r in rows: byutt.setdefault(r["utt"], []).append(r)
for u, rs in byutt.items():
    dur = max(rs[-1]["end"] - rs[0]["start"], 0.5)
    for k, r in enumerate(rs):
        e = r["ev"]
        for side, j in (("prev", k - 1), ("next", k + 1)):
            for key in KEYS: e[f"{side}_{key}"] = rs[j]["ev"][key] if 0 <= j < len(rs) else 0.0
        for key in KEYS: e[f"utt_{key}"] = sum(x["ev"][key] for x in rs) / len(rs)
        e["utt_words"] = float(len(rs)); e["utt_rate"] = len(rs) / dur
for side in ("prev", "next", "utt"):
    for key in KEYS:
        C.FEATURES[f"{side}_{key}"] = (f"{side}_{key}", "logit" if key in ("posterior", "acoustic_min", "acoustic_mean", "activity") else "raw")
C.FEATURES["utt_words"] = ("utt_words", "log"); C.FEATURES["utt_rate"] = ("utt_rate", "raw")
ev = [r["ev"] for r in rows]; y = np.array([r["right"] for r in rows])
spk = sorted({r["spk"] for r in rows}); fold = np.array([spk.index(r["spk"]) % 2 for r in rows])
def cv_lr(feats, l2=1e-3):
    p = np.zeros(len(y))
    for k in (0, 1):
        tr = [i for i in range(len(y)) if fold[i] != k]
        c = fit_calibrator([ev[i] for i in tr], [bool(y[i]) for i in tr], tuple(feats), l2=l2)
        for i in np.where(fold == k)[0]: p[i] = c.probability(ev[i])
    return roc_auc_score(y, p)
def cv_gb(feats, **kw):
    X = C.feature_matrix(ev, tuple(feats)).numpy(); p = np.zeros(len(y))
    for k in (0, 1):
        m = HistGradientBoostingClassifier(**{"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 40, **kw})
        m.fit(X[fold != k], y[fold != k]); p[fold == k] = m.predict_proba(X[fold == k])[:, 1]
    return roc_auc_score(y, p)
BASE = ["posterior", "acoustic_min", "acoustic_mean", "activity", "speech", "speech_sq", "llr", "match", "other_match", "agree", "lm", "seconds", "tokens", "char_llr", "unigram", "first", "last"]
K6 = ("posterior", "llr", "char_llr", "agree", "other_match", "acoustic_min")
K8 = K6 + ("match", "lm")
def ctx(keys, sides=("prev", "next", "utt")): return [f"{s}_{k}" for s in sides for k in keys]
for name, f in [("K6", BASE + ctx(K6)), ("K8", BASE + ctx(K8)), ("K8+uttwr", BASE + ctx(K8) + ["utt_words", "utt_rate"]),
                ("K11+uttwr", BASE + ctx(KEYS) + ["utt_words", "utt_rate"])]:
    for l2 in (1e-4, 1e-3):
        print(name, "lr l2", l2, round(cv_lr(f, l2), 4), flush=True)
f = BASE + ctx(K8) + ["utt_words", "utt_rate"]
print("K8+uttwr gbdt", round(cv_gb(f), 4), flush=True)
print("K8+uttwr gbdt 400 0.03", round(cv_gb(f, max_iter=400, learning_rate=0.03), 4), flush=True)
