"""Training data: features cached in memory or in shards, duration-bucketed batches, SpecAugment."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from .augment import AugmentConfig, corrupt_randomly
from .features import (FEATURES_VERSION, AudioError, FeatureConfig, compute_features, file_features,
                       load_audio, speed_perturb)
from .io import atomic_torch_save, atomic_write_text, write_jsonl
from .manifest import ManifestError, Utterance
from .plan import bucket_batches


# ---------------------------------------------------------------------------------------------
# Features cached in memory for training


Corruption = tuple  # (AugmentConfig, seed, babble files): one utterance's corrupted copy (asr.augment)


def _features_worker(args: tuple[str, FeatureConfig, float, bool, Corruption | None]) -> torch.Tensor | AudioError:
    torch.set_num_threads(1)
    path, config, speed, keep_errors, corruption = args
    try:
        if corruption is None:
            feats = file_features(path, config, speed)
        else:
            augment, seed, babble_audio = corruption
            x, _ = corrupt_randomly(torch.from_numpy(speed_perturb(load_audio(path), speed)), augment, seed,
                                    babble_audio)
            feats = compute_features(x.numpy(), config)
        return torch.from_numpy(feats).to(torch.float16)  # half the memory; CMVN output is ~N(0, 1)
    except AudioError as e:
        if keep_errors:
            return e
        raise


def corruptions(utts: list[Utterance], augment: AugmentConfig, copy: int, speed: float) -> list[Corruption]:
    """What :func:`_features_worker` needs to make copy ``copy`` (1, 2, ...) of ``utts`` at
    ``speed``: a seed per utterance from (augment.seed, copy, speed, id), and 20 other training
    files, of other speakers where there are, to draw babble from."""
    rng = np.random.default_rng(augment.seed)
    out = []
    for u in utts:
        seed = int.from_bytes(hashlib.sha256(f"{augment.seed}/{copy}/{speed}/{u.id}".encode()).digest()[:4], "little")
        others = [utts[i] for i in rng.choice(len(utts), min(len(utts), 40), replace=False) if utts[i].id != u.id]
        others = [o for o in others if o.speaker != u.speaker] or others
        out.append((augment, seed, [o.audio for o in others[:20]]))
    return out


def _compute_features(utts: list[Utterance], config: FeatureConfig, speed: float, workers: int, progress: bool,
                      desc: str, keep_errors: bool = False, corrupt: list[Corruption] | None = None):
    """Features of each utterance in order, computed in ``workers`` processes (1: in this one);
    with ``keep_errors`` an unusable file gives its :class:`AudioError` in its place; with
    ``corrupt`` (one :data:`Corruption` per utterance) of the corrupted audio."""
    from tqdm import tqdm

    jobs = [(u.audio, config, speed, keep_errors, c) for u, c in zip(utts, corrupt or [None] * len(utts))]
    if workers <= 1:
        yield from map(_features_worker, tqdm(jobs, desc=desc, disable=not progress))
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        yield from tqdm(pool.imap(_features_worker, jobs, chunksize=4), total=len(jobs), desc=desc,
                        disable=not progress)


def load_features(utts: list[Utterance], config: FeatureConfig, cache: str | Path | None = None,
                  workers: int = 1, progress: bool = True, speed: float = 1.0,
                  keep_errors: bool = False, augment: tuple[AugmentConfig, int] | None = None) -> list[torch.Tensor]:
    """Features ``(frames, dim)`` float16 for every utterance played ``speed`` times as fast, from ``cache`` if it matches.

    The cache is keyed by the utterance ids, audio paths, feature config, speed, corruption and
    FEATURES_VERSION, and written atomically. ``augment`` = ``(config, copy)``: of corrupted copy
    number ``copy`` (see :func:`corruptions`).
    An unusable audio file raises its :class:`AudioError`, or with ``keep_errors`` (no cache)
    stands in the list in place of its features, for the caller to report.
    """
    if keep_errors and cache is not None:
        raise ValueError("keep_errors works without a cache")
    key = json.dumps([[(u.id, u.audio) for u in utts], config.key(), FEATURES_VERSION] + ([speed] if speed != 1.0 else [])
                     + ([dataclasses.asdict(augment[0]), augment[1]] if augment else []))
    if cache is not None and Path(cache).is_file():
        saved = torch.load(cache, weights_only=True)
        if saved.get("key") == key:
            return saved["features"]
    corrupt = corruptions(utts, augment[0], augment[1], speed) if augment else None
    feats = list(_compute_features(utts, config, speed, workers, progress,
                                   f"features (copy {augment[1]})" if augment else "features", keep_errors, corrupt))
    if cache is not None:
        atomic_torch_save({"key": key, "features": feats}, cache)
    return feats


# ---------------------------------------------------------------------------------------------
# Features on disk for sets that do not fit in RAM

SHARD_BYTES = 1 << 30  # 1 GiB of float16 features per shard file: ~3.6 h of 40-dim MFCC at 100 frames/s


def _features_key(utts: list[Utterance], config: FeatureConfig, speed: float,
                  augment: tuple[AugmentConfig, int] | None = None) -> str:
    digest = hashlib.sha256(json.dumps([(u.id, u.audio) for u in utts]).encode()).hexdigest()
    key = {"utterances": digest, "features": config.key(), "speed": speed, "version": FEATURES_VERSION}
    if augment:
        key["augment"] = [dataclasses.asdict(augment[0]), augment[1]]
    return json.dumps(key, sort_keys=True)


def write_feature_shards(utts: list[Utterance], config: FeatureConfig, out: str | Path, workers: int = 1,
                         speed: float = 1.0, progress: bool = True,
                         augment: tuple[AugmentConfig, int] | None = None) -> Path:
    """Compute the features of ``utts`` (played ``speed`` times as fast) into float16 shards on disk.

    ``out`` gets ``shard-00000.f16``... (raw float16 ``(frames, dim)`` rows, utterance after
    utterance) and ``index.jsonl`` (``id``, ``shard``, ``offset`` row, ``frames``) plus
    ``meta.json``; ``workers`` processes compute, this one writes, so memory holds a few
    utterances at a time. ``meta.json``, holding the key of manifest, feature config and
    speed, is written last and atomically: a folder whose key matches is complete and is left
    as it is (rerunning after a crash starts over). ``augment``: of a corrupted copy, as for
    :func:`load_features`.
    """
    out = Path(out)
    key = _features_key(utts, config, speed, augment)
    meta_path = out / "meta.json"
    if (out / "index.jsonl").is_file() and meta_path.is_file() and json.loads(meta_path.read_text())["key"] == key:
        return out
    out.mkdir(parents=True, exist_ok=True)
    corrupt = corruptions(utts, augment[0], augment[1], speed) if augment else None
    results = _compute_features(utts, config, speed, workers, progress,
                                f"features (speed {speed}{f', copy {augment[1]}' if augment else ''})", corrupt=corrupt)
    index, shard, offset, f = [], 0, 0, None
    try:
        for u, feats in zip(utts, results):
            if f is None or offset * config.dim * 2 >= SHARD_BYTES:
                if f is not None:
                    f.close()
                    shard += 1
                f, offset = open(out / f"shard-{shard:05d}.f16", "wb"), 0
            f.write(feats.numpy().astype("<f2").tobytes())
            index.append({"id": u.id, "shard": shard, "offset": offset, "frames": int(feats.shape[0])})
            offset += feats.shape[0]
    finally:
        if f is not None:
            f.close()
        results.close()  # stops the worker pool, also after an error
    write_jsonl(out / "index.jsonl", index)
    # Last: meta.json's key marks the folder complete, so a crash before it (with another
    # run's index.jsonl still there) never passes for finished shards.
    atomic_write_text(meta_path, json.dumps({"key": key, "dim": config.dim, "dtype": "float16"}) + "\n")
    return out


class FeatureShards:
    """Features written by :func:`write_feature_shards`, each read from disk when asked for.

    ``shards[i]`` is utterance ``i``'s ``(frames, dim)`` float16 tensor, read with one
    positioned read: nothing stays in memory, so training on 960 h needs the RAM of the
    batches in flight, not of the corpus. ``frames(i)`` comes from the index without reading.
    """

    def __init__(self, folder: str | Path, utts: list[Utterance], config: FeatureConfig, speed: float = 1.0,
                 augment: tuple[AugmentConfig, int] | None = None):
        self.folder = Path(folder)
        meta_path, index_path = self.folder / "meta.json", self.folder / "index.jsonl"
        if not index_path.is_file() or not meta_path.is_file():
            raise ManifestError(f"{self.folder}: no feature shards (write them with `asr features CONFIG`)")
        if json.loads(meta_path.read_text())["key"] != _features_key(utts, config, speed, augment):
            raise ManifestError(f"{self.folder}: the feature shards are of another manifest or feature "
                                f"config, or of an older feature computation (rerun `asr features CONFIG`)")
        self.index = [json.loads(line) for line in index_path.read_text().splitlines()]
        self.dim = config.dim

    def __len__(self) -> int:
        return len(self.index)

    def frames(self, i: int) -> int:
        return self.index[i]["frames"]

    def __getitem__(self, i: int) -> torch.Tensor:
        r = self.index[i]
        data = np.fromfile(self.folder / f"shard-{r['shard']:05d}.f16", dtype="<f2", count=r["frames"] * self.dim,
                           offset=r["offset"] * self.dim * 2)
        return torch.from_numpy(data.reshape(r["frames"], self.dim))


class ShardedFeature:
    """A stand-in for one utterance's features in :class:`FeatureShards`: its shape now, its values on ``load()``."""

    __slots__ = ("shards", "i")

    def __init__(self, shards: FeatureShards, i: int):
        self.shards, self.i = shards, i

    @property
    def shape(self) -> tuple[int, int]:
        return (self.shards.frames(self.i), self.shards.dim)

    def load(self) -> torch.Tensor:
        return self.shards[self.i]


def split_batch(batch: list[int], world_size: int) -> list[list[int]]:
    """Deal one global batch out to ``world_size`` ranks: rank ``r`` gets items ``r, r + W, ...``.

    The batch is sorted by duration, so every rank gets utterances of about the same length. A
    batch with fewer items than ranks (one very long utterance) repeats its items, so that no
    rank is left without work; every rank always gets exactly one part.
    """
    if len(batch) < world_size:
        batch = [batch[i % len(batch)] for i in range(world_size)]
    return [batch[r::world_size] for r in range(world_size)]


class BucketingSampler:
    """Duration-bucketed batches for one rank of a (possibly distributed) training run.

    Each epoch, the global batches of :func:`bucket_batches` (``batch_seconds`` of audio each,
    shuffled with the seed ``seed + epoch``, so the same on every rank) are dealt out by
    :func:`split_batch`. Hence every rank gets the same number of batches (uneven counts hang
    DDP), every utterance is used exactly once per epoch across all ranks (apart from the
    repeats of :attr:`repeated`), and the global batch (the audio per optimizer step) does not
    depend on the number of ranks: a run resumed with another world size takes the same steps.
    ``set_epoch(epoch, start)`` skips the first ``start`` batches: the position of a resumed epoch.

    Why not lhotse's ``DynamicBucketingSampler``: it needs lhotse's Cut manifests, and it
    equalises ranks by dropping or duplicating batches at the end of an epoch, while dealing out
    each global batch keeps both the counts and the global batch exact by construction.
    """

    def __init__(self, durations: list[float], batch_seconds: float, world_size: int = 1, rank: int = 0,
                 seed: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.durations, self.batch_seconds = durations, batch_seconds
        self.world_size, self.rank, self.seed = world_size, rank, seed
        self.set_epoch(1)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start
        self.batches = bucket_batches(self.durations, self.batch_seconds, shuffle=True, seed=self.seed + epoch)

    @property
    def repeated(self) -> int:
        """Items repeated this epoch so that small global batches cover every rank."""
        return sum(max(0, self.world_size - len(b)) for b in self.batches)

    def global_batch(self, i: int) -> list[int]:
        """The ``i``-th global batch of the epoch (counted from the start of the epoch), as dealt out."""
        return [j for part in split_batch(self.batches[i], self.world_size) for j in part]

    def __len__(self) -> int:
        return len(self.batches) - self.start

    def __iter__(self):
        for batch in self.batches[self.start:]:
            yield split_batch(batch, self.world_size)[self.rank]


def pad_features(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of ``(T_i, D)`` -> ``(B, T_max, D)`` float32 padded with zeros, and lengths ``(B,)``."""
    lengths = torch.tensor([f.shape[0] for f in feats])
    return torch.nn.utils.rnn.pad_sequence([f.float() for f in feats], batch_first=True), lengths


def spec_augment(feats: torch.Tensor, lengths: torch.Tensor, freq_masks: int, freq_width: int,
                 time_masks: int, time_ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) without time warping, on ``(B, T, D)``, masking with zeros (the mean).

    Each utterance gets ``freq_masks`` bands of up to ``freq_width`` coefficients and
    ``time_masks`` spans of up to ``time_ratio`` of its own length.
    """
    out = feats.clone()
    B, T, D = feats.shape
    for b in range(B):
        n = int(lengths[b])
        for _ in range(freq_masks):
            w = int(torch.randint(0, freq_width + 1, (1,), generator=generator))
            f0 = int(torch.randint(0, max(1, D - w), (1,), generator=generator))
            out[b, :, f0 : f0 + w] = 0
        max_w = max(1, int(n * time_ratio))
        for _ in range(time_masks):
            w = int(torch.randint(0, max_w + 1, (1,), generator=generator))
            t0 = int(torch.randint(0, max(1, n - w), (1,), generator=generator))
            out[b, t0 : t0 + w, :] = 0
    return out
