#!/bin/bash
# issue 30 fine-tune comparison: both candidates with the shipped decoding (no calibrator), robustness + full dev
set -e
for arm in aug clean; do
  .venv/bin/asr bundle exp/ft/$arm/final.pt --decoding exp/ft/shipped-decoding.json --out exp/ft/$arm/bundle > /dev/null
done
for arm in aug clean; do
  .venv/bin/asr evaluate --manifest data/librispeech/dev.jsonl --bundle exp/ft/$arm/bundle --out exp/ft/$arm/dev --workers 2 --quiet 2>&1 | tail -3
done
for arm in aug clean; do
  echo "== $arm"
  .venv/bin/python benchmarks/robustness.py --manifest data/librispeech/dev.jsonl --bundle exp/ft/$arm/bundle --no-pocketsphinx \
    --conditions clean pink-10 babble-10 room-0.6 telephone digits --fsdd ../shared/data/fsdd --out exp/bench/robustness-$arm
done
#!/bin/bash
set -e
arm=soup
.venv/bin/asr bundle exp/ft/$arm/final.pt --decoding exp/ft/shipped-decoding.json --out exp/ft/$arm/bundle > /dev/null
.venv/bin/asr evaluate --manifest data/librispeech/dev.jsonl --bundle exp/ft/$arm/bundle --out exp/ft/$arm/dev --workers 2 --quiet 2>&1 | grep '"wer"'
.venv/bin/python benchmarks/robustness.py --manifest data/librispeech/dev.jsonl --bundle exp/ft/$arm/bundle --no-pocketsphinx \
    --conditions clean pink-10 babble-10 room-0.6 telephone digits --fsdd ../shared/data/fsdd --out exp/bench/robustness-$arm
#!/bin/bash
set -e
arm=soup2
.venv/bin/asr bundle exp/ft/$arm/final.pt --decoding exp/ft/shipped-decoding.json --out exp/ft/$arm/bundle > /dev/null
.venv/bin/asr evaluate --manifest data/librispeech/dev.jsonl --bundle exp/ft/$arm/bundle --out exp/ft/$arm/dev --workers 2 --quiet 2>&1 | grep '"wer"'
.venv/bin/python benchmarks/robustness.py --manifest data/librispeech/dev.jsonl --bundle exp/ft/$arm/bundle --no-pocketsphinx \
    --conditions clean pink-10 babble-10 room-0.6 telephone digits --fsdd ../shared/data/fsdd --out exp/bench/robustness-$arm
