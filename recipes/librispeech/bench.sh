#!/usr/bin/env bash
# Speed and memory figures of RESULTS.md, each benchmark's output kept in recipes/librispeech/results/.
# Run from the repository root after recipes/librispeech/run.sh (it needs data/librispeech/*.jsonl).
# PocketSphinx comes with: pip install -e '.[bench]'
# JEMALLOC=/path/to/libjemalloc.so.2 (Debian/Ubuntu: apt install libjemalloc2) adds runs with that allocator.
set -euo pipefail
out=recipes/librispeech/results
mkdir -p "$out"
config=${1:-recipes/librispeech/conf/train-clean-5.toml}
(lscpu | grep -E "Model name|^CPU\(s\)"; python3 -c "import torch; print('torch', torch.__version__)") > "$out/bench-machine.log"
python3 benchmarks/train_epoch.py "$config" --threads 1 2 --max-batches 40 2>&1 | grep -v "^features" | tee "$out/bench-train-epoch.log"
python3 benchmarks/beam_pruning.py --manifest data/librispeech/dev.jsonl --every 3 \
  --settings 1000:25:none 1000:12:none 1000:12:0.95 500:12:0.95 2000:12:0.95 --main-thread \
  ${JEMALLOC:+--preload "$JEMALLOC"} | tee "$out/bench-beam-pruning.log"
python3 benchmarks/transcribe_rtf.py --manifest data/librispeech/dev.jsonl --threads 1 --workers 0 2 \
  --decoders greedy shipped | tee "$out/bench-transcribe-rtf.log"
python3 benchmarks/batch_transcribe.py --manifest data/librispeech/dev.jsonl --limit 60 \
  --out "$out/batch-vs-pocketsphinx" | tee "$out/bench-batch.log"
python3 benchmarks/batch_transcribe.py --manifest data/librispeech/dev.jsonl --limit 60 --decoder greedy \
  --out "$out/batch-vs-pocketsphinx-greedy" | tee "$out/bench-batch-greedy.log"
if [ -n "${JEMALLOC:-}" ]; then  # both systems with jemalloc
  LD_PRELOAD=$JEMALLOC python3 benchmarks/batch_transcribe.py --manifest data/librispeech/dev.jsonl --limit 60 \
    --out "$out/batch-vs-pocketsphinx-jemalloc" | tee "$out/bench-batch-jemalloc.log"
fi
for workers in 0 2; do
  python3 benchmarks/long_audio_memory.py --manifest data/librispeech/dev.jsonl --minutes 60 --workers $workers
done | tee "$out/bench-long-audio.log"
