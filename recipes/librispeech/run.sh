#!/usr/bin/env bash
# LibriSpeech recipe: prepare -> train -> evaluate. Run from the repository root:
#
#   recipes/librispeech/run.sh CORPUS_DIR [CONFIG] [START_STAGE] [STOP_STAGE]
#
# CORPUS_DIR holds LibriSpeech subsets (train-clean-5/, test-clean/, ...), with any audio
# soundfile reads. CONFIG defaults to conf/train-clean-5.toml (2-core CPU). Each stage can be
# rerun alone; training resumes from the last checkpoint if it was interrupted.
set -euo pipefail

corpus=${1:?usage: run.sh CORPUS_DIR [CONFIG] [START_STAGE] [STOP_STAGE]}
config=${2:-recipes/librispeech/conf/train-clean-5.toml}
start=${3:-1}
stop=${4:-3}
asr=${ASR:-asr}

# Which manifests the config wants and where its experiment lives.
read -r train_manifest dev_manifest out_dir < <(python3 - "$config" <<'PY'
import sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))
print(c["train_manifest"], c["dev_manifest"], c["out_dir"])
PY
)

if [ "$start" -le 1 ] && [ "$stop" -ge 1 ]; then
  echo "stage 1: manifests"
  # train-clean-100 + train-clean-360 + train-other-500 for 960 h: see conf/train-960.toml
  for manifest in $train_manifest $dev_manifest; do
    subset=$(basename "$manifest" .jsonl)
    # The dev manifest is named dev.jsonl: built from test-clean (here: its 10 development speakers)
    [ "$subset" = dev ] && subset=test-clean
    if [ ! -f "$manifest" ]; then
      if [[ "$subset" == *+* ]]; then
        parts=()
        for s in ${subset//+/ }; do
          $asr prepare librispeech "$corpus" --subset "$s" --out "$(dirname "$manifest")/$s.jsonl"
          parts+=("$(dirname "$manifest")/$s.jsonl")
        done
        cat "${parts[@]}" > "$manifest.tmp" && mv "$manifest.tmp" "$manifest"
      else
        $asr prepare librispeech "$corpus" --subset "$subset" --out "$manifest"
      fi
    fi
  done
fi

if [ "$start" -le 2 ] && [ "$stop" -ge 2 ]; then
  echo "stage 2: train ($config -> $out_dir)"
  $asr train "$config" --resume
fi

if [ "$start" -le 3 ] && [ "$stop" -ge 3 ]; then
  echo "stage 3: evaluate best.pt on $dev_manifest (greedy, both heads)"
  for head in char phone; do
    $asr evaluate --manifest "$dev_manifest" --model "$out_dir/best.pt" --head "$head" --out "$out_dir/eval-dev-$head" --workers 2
  done
fi
