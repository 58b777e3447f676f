#!/bin/bash
# issue 30: ship the soup through the recipe's commands (stage 2's soup line, then stages 5-7)
set -e
export PATH=$PWD/.venv/bin:$PATH LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
python3 recipes/librispeech/local/soup.py exp/librispeech/train-clean-5/final.pt exp/librispeech/train-clean-5-augment/final.pt --out exp/librispeech/train-clean-5/soup.pt
LM_WEIGHTS="2.25" WORD_SCORES="-0.75 -0.5" JOINT_WEIGHTS="0.1 0.2" bash recipes/librispeech/run.sh ../shared/data/LibriSpeech recipes/librispeech/conf/train-clean-5.toml 5 7
