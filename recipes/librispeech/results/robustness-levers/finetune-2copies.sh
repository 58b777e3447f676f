#!/bin/bash
# lever L1 (issue 30, session 2026-12-05): the recipe's fine-tune with 2 corrupted copies, 2 epochs (6 passes, as the shipped 3 x 2)
set -e
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/bin/time -v .venv/bin/asr train recipes/librispeech/conf/finetune-augment.toml \
  --set init_from=exp/librispeech/train-clean-5/final.pt --set augment.copies=2 --set epochs=2 \
  --set out_dir=exp/ft2/aug2 --quiet
