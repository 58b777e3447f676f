#!/bin/bash
# after the mfcc arm: the pcen arm, then both through the benchmark (beam 500, the shipped LM and weights)
cd /work/main
while pgrep -f "out_dir=exp/fe/mfcc" > /dev/null; do sleep 10; done
exp/fe/run.sh pcen --set model.features.compression=pcen > exp/fe/pcen.log 2>&1
for arm in mfcc pcen; do
  .venv/bin/asr bundle exp/fe/$arm/last.pt --decoding exp/ft2/decoding.json --beam-size 500 --out exp/fe/$arm/bundle > /dev/null
  echo "== $arm"
  .venv/bin/python benchmarks/robustness.py --manifest data/librispeech/dev.jsonl --bundle exp/fe/$arm/bundle --no-pocketsphinx --workers 2 \
    --conditions clean white-10 pink-10 babble-10 room-0.6 telephone digits --fsdd ../shared/data/fsdd --out exp/bench/rob-fe-$arm
done
