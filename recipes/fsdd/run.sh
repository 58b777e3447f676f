#!/usr/bin/env bash
# Free Spoken Digit Dataset, from audio to a bundle that decodes digits with its own tuned search:
# prepare -> split -> train -> word LM -> bundle -> tune on dev -> calibrate on dev -> test.
# Run from the repository root:
#
#   recipes/fsdd/run.sh [FSDD_DIR]     (default: ../shared/data/fsdd; a clone of
#                                       github.com/Jakobovski/free-spoken-digit-dataset works too)
#
# Recordings 0-4 of each digit and speaker are the test set, 5-9 the dev set (it chooses best.pt
# and tunes the decoding), the other 40 train. The result is exp/fsdd/bundle:
#   asr transcribe --bundle exp/fsdd/bundle clip.wav      python: asr.load("exp/fsdd/bundle")
set -euo pipefail
fsdd=${1:-../shared/data/fsdd}
[ -f "$fsdd/SOURCE_manifest.tsv" ] || { echo "usage: recipes/fsdd/run.sh [FSDD_DIR] (holding recordings/ and SOURCE_manifest.tsv; $fsdd has none)" >&2; exit 2; }
asr=${ASR:-$(command -v asr || echo .venv/bin/asr)}  # the README's venv when asr is not on PATH
exp=exp/fsdd
mkdir -p data/fsdd $exp

echo "stage 1: manifests (train / dev / test by recording number)"
$asr prepare folder "$fsdd" --transcripts "$fsdd/SOURCE_manifest.tsv" --out data/fsdd/all.jsonl
python3 - <<'PY'
import json
rows = [json.loads(l) for l in open("data/fsdd/all.jsonl")]
take = lambda r: int(r["id"].rsplit("_", 1)[1])  # 3_jackson_12 -> recording 12
for name, keep in (("test", lambda r: take(r) < 5), ("dev", lambda r: 5 <= take(r) < 10), ("train", lambda r: take(r) >= 10)):
    with open(f"data/fsdd/{name}.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows if keep(r))
PY

echo "stage 2: train"
$asr train recipes/fsdd/conf/fsdd.toml --resume --quiet

echo "stage 3: word LM of the training transcripts (the ten digit words)"
$asr lm build data/fsdd/train.jsonl --order 2 --out $exp/lm.arpa

echo "stage 4: bundle = final.pt + lexicon + LM, tuned and calibrated on dev"
$asr bundle $exp/final.pt --decoder beam --lm $exp/lm.arpa --beam-size 50 --out $exp/bundle
$asr tune --bundle $exp/bundle --manifest data/fsdd/dev.jsonl --lm-weights 0 0.5 1 2 --word-scores 0 \
  --joint-weights 0 0.3 1 --out $exp/tune > $exp/tune.log
$asr calibrate --bundle $exp/bundle --manifest data/fsdd/dev.jsonl --out $exp/calibration > $exp/calibrate.log

echo "stage 5: test set, the bundle's own decoding beside greedy decoding of the same model"
$asr evaluate --bundle $exp/bundle --manifest data/fsdd/test.jsonl --out $exp/test-bundle --quiet > $exp/test-bundle.log
$asr evaluate --bundle $exp/bundle --decoder greedy --head char --manifest data/fsdd/test.jsonl \
  --out $exp/test-greedy --quiet > $exp/test-greedy.log
python3 - $exp <<'PY'
import json, sys
exp = sys.argv[1]
for name in ("bundle", "greedy"):
    s = json.load(open(f"{exp}/test-{name}/summary.json"))
    print(f"test {name:7s} ({s['head']} head, {s['decoder']}): WER {s['wer']:.2%}  CER {s['cer']:.2%}"
          f"  ({s['utterances']} utterances)")
PY
