#!/bin/bash
# lever (issue 30, 2026-12-05): the recipe's fine-tune with phone lines in 30 % of the corrupted copy (was 10 %), then averaged 1:1 with run 11 and evaluated
set -e
cd /work/main
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/bin/time -v .venv/bin/asr train recipes/librispeech/conf/finetune-augment.toml \
  --set init_from=exp/librispeech/train-clean-5/final.pt --set augment.telephone=0.3 \
  --set out_dir=exp/ft2/tel --quiet
exp/ft2/eval.sh soup-tel exp/librispeech/train-clean-5/final.pt exp/ft2/tel/final.pt
