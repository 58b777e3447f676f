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

from asr.data import bucket_batches, load_features, read_manifest
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


def alternate(config: TrainConfig, batches: list[list[Example]], variants: dict[str, Callable[[AcousticModel], None]],
              ) -> dict[str, float]:
    """Seconds of training steps per variant over ``batches[1:]`` (``batches[0]`` warms up); each
    variant's setup is called on the one shared model before each of its steps."""
    torch.manual_seed(0)
    model = AcousticModel(config.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    cpu = torch.device("cpu")
    for setup in variants.values():
        setup(model)
        train_step(model, opt, batches[0], config, cpu)
    seconds = dict.fromkeys(variants, 0.0)
    for j, batch in enumerate(batches[1:]):
        for name in (list(variants) if j % 2 else list(variants)[::-1]):
            variants[name](model)
            start = time.perf_counter()
            train_step(model, opt, batch, config, cpu)
            seconds[name] += time.perf_counter() - start
    return seconds


def alternate_configs(configs: dict[str, TrainConfig], batches: list[list[Example]]) -> dict[str, float]:
    """Seconds of training steps over ``batches[1:]`` per config, each with its own model and AdamW,
    taking turns per batch like ``alternate`` (configs that change the model, e.g. its shape)."""
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    models = {name: AcousticModel(c.model).train() for name, c in configs.items()}
    opts = {name: torch.optim.AdamW(m.parameters(), lr=configs[name].lr) for name, m in models.items()}
    for name in configs:
        train_step(models[name], opts[name], batches[0], configs[name], cpu)
    seconds = dict.fromkeys(configs, 0.0)
    for j, batch in enumerate(batches[1:]):
        for name in (list(configs) if j % 2 else list(configs)[::-1]):
            start = time.perf_counter()
            train_step(models[name], opts[name], batch, configs[name], cpu)
            seconds[name] += time.perf_counter() - start
    return seconds


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
