"""Corpora, manifests and training batches.

A manifest is JSONL, one utterance a line::

    {"id": "1089-134686-0000", "audio": "1089/134686/1089-134686-0000.flac",
     "duration": 10.43, "sample_rate": 16000, "text": "he hoped there would be stew", "speaker": "1089"}

``audio`` may be relative: it is then resolved against the manifest's folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .augment import AugmentConfig, corrupt_randomly
from .features import (FEATURES_VERSION, AudioError, FeatureConfig, audio_info, compute_features, file_features,
                       load_audio, speed_perturb)
from .io import ManifestError, atomic_torch_save, atomic_write_text, is_audio_file, read_jsonl, with_audio, write_jsonl
from .text import normalize

REQUIRED_FIELDS = ("id", "audio", "text")  # duration is read from the file when missing; speaker defaults to "unknown"


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: str  # absolute path
    duration: float  # seconds
    text: str  # normalised: lower-case words separated by single spaces
    speaker: str
    sample_rate: int = 0


def write_manifest(utts: list[Utterance], path: str | Path) -> None:
    """Write ``utts`` as JSONL; audio paths under the manifest's folder are stored relative to it."""
    path = Path(path)
    base = path.parent.resolve()
    lines = []
    for u in utts:
        audio = Path(u.audio).resolve()
        try:
            audio = audio.relative_to(base)
        except ValueError:
            pass  # outside the manifest's folder: stored absolute, since a relative path is read against that folder
        record = dict(id=u.id, audio=str(audio), duration=round(u.duration, 3), sample_rate=u.sample_rate,
                      text=u.text, speaker=u.speaker)
        lines.append(record)
    write_jsonl(path, lines)


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read and check a JSONL manifest; errors name the file and line."""
    base = Path(path).parent
    utts, seen = [], set()
    for lineno, r in read_jsonl(path, (), ManifestError, "manifest"):
        r = with_audio(r)
        missing = [k for k in REQUIRED_FIELDS if k not in r]
        if missing:
            raise ManifestError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}"
                                + (" (the audio file as 'audio' or 'path')" if "audio" in missing else ""))
        if r["id"] in seen:
            raise ManifestError(f"{path}:{lineno}: duplicate id {r['id']!r}")
        seen.add(r["id"])
        audio = Path(r["audio"])
        if not audio.is_absolute():
            audio = base / audio
        if "duration" in r:
            duration, rate = float(r["duration"]), int(r.get("sample_rate", 0))
        else:
            try:
                duration, rate = audio_info(audio)
            except AudioError:
                duration, rate = 0.0, 0  # reading the audio later reports the problem, naming the file
        utts.append(Utterance(str(r["id"]), str(audio), duration, normalize(r["text"]),
                              str(r.get("speaker", "unknown")), rate))
    return utts


def _probe(audio: Path, problems: list[str]) -> tuple[float, int] | None:
    """Duration and rate of ``audio``, or ``None`` with the reason added to ``problems``."""
    try:
        return audio_info(audio)
    except AudioError as e:
        problems.append(str(e))
        return None


@dataclass
class PrepareReport:
    utterances: int
    hours: float
    problems: list[str]


def prepare_librispeech(corpus: str | Path, subset: str, out: str | Path) -> PrepareReport:
    """Manifest for ``corpus/subset/<speaker>/<chapter>/*.trans.txt`` with any soundfile-readable audio.

    Unreadable audio, audio without a transcript line and transcript lines without audio
    are listed in the report's ``problems`` and left out of the manifest.
    """
    root = Path(corpus) / subset
    if not root.is_dir():
        raise ManifestError(f"{root}: LibriSpeech subset folder not found")
    utts, problems = [], []
    for trans in sorted(root.glob("*/*/*.trans.txt")):
        audio_by_id = {p.stem: p for p in trans.parent.iterdir() if is_audio_file(p)}
        texts = {}
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, text = line.partition(" ")
            texts[uid] = text
            if uid not in audio_by_id:
                problems.append(f"{trans}:{lineno}: no audio file for {uid}")
        for uid, audio in sorted(audio_by_id.items()):
            if uid not in texts:
                problems.append(f"{audio}: no transcript in {trans.name}")
                continue
            probed = _probe(audio, problems)
            if probed is None:
                continue
            duration, rate = probed
            utts.append(Utterance(uid, str(audio), duration, normalize(texts[uid]), uid.split("-")[0], rate))
    if not utts:
        raise ManifestError(f"{root}: no utterances found (expected <speaker>/<chapter>/*.trans.txt)")
    write_manifest(utts, out)
    return PrepareReport(len(utts), sum(u.duration for u in utts) / 3600, problems)


def prepare_folder(audio_dir: str | Path, transcripts: str | Path, out: str | Path) -> PrepareReport:
    """Manifest for a folder of audio plus a transcript TSV.

    Without a header the columns are ``path<TAB>text[<TAB>speaker]``. A first line that
    names a ``path`` column is a header: columns are then found by name (``path``,
    ``text`` or ``transcript``, optional ``speaker`` and ``id``/``utt_id``). ``path`` is
    relative to ``audio_dir``; the id defaults to the file name without extension and the
    speaker to ``unknown``.
    """
    audio_dir, transcripts = Path(audio_dir), Path(transcripts)
    if not transcripts.is_file():
        raise ManifestError(f"{transcripts}: transcript file not found")
    lines = transcripts.read_text(encoding="utf-8").splitlines()
    columns = {"path": 0, "text": 1, "speaker": 2}
    first = 0
    if lines and "path" in lines[0].lower().split("\t"):
        header = [h.strip().lower() for h in lines[0].split("\t")]
        columns = {name: header.index(alias) for name, aliases in
                   {"path": ["path"], "text": ["text", "transcript"], "speaker": ["speaker"], "id": ["id", "utt_id"]}.items()
                   for alias in aliases if alias in header}
        if "text" not in columns:
            raise ManifestError(f"{transcripts}:1: header has no 'text' or 'transcript' column")
        first = 1
    utts, problems = [], []
    for lineno, line in enumerate(lines[first:], first + 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        get = lambda name: cols[columns[name]].strip() if name in columns and columns[name] < len(cols) else ""  # noqa: E731
        if not get("path") or len(cols) < 2:
            problems.append(f"{transcripts}:{lineno}: expected 'path<TAB>text[<TAB>speaker]'")
            continue
        audio = audio_dir / get("path")
        if not audio.is_file():
            problems.append(f"{audio}: file not found (listed at {transcripts}:{lineno})")
            continue
        probed = _probe(audio, problems)
        if probed is None:
            continue
        duration, rate = probed
        utts.append(Utterance(get("id") or audio.stem, str(audio), duration, normalize(get("text")),
                              get("speaker") or "unknown", rate))
    if not utts:
        raise ManifestError(f"{transcripts}: no usable utterances")
    write_manifest(utts, out)
    return PrepareReport(len(utts), sum(u.duration for u in utts) / 3600, problems)


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
            x, _ = corrupt_randomly(speed_perturb(load_audio(path), speed), augment, seed, babble_audio)
            feats = compute_features(x, config)
        return feats.to(torch.float16)  # half the memory; CMVN output is ~N(0, 1)
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


def bucket_batches(durations: list[float], max_seconds: float, shuffle: bool, seed: int = 0,
                   bucket_width: int = 64) -> list[list[int]]:
    """Group utterance indices into batches of similar duration holding at most ``max_seconds`` of audio.

    Indices are sorted by duration (with shuffling inside windows of ``bucket_width`` so
    epochs differ), cut into batches, and the batch order shuffled. Padding stays small,
    which on the CPU is much faster than PackedSequence.
    """
    rng = random.Random(seed)
    order = sorted(range(len(durations)), key=lambda i: durations[i])
    if shuffle:
        for start in range(0, len(order), bucket_width):
            window = order[start : start + bucket_width]
            rng.shuffle(window)
            order[start : start + bucket_width] = sorted(window, key=lambda i: durations[i] + rng.random() * 0.5)
    batches, batch, longest = [], [], 0.0
    for i in order:
        longest_if_added = max(longest, durations[i])
        if batch and longest_if_added * (len(batch) + 1) > max_seconds:
            batches.append(batch)
            batch, longest_if_added = [], durations[i]
        batch.append(i)
        longest = longest_if_added
    if batch:
        batches.append(batch)
    if shuffle:
        rng.shuffle(batches)
    return batches


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
