#!/bin/bash
# front-end lever (issue 30, 2026-12-05): the recipe's model from scratch, 8 passes at speed 1.0, one arm per feature config
# usage: run.sh ARM [--set ...]
set -e
arm=$1; shift
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 .venv/bin/asr train recipes/librispeech/conf/train-clean-5.toml \
  --set 'speed_perturb=[1.0]' --set epochs=8 --set dev_every=4 --set average_last=0 --set max_minutes=40 \
  --set out_dir=exp/fe/$arm --quiet "$@"
