#!/usr/bin/env bash
# Learning curve (issue 41): the shipped recipe's training (conf/train-clean-5.toml, every
# setting the same: 20 epochs, speed perturbation, SpecAugment, the cosine) on the first 1 and
# 2.5 hours of train-clean-5 in one seeded random order (local/subset.py: nested subsets), each
# then tuned and scored on dev like the shipped model (phone head, beam 2000, the shipped 4-gram,
# joint rescoring; the LM weight picked on dev from three). The 5.3 h point is run 11, the
# shipped model before its fine-tune (results/log.csv, results/run11/). Run from the repo root,
# after run.sh's stage 1 (the manifests):
#
#   recipes/librispeech/learning_curve.sh [HOURS...]        # default: 1 2.5
#
# Each point trains in about 20 epochs x 3 speeds x HOURS x 0.9 min on a 2-core CPU (~18 min for
# 1 h, ~45 min for 2.5 h) and resumes if interrupted. Writes exp/librispeech/curve-HOURSh/.
set -euo pipefail

asr=${ASR:-$(command -v asr || echo .venv/bin/asr)}
python=${PYTHON:-$(dirname "$asr")/python}
config=recipes/librispeech/conf/train-clean-5.toml
hours=("$@")
[ ${#hours[@]} -gt 0 ] || hours=(1 2.5)

for h in "${hours[@]}"; do
  manifest=data/librispeech/train-clean-5-${h}h.jsonl
  out=exp/librispeech/curve-${h}h
  "$python" recipes/librispeech/local/subset.py data/librispeech/train-clean-5.jsonl --hours "$h" --out "$manifest"
  resume=()
  [ -f "$out/last.pt" ] && resume=(--resume)
  [ -f "$out/final.pt" ] || "$asr" train "$config" "${resume[@]}" --quiet \
      --set train_manifest="$manifest" --set out_dir="$out"  # its log: $out/train.log
  "$asr" evaluate --model "$out/final.pt" --head phone --manifest data/librispeech/dev.jsonl \
      --out "$out/dev-phone-greedy" --quiet
  "$asr" tune --model "$out/final.pt" --manifest data/librispeech/dev.jsonl --heads phone \
      --lm asr/assets/lm.bin --lm-weights 1.5 2.25 3 --word-scores -0.5 --joint-weights 0.1 \
      --beam-size 2000 --beam-size-token 8 --beam-threshold 12 --blank-skip 0.95 --out "$out/tune"
done
