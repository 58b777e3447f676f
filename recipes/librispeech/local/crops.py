"""Word crops of a training manifest (asr.crops), for conf/finetune-crops.toml:

    python recipes/librispeech/local/crops.py data/librispeech/train-clean-5.jsonl \
        --model exp/librispeech/train-clean-5/soup.pt --out data/librispeech/crops-train-clean-5

Each utterance is aligned by ``--model`` (a checkpoint, or ``--bundle`` a bundle folder; default:
the shipped bundle) and ``--per-utterance`` spans of 1 ... ``--max-words`` words are cut from it into
``OUT/audio/``, listed in ``OUT/crops.jsonl`` (a summary in ``OUT/crops.json``). Rerun, a finished
folder is read back.
"""

import argparse

import asr
from asr.crops import CropConfig, make_crops
from asr.manifest import read_manifest

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("manifest")
ap.add_argument("--model", help="checkpoint whose phone head aligns the transcripts")
ap.add_argument("--bundle", help="or a bundle folder (default: the shipped one)")
ap.add_argument("--per-utterance", type=int, default=CropConfig.per_utterance)
ap.add_argument("--max-words", type=int, default=CropConfig.max_words)
ap.add_argument("--seed", type=int, default=CropConfig.seed)
ap.add_argument("--out", required=True)
args = ap.parse_args()
if args.model and args.bundle:
    ap.error("give --model or --bundle, not both")
crops = make_crops(asr.load(args.model or args.bundle), read_manifest(args.manifest), args.out,
                   CropConfig(args.per_utterance, args.max_words, args.seed))
print(f"{args.out}: {len(crops)} crops, {sum(c.duration for c in crops) / 3600:.2f} h")
