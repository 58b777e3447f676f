"""FSDD's training recordings as a manifest for a fine-tune of the LibriSpeech model (issue 40):

    python recipes/librispeech/local/fsdd.py FSDD_DIR --out data/fsdd/train-heard.jsonl [--leave-out george]

FSDD (the Free Spoken Digit Dataset: 3000 recordings, 8 kHz, six speakers, 50 of each digit
each) is split by recording number as recipes/fsdd does: 0-4 of each digit and speaker are the
test split (what benchmarks/grammar_vs_pocketsphinx.py measures), 5-9 the dev split, 10-49
training. This writes the training split without the speakers named by --leave-out, whose
recordings are then never heard: the benchmark's figure for them is one for new speakers.
"""

import argparse
import tempfile
from pathlib import Path

from asr.manifest import prepare_folder, read_manifest, write_manifest

TRAIN_FROM = 10  # recordings 0-4: test, 5-9: dev (recipes/fsdd/run.sh)

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("fsdd", type=Path, help="FSDD folder: recordings/ and SOURCE_manifest.tsv")
ap.add_argument("--out", type=Path, required=True)
ap.add_argument("--leave-out", nargs="*", default=["george"], metavar="SPEAKER",
                help="speakers whose recordings are not trained on (default: george)")
args = ap.parse_args()

with tempfile.TemporaryDirectory() as tmp:  # `asr prepare folder`, then the split
    prepare_folder(args.fsdd, args.fsdd / "SOURCE_manifest.tsv", Path(tmp) / "all.jsonl")
    utts = read_manifest(Path(tmp) / "all.jsonl")
recording = lambda u: int(u.id.rsplit("_", 1)[1])  # 3_jackson_12 -> 12
keep = [u for u in utts if recording(u) >= TRAIN_FROM and u.speaker not in args.leave_out]
args.out.parent.mkdir(parents=True, exist_ok=True)
write_manifest(keep, args.out)
speakers = sorted({u.speaker for u in keep})
print(f"{args.out}: {len(keep)} recordings ({sum(u.duration for u in keep) / 3600:.2f} h) of {', '.join(speakers)}; "
      f"left out: {', '.join(args.leave_out) or 'none'}")
