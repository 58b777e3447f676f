exec(open(__file__.replace("context_wider", "context_inputs")).read().split("BASE = [")[0])
for u, rs in byutt.items():
    for k, r in enumerate(rs):
        e = r["ev"]
        for side, j in (("prev2", k - 2), ("next2", k + 2)):
            for key in KEYS: e[f"{side}_{key}"] = rs[j]["ev"][key] if 0 <= j < len(rs) else 0.0
        for key in ("seconds", "tokens"):
            for side, j in (("prev", k - 1), ("next", k + 1)): e[f"{side}_{key}"] = rs[j]["ev"][key] if 0 <= j < len(rs) else 0.0
for side in ("prev2", "next2"):
    for key in KEYS:
        C.FEATURES[f"{side}_{key}"] = (f"{side}_{key}", "logit" if key in ("posterior", "acoustic_min", "acoustic_mean", "activity") else "raw")
for side in ("prev", "next"):
    for key in ("seconds", "tokens"): C.FEATURES[f"{side}_{key}"] = (f"{side}_{key}", "raw")
exec("BASE = [" + open(__file__.replace("context_wider", "context_inputs")).read().split("BASE = [")[1].split("for name, f in")[0])
K11 = KEYS
f0 = BASE + ctx(K11) + ["utt_words", "utt_rate"]
print("K11 gbdt", round(cv_gb(f0), 4), flush=True)
f1 = f0 + ctx(K11, ("prev2", "next2"))
print("K11+pm2 lr", round(cv_lr(f1), 4), flush=True)
f2 = f0 + ctx(("seconds", "tokens"), ("prev", "next"))
print("K11+sec/tok lr", round(cv_lr(f2), 4), flush=True)
print("K11+pm2 gbdt", round(cv_gb(f1), 4), flush=True)
