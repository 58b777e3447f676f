#!/bin/bash
set -e
export PATH=$PWD/.venv/bin:$PATH LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
python3 recipes/librispeech/local/soup.py exp/librispeech/train-clean-5/final.pt exp/librispeech/train-clean-5-augment/final.pt --out exp/librispeech/train-clean-5/soup.pt
python3 -c "
import torch
from asr.model import load_checkpoint
a, b = load_checkpoint('/tmp/soup-old.pt')['model'], load_checkpoint('exp/librispeech/train-clean-5/soup.pt')['model']
assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a); print('same weights as the soup stages 5-7 used')"
rm -rf exp/librispeech/train-clean-5/bundle
bash recipes/librispeech/run.sh ../shared/data/LibriSpeech recipes/librispeech/conf/train-clean-5.toml 6 6
