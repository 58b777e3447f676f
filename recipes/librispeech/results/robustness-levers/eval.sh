#!/bin/bash
# evaluate checkpoints with the shipped decoding (no calibrator): all of dev, then the benchmark's conditions
# usage: eval.sh NAME CKPT [CKPT ...]   (several checkpoints: their average, a soup; repeat one to weight it)
set -e
name=$1; shift
d=exp/ft2/$name; mkdir -p $d
if [ $# -gt 1 ]; then .venv/bin/python recipes/librispeech/local/soup.py "$@" --out $d/final.pt; else cp "$1" $d/final.pt; fi
.venv/bin/asr bundle $d/final.pt --decoding exp/ft2/decoding.json --out $d/bundle > /dev/null
echo "== $name: $*"
.venv/bin/asr evaluate --manifest data/librispeech/dev.jsonl --bundle $d/bundle --out $d/dev --workers 2 --quiet 2>&1 | grep '"wer"' || true
python3 -c "import json;s=json.load(open('$d/dev/summary.json'));print('dev WER', s.get('wer'))"
.venv/bin/python benchmarks/robustness.py --manifest data/librispeech/dev.jsonl --bundle $d/bundle --no-pocketsphinx --workers 2 \
    --conditions clean white-10 pink-10 babble-10 room-0.6 telephone digits --fsdd ../shared/data/fsdd --out exp/bench/rob-$name
