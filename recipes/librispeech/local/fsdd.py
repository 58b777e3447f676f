"""FSDD's training recordings as a manifest for a fine-tune of the LibriSpeech model (issue 40):

    python recipes/librispeech/local/fsdd.py FSDD_DIR --out data/fsdd/train-heard.jsonl [--leave-out george]

FSDD (the Free Spoken Digit Dataset: 3000 recordings, 8 kHz, six speakers, 50 of each digit
each) is split by recording number as recipes/fsdd does: 0-4 of each digit and speaker are the
test split (what benchmarks/grammar_vs_pocketsphinx.py measures), 5-9 the dev split, 10-49
training. This writes the training split without the speakers named by --leave-out, whose
recordings are then never heard: the benchmark's figure for them is one for new speakers.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TRAIN_FROM = 10  # recordings 0-4: test, 5-9: dev (recipes/fsdd/run.sh)

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("fsdd", type=Path, help="FSDD folder: recordings/ and SOURCE_manifest.tsv")
ap.add_argument("--out", type=Path, required=True)
ap.add_argument("--leave-out", nargs="*", default=["george"], metavar="SPEAKER",
                help="speakers whose recordings are not trained on (default: george)")
args = ap.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    every = Path(tmp) / "all.jsonl"
    asr = [sys.executable, "-m", "asr"]
    subprocess.run([*asr, "prepare", "folder", str(args.fsdd), "--transcripts", str(args.fsdd / "SOURCE_manifest.tsv"),
                    "--out", str(every)], check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in every.read_text(encoding="utf-8").splitlines() if line.strip()]
recording = lambda row: int(row["id"].rsplit("_", 1)[1])  # 3_jackson_12 -> 12
keep = [r for r in rows if recording(r) >= TRAIN_FROM and r["speaker"] not in args.leave_out]
args.out.parent.mkdir(parents=True, exist_ok=True)
tmp = args.out.with_name(args.out.name + ".tmp")
tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
os.replace(tmp, args.out)
speakers = sorted({r["speaker"] for r in keep})
print(f"{args.out}: {len(keep)} recordings ({sum(r['duration'] for r in keep) / 3600:.2f} h) of {', '.join(speakers)}; "
      f"left out: {', '.join(args.leave_out) or 'none'}")
