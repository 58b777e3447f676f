#!/usr/bin/env bash
# Free Spoken Digit Dataset: prepare -> split (recordings 0-4 of each digit and speaker are the test set)
# -> train -> evaluate. Run from the repository root:  recipes/fsdd/run.sh FSDD_DIR
set -euo pipefail
fsdd=${1:?usage: run.sh FSDD_DIR (holding recordings/ and SOURCE_manifest.tsv)}
asr=${ASR:-asr}
mkdir -p data/fsdd
$asr prepare folder "$fsdd" --transcripts "$fsdd/SOURCE_manifest.tsv" --out data/fsdd/all.jsonl
python3 - <<'PY'
import json
rows = [json.loads(l) for l in open("data/fsdd/all.jsonl")]
test = lambda r: int(r["id"].rsplit("_", 1)[1]) < 5
for name, keep in (("train", lambda r: not test(r)), ("test", test)):
    with open(f"data/fsdd/{name}.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows if keep(r))
PY
$asr train recipes/fsdd/conf/fsdd.toml --resume
$asr evaluate --manifest data/fsdd/test.jsonl --model exp/fsdd/last.pt --out exp/fsdd/eval-test
