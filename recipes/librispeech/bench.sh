#!/usr/bin/env bash
# Speed and memory figures of RESULTS.md, each benchmark's output kept in recipes/librispeech/results/.
# Run from the repository root after recipes/librispeech/run.sh (it needs data/librispeech/*.jsonl).
# PocketSphinx comes with: pip install -e '.[bench]'
set -euo pipefail
out=recipes/librispeech/results
mkdir -p "$out"
config=${1:-recipes/librispeech/conf/train-clean-5.toml}
(lscpu | grep -E "Model name|^CPU\(s\)"; python3 -c "import torch; print('torch', torch.__version__)") > "$out/bench-machine.log"
python3 benchmarks/train_epoch.py "$config" --threads 1 2 --max-batches 40 2>&1 | grep -v "^features" | tee "$out/bench-train-epoch.log"
python3 benchmarks/transcribe_rtf.py --manifest data/librispeech/dev.jsonl --threads 1 --decoders greedy shipped | tee "$out/bench-transcribe-rtf.log"
python3 benchmarks/batch_transcribe.py --manifest data/librispeech/dev.jsonl --limit 60 --workers 1 \
  --out "$out/batch-vs-pocketsphinx" | tee "$out/bench-batch.log"
python3 benchmarks/long_audio_memory.py --manifest data/librispeech/dev.jsonl --minutes 60 | tee "$out/bench-long-audio.log"
