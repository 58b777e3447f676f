#!/bin/bash
# lever (issue 30, 2026-12-05): the recipe's fine-tune twice as long (6 epochs of clean + 1 corrupted copy: 12 passes), then averaged 1:1 with run 11 and evaluated
set -e
cd /work/main
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/bin/time -v .venv/bin/asr train recipes/librispeech/conf/finetune-augment.toml \
  --set init_from=exp/librispeech/train-clean-5/final.pt --set epochs=6 --set dev_every=3 --set max_minutes=45 \
  --set out_dir=exp/ft2/long --quiet
exp/ft2/eval.sh soup-long exp/librispeech/train-clean-5/final.pt exp/ft2/long/final.pt
