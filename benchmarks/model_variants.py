"""Training-step time of model variants of a config, side by side on the same batches.

    python benchmarks/model_variants.py recipes/librispeech/conf/train-clean-5.toml --batches 12 \\
        --variant base --variant proj256:model.proj=256 --variant h640:model.hidden=640,model.proj=256

Each variant is ``NAME[:KEY=VALUE,...]`` (config overrides as `asr train --set`), with its own
model and AdamW; the variants take turns on each of the same ``--batches`` training batches
(the first warms up), in the config's threads and precision, so that a noisy machine slows
each alike. Prints parameters, seconds per step and the time relative to the first variant.
"""

from __future__ import annotations

import argparse
import json

import torch

from asr.model import AcousticModel
from asr.train import TrainConfig, parse_overrides
from steps import alternate_configs, load_examples, training_batches


def parse_variant(spec: str) -> tuple[str, dict]:
    name, _, sets = spec.partition(":")
    return name, parse_overrides([s for s in sets.split(",") if s])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--variant", action="append", required=True, help="NAME[:KEY=VALUE,...]")
    ap.add_argument("--batches", type=int, default=12, help="training batches timed per variant (+1 warm-up)")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    base, examples = load_examples(args.config)
    configs = {name: TrainConfig.load(args.config, sets) for name, sets in variants}
    batches = training_batches(base, examples)[: args.batches + 1]
    torch.set_num_threads(base.threads)
    seconds = alternate_configs(configs, batches)
    audio = sum(e.utt.duration for b in batches[1:] for e in b)
    print(f"{args.config}: {len(batches) - 1} batches ({audio:.0f} s of audio), {base.threads} thread(s), "
          f"{base.precision}, taking turns")
    first = next(iter(seconds.values()))
    for (name, sets), s in zip(variants, seconds.values()):
        params = sum(p.numel() for p in AcousticModel(configs[name].model).parameters()) / 1e6
        print(f"{name:12s} {params:5.2f} M params  {s / (len(batches) - 1):.3f} s/step  {s / first:.3f} of the first"
              f"  {json.dumps(sets) if sets else ''}")


if __name__ == "__main__":
    main()
