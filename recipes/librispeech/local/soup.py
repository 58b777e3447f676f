"""Average the weights of checkpoints of one model (a "model soup", Wortsman et al. 2022):

    python recipes/librispeech/local/soup.py A.pt B.pt [...] --out SOUP.pt

The soup keeps the first checkpoint's config and training record, and notes what it averaged.
For a fine-tune and the model it started from, which lie in one basin, the average keeps much of
what the fine-tune learnt (the augmented conditions) and what the start knew (clean speech).
"""

import argparse

from asr.io import atomic_torch_save
from asr.model import average_checkpoints, load_checkpoint, load_model

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("checkpoints", nargs="+")
ap.add_argument("--out", required=True)
args = ap.parse_args()
first = load_checkpoint(args.checkpoints[0])
first["model"] = average_checkpoints(args.checkpoints)
# what went in, with each one's training config and epoch where its checkpoint holds them
# (`asr bundle` records this in bundle.json's produced_by)
first["soup_of"] = [{"checkpoint": p, **{k: c[k] for k in ("epoch", "training") if k in c}}
                    for p, c in ((p, load_checkpoint(p)) for p in args.checkpoints)]
for key in ("dev", "training", "epoch"):  # the first's are not the soup's
    first.pop(key, None)
atomic_torch_save(first, args.out)
load_model(args.out)  # it loads as a model
print(f"{args.out}: the average of {', '.join(args.checkpoints)}")
