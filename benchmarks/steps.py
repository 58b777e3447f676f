"""Shared by the training benchmarks: a config's cached training examples, and whole training
steps (SpecAugment, forward, both CTC losses, backward, AdamW) timed for several variants.

``alternate`` times the variants on the same batches in one process, taking turns (which one
goes first alternates too), so that a noisy machine slows each alike. ``fresh_processes`` runs
each variant in its own new Python process, one after another, order alternating per round:
that is what a training run sees (its own heap, no other variant's memory to reuse), and it
is the check to make when a variant changes how much memory a step allocates.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Callable

import torch

from asr.data import load_features
from asr.manifest import read_manifest
from asr.plan import bucket_batches
from asr.model import AcousticModel
from asr.train import Example, TrainConfig, make_examples, train_step


def load_examples(config_path: str, overrides: dict | None = None) -> tuple[TrainConfig, list[Example]]:
    """The config and the examples of its training set at speed 1.0 (features from the cache,
    computed if missing), as ``asr train`` builds them; speed-perturbed copies are left out."""
    config = TrainConfig.load(config_path, overrides or {})
    utts = read_manifest(config.train_manifest)
    feats = load_features(utts, config.model.features, f"{config.out_dir}/cache/train_feats.pt", config.feature_workers)
    examples, _ = make_examples(utts, feats, config)
    return config, examples


def training_batches(config: TrainConfig, examples: list[Example], seed: int = 1) -> list[list[Example]]:
    """The epoch's duration-bucketed batches, shuffled by ``seed``."""
    batches = bucket_batches([e.utt.duration for e in examples], config.batch_seconds, shuffle=True, seed=seed)
    return [[examples[i] for i in idx] for idx in batches]


def _take_turns(steps: dict[str, Callable[[list[Example]], None]], batches: list[list[Example]],
                setups: dict[str, Callable[[], None]] | None = None) -> dict[str, float]:
    """Seconds of each ``steps[name](batch)`` over ``batches[1:]`` after an untimed warm-up on
    ``batches[0]``; the variants take turns on every batch, which goes first alternating.
    ``setups[name]()``, if given, runs before each of that variant's steps, off the clock."""
    setups = setups or {}
    for name, step in steps.items():
        setups.get(name, lambda: None)()
        step(batches[0])
    seconds = dict.fromkeys(steps, 0.0)
    for j, batch in enumerate(batches[1:]):
        for name in (list(steps) if j % 2 else list(steps)[::-1]):
            setups.get(name, lambda: None)()
            start = time.perf_counter()
            steps[name](batch)
            seconds[name] += time.perf_counter() - start
    return seconds


def alternate(config: TrainConfig, batches: list[list[Example]], variants: dict[str, Callable[[AcousticModel], None]],
              ) -> dict[str, float]:
    """Seconds of training steps per variant over ``batches[1:]`` (``batches[0]`` warms up); each
    variant's setup is called on the one shared model before each of its steps."""
    torch.manual_seed(0)
    model = AcousticModel(config.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    cpu = torch.device("cpu")
    step = lambda batch: train_step(model, opt, batch, config, cpu)  # noqa: E731
    return _take_turns(dict.fromkeys(variants, step), batches,
                       {name: (lambda setup=setup: setup(model)) for name, setup in variants.items()})


def alternate_configs(configs: dict[str, TrainConfig], batches: list[list[Example]]) -> dict[str, float]:
    """Seconds of training steps over ``batches[1:]`` per config, each with its own model and AdamW,
    taking turns per batch like ``alternate`` (configs that change the model, e.g. its shape)."""
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    steps = {}
    for name, c in configs.items():
        model = AcousticModel(c.model).train()
        opt = torch.optim.AdamW(model.parameters(), lr=c.lr)
        steps[name] = lambda batch, m=model, o=opt, c=c: train_step(m, o, batch, c, cpu)
    return _take_turns(steps, batches)


def time_steps_here(config: TrainConfig, batches: list[list[Example]], setup: Callable[[AcousticModel], None]) -> dict:
    """Seconds of training steps over ``batches[1:]`` in this process (``alternate`` with one
    variant), and its peak RSS (GB)."""
    import resource

    seconds = alternate(config, batches, {"only": setup})["only"]
    return {"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def fresh_processes(script: str, args: list[str], variants: list[str], rounds: int) -> dict[str, list[dict]]:
    """Run ``python script *args --only VARIANT`` once per variant per round, in new processes one
    after another (order alternating by round); each must print one JSON line last."""
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(rounds):
        for v in (variants if r % 2 == 0 else variants[::-1]):
            out = subprocess.run([sys.executable, script, *args, "--only", v], check=True, capture_output=True, text=True)
            results[v].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results
