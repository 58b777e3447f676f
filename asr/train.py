"""Training: two CTC losses (characters and phones) over a vanilla RNN, with dev scoring each epoch."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from .augment import AugmentConfig
from .data import (BucketingSampler, FeatureShards, ShardedFeature, Utterance, load_features, pad_features,
                   spec_augment, write_feature_shards)
from .manifest import read_manifest
from .decode import recognize
from .io import atomic_write_text, remove_stale_temporaries
from .errors import ConfigError
from .features import FeatureConfig
from .metrics import score_heads
from .model import (AcousticModel, ModelConfig, average_checkpoints, export, load_checkpoint, load_model,
                    save_checkpoint)
from .text import CHAR_VOCAB, PHONE_VOCAB, chars_to_ids, load_lexicon


@dataclass(frozen=True)
class SpecAugmentConfig:
    freq_masks: int = 2
    freq_width: int = 8  # coefficients
    time_masks: int = 2
    time_ratio: float = 0.05  # each time mask covers at most 5 % of the utterance


@dataclass(frozen=True)
class TrainConfig:
    train_manifest: str
    out_dir: str
    extra_manifests: tuple[str, ...] = ()  # more training utterances, read after train_manifest (e.g. asr.crops' word crops)
    dev_manifest: str | None = None  # None: no dev scores; best.pt is the epoch of lowest training loss
    model: ModelConfig = ModelConfig()
    spec_augment: SpecAugmentConfig | None = SpecAugmentConfig()
    epochs: int = 30
    batch_seconds: float = 240.0  # audio per batch, padding included
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 300
    final_lr_ratio: float = 0.05  # cosine decay ends at lr * this
    clip_norm: float = 5.0
    char_weight: float = 0.5  # loss = char_weight * CTC(char) + (1 - char_weight) * CTC(phone)
    inter_weight: float = 0.3  # with model.inter_layer, CTC(phone) above is (1 - w) CTC(top) + w CTC(inter_layer)
    threads: int = 1  # torch CPU threads; pick on purpose: oversubscribed cores slow RNNs ~10x
    precision: str = "fp32"  # "fp32" or "bf16": autocast of the network (CPU with avx512_bf16, or CUDA); CTC in fp32
    speed_perturb: tuple[float, ...] = ()  # e.g. (0.9, 1.0, 1.1): one epoch trains on every speed (Kaldi style)
    augment: AugmentConfig = AugmentConfig()  # [augment]: corrupted copies of the training set (asr.augment)
    average_last: int = 0  # average the weights of the last N epochs into final.pt (icefall/ESPnet); 0: final.pt = best.pt
    device: str = "auto"  # "auto" (CUDA when available), "cpu" or "cuda[:N]"
    feature_workers: int = 2
    seed: int = 0
    best_metric: str = "per"  # dev metric that chooses best.pt (lower is better): "per" for the phone head that ships
    dev_every: int = 1  # score dev after every Nth epoch, and always after the last epoch and the last average_last
    # wall-clock budget: no epoch starts after it, and while the epochs' pace shows that fewer than
    # `epochs` fit, the learning rate's cosine is laid out over those that do (epochs_that_fit)
    max_minutes: float | None = None
    save_every_steps: int = 0  # also write last.pt every N steps inside an epoch (0: at epoch ends only)
    feature_shards: str | None = None  # folder written by `asr features`: read per batch from disk (sets beyond RAM)
    data_workers: int = 0  # DataLoader processes reading feature shards (0: in the training process)
    lexicon: str | None = None  # default: the shipped CMUdict lexicon
    init_from: str | None = None  # start from this checkpoint's weights (fine-tuning); optimizer and schedule start afresh

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        if "model" in d:
            model = _known(ModelConfig, d["model"], "[model]")
            if isinstance(model.get("features"), dict):
                _known(FeatureConfig, model["features"], "[model.features]")
            d["model"] = ModelConfig.from_dict(model)
        if d.get("spec_augment") is not None:
            sa = d["spec_augment"]
            d["spec_augment"] = None if sa is False or sa.get("enabled") is False else \
                SpecAugmentConfig(**_known(SpecAugmentConfig, sa, "spec_augment"))
        if isinstance(d.get("augment"), dict):
            augment = _known(AugmentConfig, d["augment"], "[augment]")
            d["augment"] = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in augment.items()})
        _known(cls, d, "training")
        if "speed_perturb" in d:
            d["speed_perturb"] = tuple(float(f) for f in d["speed_perturb"])
        if "extra_manifests" in d:
            if not isinstance(d["extra_manifests"], (list, tuple)):
                raise ConfigError(f"extra_manifests must be a list of manifest paths, not {d['extra_manifests']!r}")
            d["extra_manifests"] = tuple(str(m) for m in d["extra_manifests"])
        config = cls(**d)
        if config.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16', not {config.precision!r}")
        if config.dev_every < 1:
            raise ConfigError(f"dev_every must be at least 1, not {config.dev_every}")
        if any(f <= 0 for f in config.speed_perturb):
            raise ConfigError(f"speed_perturb factors must be positive, not {list(config.speed_perturb)}")
        return config

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "TrainConfig":
        """Read a TOML config (``overrides`` replace its top-level entries); relative paths are used as given."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config not found")
        try:
            d = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML ({e})") from None
        for key, value in (overrides or {}).items():  # "model.hidden" sets hidden in [model]
            *parents, last = key.split(".")
            target = d
            for name in parents:
                target = target.setdefault(name, {})
                if not isinstance(target, dict):
                    raise ConfigError(f"{path}: cannot set {key!r}: {name!r} is not a table")
            target[last] = value
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


# What a TOML value of each simple field type may be (an int is a fine float); other types are checked where used.
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _known(cls: type, d: dict[str, Any], where: str) -> dict[str, Any]:
    """``d`` if its keys are fields of the dataclass ``cls``, every required one is there and the
    simple ones have the right type; else a :class:`ConfigError` naming the key (and the closest
    known name for a typo)."""
    import difflib

    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in sorted(set(d) - set(fields)):
        close = difflib.get_close_matches(key, list(fields), n=1)
        raise ConfigError(f"unknown {where} option {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    missing = [name for name, f in fields.items() if name not in d and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing required option(s) {', '.join(missing)}")
    for key, value in d.items():
        kind = str(fields[key].type).replace(" | None", "")
        if kind in _TYPES and not (value is None and "None" in str(fields[key].type)):
            if not isinstance(value, _TYPES[kind]) or (kind != "bool" and isinstance(value, bool)):
                raise ConfigError(f"{where} option {key} must be {'a number' if kind in ('int', 'float') else 'a ' + kind}"
                                  f"{' (a whole one)' if kind == 'int' else ''}, not {value!r}")
    return d


@dataclass
class Example:
    utt: Utterance
    feats: torch.Tensor | ShardedFeature  # (T, D) float16, or where to read it
    chars: torch.Tensor  # (L,) int64
    phones: torch.Tensor | None  # (L',) int64, None when a word has no pronunciation


def ctc_min_frames(targets: list[int]) -> int:
    """Frames CTC needs for ``targets``: one per token plus one blank between equal neighbours."""
    return len(targets) + sum(a == b for a, b in zip(targets, targets[1:]))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``asr train --set``) as config overrides: VALUE as JSON (numbers,
    true/false, lists...), else as a plain string (``out_dir=tmp/exp``)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def make_examples(utts: list[Utterance], feats: list[torch.Tensor], config: TrainConfig) -> tuple[list[Example], dict[str, int]]:
    """Targets for each utterance; drop those too short for their character targets (counted)."""
    lexicon = load_lexicon(config.lexicon)
    examples, counts = [], {"too_short": 0, "no_pronunciation": 0, "phones_too_short": 0}
    stack = config.model.stack
    for u, f in zip(utts, feats):
        frames = math.ceil(f.shape[0] / stack)
        chars = chars_to_ids(u.text)
        if not chars or ctc_min_frames(chars) > frames:
            counts["too_short"] += 1
            continue
        phone_syms = lexicon.phones_for_words(u.text.split())
        phones = None
        if phone_syms is None:
            counts["no_pronunciation"] += 1
        else:
            ids = PHONE_VOCAB.encode(phone_syms)
            if ctc_min_frames(ids) > frames:
                counts["phones_too_short"] += 1
            else:
                phones = torch.tensor(ids)
        examples.append(Example(u, f, torch.tensor(chars), phones))
    return examples, counts


def ctc_losses(out: dict[str, torch.Tensor], batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed per-utterance CTC losses ``(char, phone)``; the phone loss skips utterances without phones."""
    lengths = out["lengths"].cpu()
    char_t = torch.cat([e.chars for e in batch])
    char_l = torch.tensor([len(e.chars) for e in batch])
    char = torch.nn.functional.ctc_loss(out["char"].transpose(0, 1), char_t.to(out["char"].device), lengths, char_l,
                                        blank=CHAR_VOCAB.blank, reduction="sum", zero_infinity=True)
    return char, phone_ctc(out["phone"], lengths, batch)


def phone_ctc(log_probs: torch.Tensor, lengths: torch.Tensor, batch: list[Example]) -> torch.Tensor:
    """Summed CTC loss of phone log-probabilities ``(B, T', n_phones)`` over the utterances with phones.

    The head always joins the graph (times zero when no utterance has phones), so that
    DistributedDataParallel sees a gradient for every parameter on every rank.
    """
    has = [i for i, e in enumerate(batch) if e.phones is not None]
    if not has:
        return log_probs.sum() * 0
    ph_t = torch.cat([batch[i].phones for i in has])
    ph_l = torch.tensor([len(batch[i].phones) for i in has])
    dev = log_probs.device
    return torch.nn.functional.ctc_loss(log_probs[torch.tensor(has, device=dev)].transpose(0, 1), ph_t.to(dev),
                                        lengths.cpu()[has], ph_l, blank=PHONE_VOCAB.blank, reduction="sum",
                                        zero_infinity=True)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: list[Example], config: TrainConfig,
               device: torch.device, global_batch: list[Example] | None = None,
               world_size: int = 1) -> tuple[float, float, float] | None:
    """One update on ``batch``: SpecAugment, forward, both CTC losses, backward, clipping, step.

    The losses are means over ``global_batch`` (the batch of all ranks together; default:
    ``batch``), each rank contributing its share: with DistributedDataParallel averaging the
    gradients of ``world_size`` ranks, the update is the one a single process would make on the
    whole global batch. Returns this rank's shares ``(loss, char loss, phone loss)`` (summed over
    ranks: the global batch means), or ``None`` without touching the weights when the loss (on
    any rank) or the gradient norm is not finite.
    """
    global_batch = batch if global_batch is None else global_batch
    n_char = len(global_batch)
    n_phone = max(1, sum(e.phones is not None for e in global_batch))
    x, lengths = pad_features([e.feats for e in batch])
    if config.spec_augment is not None:
        sa = config.spec_augment
        x = spec_augment(x, lengths, sa.freq_masks, sa.freq_width, sa.time_masks, sa.time_ratio)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
        out = model(x.to(device, non_blocking=True), lengths)
    # CTC sums log-probabilities over thousands of paths: bf16's 8-bit mantissa is too coarse for it.
    out = {k: v.float() if v.is_floating_point() else v for k, v in out.items()}
    char, phone = ctc_losses(out, batch)
    char, phone = char / n_char, phone / n_phone
    loss = config.char_weight * char + (1 - config.char_weight) * phone
    if "phone_inter" in out:  # InterCTC: the phone part mixes in the intermediate layer's head
        inter = phone_ctc(out["phone_inter"], out["lengths"], batch) / n_phone
        loss = loss + (1 - config.char_weight) * config.inter_weight * (inter - phone)
    optimizer.zero_grad(set_to_none=True)
    finite = torch.isfinite(loss).to(device=device, dtype=torch.float32)
    if world_size > 1:  # every rank must take the same branch, or the others wait forever in backward
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if not finite:
        return None
    (loss * world_size).backward()  # DDP averages gradients over ranks; the shares add up
    if not torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)):
        optimizer.zero_grad(set_to_none=True)
        return None
    optimizer.step()
    return loss.item(), char.item(), phone.item()


def lr_lambda(config: TrainConfig, total_steps: int):
    def f(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
        return config.final_lr_ratio + (1 - config.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def epochs_that_fit(config: TrainConfig, epochs_done: int, minutes: float) -> int:
    """How many epochs a run fits into ``config.max_minutes`` when its first ``epochs_done`` epochs took
    ``minutes`` in all: the epochs done, and the further ones that start before the budget is spent
    at the mean pace so far (no epoch starts after it); at most ``config.epochs``. Worked out again
    after every epoch (and on resuming), so the schedule follows the pace as it settles.

    Why: the cosine ends at a low learning rate, and those last epochs gain the most. A run that the
    budget cut short without them (run 8: 13 of the 17 epochs of its cosine) was behind one of the same
    config whose cosine was laid out over 14 epochs and completed (run 9): dev PER 22.66 against
    22.44 %, tuned WER 30.72 against 30.30 % (RESULTS.md, "A training budget that ends its cosine").
    """
    if config.max_minutes is None or epochs_done < 1:
        return config.epochs
    pace = minutes / epochs_done
    more = math.ceil((config.max_minutes - minutes) / pace) if pace > 0 and minutes < config.max_minutes else 0
    return min(config.epochs, epochs_done + more)


def evaluate_examples(model: AcousticModel, examples: list[Example], config: TrainConfig) -> dict[str, float | int]:
    lexicon = load_lexicon(config.lexicon)
    # the recognizer's own path: the weights as they are now, run by asr.rnn
    feats = [(e.feats.load() if isinstance(e.feats, ShardedFeature) else e.feats).float().numpy() for e in examples]
    hyps = recognize(export(model), feats, lexicon)
    refs = [e.utt.text for e in examples]
    return score_heads(refs, [h.text("char") for h in hyps], [h.text("phone") for h in hyps],
                       [_strip_boundaries(lexicon.phones_for_words(r.split())) for r in refs],
                       [h.phones for h in hyps])


def _strip_boundaries(phones: list[str] | None) -> list[str] | None:
    return None if phones is None else [p for p in phones if p != "|"]


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in a torchrun launch (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process: 0/1/0."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (decisions that all ranks must take alike)."""
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        if self.world_size == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()


def setup_distributed(config: TrainConfig) -> tuple[Distributed, torch.device]:
    """Join the process group that torchrun describes in the environment (nccl on CUDA, gloo on
    the CPU) and pick this rank's device; without torchrun, one process on ``config.device``."""
    env = Distributed(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                      int(os.environ.get("LOCAL_RANK", 0)))
    cuda = torch.cuda.is_available() if config.device == "auto" else config.device.startswith("cuda")
    if cuda and env.world_size > 1:
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cuda" if cuda and config.device == "auto" else config.device if cuda else "cpu")
    if env.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return env, device


class _ExampleSet(torch.utils.data.Dataset):
    """``(index, features)`` of each example, the features read from the shards when they are on disk."""

    def __init__(self, examples: list[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        f = self.examples[i].feats
        return i, f if isinstance(f, torch.Tensor) else f.load()


def _collate(items: list[tuple[int, torch.Tensor]]) -> tuple[list[int], torch.Tensor, list[int]]:
    """One tensor per batch: a DataLoader worker hands each tensor over through a file descriptor,
    and a batch of hundreds of utterances as separate tensors ran out of them ("Too many open files")."""
    return [i for i, _ in items], torch.cat([f for _, f in items]), [f.shape[0] for _, f in items]


def _batch_examples(examples: list[Example], collated: tuple[list[int], torch.Tensor, list[int]]) -> list[Example]:
    ids, feats, frames = collated
    return [dataclasses.replace(examples[i], feats=f) for i, f in zip(ids, torch.split(feats, frames))]


def _reseed(seed: int, epoch: int, rank: int, start: int) -> None:
    """Seed SpecAugment and dropout from (seed, epoch, rank, first batch): a resumed run draws as an unbroken one."""
    n = int.from_bytes(hashlib.sha256(f"{seed}/{epoch}/{rank}/{start}".encode()).digest()[:8], "little")
    torch.manual_seed(n)
    random.seed(n)


def _training_sets(config: TrainConfig) -> list[tuple[float, int, list[Utterance]]]:
    """``(speed, copy, utterances)`` for each copy of the training set that ``speed_perturb`` and
    ``augment.copies`` ask for: copy 0 is the clean one, copies 1.. are corrupted (``config.augment``)."""
    train_utts = [u for m in (config.train_manifest, *config.extra_manifests) for u in read_manifest(m)]
    sets = []
    # A copy of the training set per speed and corruption, its features kept apart; durations scale by 1 / speed.
    for speed in config.speed_perturb or (1.0,):
        for copy in range(1 + config.augment.copies):
            prefix = (f"sp{speed}-" if speed != 1.0 else "") + (f"aug{copy}-" if copy else "")
            sets.append((speed, copy, [dataclasses.replace(u, id=prefix + u.id, duration=u.duration / speed)
                                       for u in train_utts] if prefix else train_utts))
    return sets


def _set_name(speed: float, copy: int) -> str:
    return f"speed{speed}" + (f"-aug{copy}" if copy else "")


def write_training_features(config: TrainConfig, workers: int, progress: bool = True) -> list[Path]:
    """Compute the training set's features (every speed and copy) into ``config.feature_shards``,
    once (see :func:`asr.data.write_feature_shards`); return the folders."""
    if not config.feature_shards:
        raise ConfigError("feature_shards is not set: name the folder for the features in the config")
    return [write_feature_shards(utts, config.model.features, Path(config.feature_shards) / _set_name(speed, copy),
                                 workers, speed, progress, (config.augment, copy) if copy else None)
            for speed, copy, utts in _training_sets(config)]


def _load_examples(config: TrainConfig, out_dir: Path, progress: bool, log) -> tuple[list[Example], list[Example]]:
    """Training examples (every speed of ``speed_perturb``) and dev examples.

    Features come from ``config.feature_shards`` (read per batch) when set, else from the RAM
    cache under ``out_dir/cache``, computed when it does not match.
    """
    examples: list[Example] = []
    for speed, copy, utts in _training_sets(config):
        augment = (config.augment, copy) if copy else None
        if config.feature_shards:
            shards = FeatureShards(Path(config.feature_shards) / _set_name(speed, copy), utts, config.model.features,
                                   speed, augment)
            feats = [ShardedFeature(shards, i) for i in range(len(shards))]
        else:
            name = "train_feats" + (f"_sp{speed}" if speed != 1.0 else "") + (f"_aug{copy}" if copy else "")
            feats = load_features(utts, config.model.features, out_dir / "cache" / f"{name}.pt",
                                  config.feature_workers, progress, speed=speed, augment=augment)
        kept, dropped = make_examples(utts, feats, config)
        examples += kept
        log(f"train at speed {speed}{f', corrupted copy {copy}' if copy else ''}: {len(kept)} utterances kept of "
            f"{len(utts)}; {dropped['too_short']} dropped as "
            f"too short for their characters; phone loss off for {dropped['no_pronunciation']} (word missing from "
            f"lexicon) and {dropped['phones_too_short']} (too short for their phones)")
    dev: list[Example] = []
    if config.dev_manifest:
        dev_utts = read_manifest(config.dev_manifest)
        dev_feats = load_features(dev_utts, config.model.features, out_dir / "cache" / "dev_feats.pt",
                                  config.feature_workers, progress)
        dev = [Example(u, f, torch.tensor([]), None) for u, f in zip(dev_utts, dev_feats)]
    return examples, dev


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train, writing ``out_dir/{best,last}.pt``, ``log.csv`` and ``config.json``; return the last epoch's row.

    Under torchrun each process is one rank of DistributedDataParallel: ``batch_seconds`` is
    the global batch, dealt out to the ranks (:class:`asr.data.BucketingSampler`); rank 0
    computes the feature cache, scores dev and writes every file while the others wait.
    ``resume`` continues from ``last.pt`` (weights, optimizer, schedule, epoch and batch
    position), also with another number of ranks: the steps are the same, only dealt out anew.
    """
    env, device = setup_distributed(config)
    try:
        return _train(config, env, device, resume, progress and env.main)
    finally:
        if env.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, env: Distributed, device: torch.device, resume: bool, progress: bool) -> dict[str, Any]:
    torch.set_num_threads(config.threads)
    out_dir = Path(config.out_dir)
    last_path = out_dir / "last.pt"
    # the weights to start from, read (and checked against config.model) before features are computed
    init = _init_weights(config) if config.init_from and not (resume and last_path.is_file()) else None
    log = _log(f"{out_dir}/train.log") if env.main else (lambda msg: None)
    if env.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "config.json", json.dumps(dataclasses.asdict(config), indent=2) + "\n")
        examples, dev = _load_examples(config, out_dir, progress, log)  # computes and caches the features
    env.barrier()
    if not env.main:
        examples, _ = _load_examples(config, out_dir, False, log)  # reads rank 0's cache
        dev = []

    torch.manual_seed(config.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    net = AcousticModel(config.model).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sampler = BucketingSampler([e.utt.duration for e in examples], config.batch_seconds, env.world_size, env.rank,
                               config.seed)
    steps_per_epoch = len(sampler.batches)
    planned = config.epochs  # the epochs the cosine is laid out over: fewer when max_minutes fits fewer
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, steps_per_epoch * planned))
    start_epoch, start_batch, best, rows, elapsed = 1, 0, float("inf"), [], 0.0
    partial: dict[str, float] = {}
    if env.main:
        remove_stale_temporaries(out_dir)  # a killed run's half-written checkpoint
    if init is not None:
        net.load_state_dict(init)
        log(f"weights from {config.init_from}")
    if resume and last_path.is_file():
        ckpt = load_checkpoint(last_path)
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        best, rows, elapsed = ckpt["best"], json.loads(ckpt["rows"]), ckpt["elapsed"]
        start_epoch, start_batch = ckpt["epoch"] + 1, ckpt.get("batch", 0)
        planned = epochs_that_fit(config, ckpt["epoch"], elapsed / 60)  # as the run had it: its pace so far
        _lay_out(scheduler, config, steps_per_epoch, planned)
        if start_batch and env.main:  # written inside an epoch: it goes on from the next batch, with its sums so far
            partial = json.loads(ckpt["partial"])
        saved_world = ckpt.get("world_size", 1)
        log(f"resumed from {last_path} at epoch {start_epoch}, batch {start_batch}" + (
            f"; saved by {saved_world} rank(s), now {env.world_size}: the same global batches "
            f"({config.batch_seconds:g} s), {config.batch_seconds / env.world_size:g} s per rank"
            if saved_world != env.world_size else ""))
    loader = torch.utils.data.DataLoader(_ExampleSet(examples), batch_sampler=sampler, collate_fn=_collate,
                                         num_workers=config.data_workers if config.feature_shards else 0)
    model = net if env.world_size == 1 else torch.nn.parallel.DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None)
    n_params = sum(p.numel() for p in net.parameters())
    log(f"model: {n_params / 1e6:.2f} M parameters, {steps_per_epoch} batches per epoch, device {device}"
        + (f", {config.threads} thread(s)" if device.type == "cpu" else "")
        + (f", {env.world_size} ranks" if env.world_size > 1 else ""))

    def save_last(epoch: int, batch: int = 0, partial: dict[str, float] | None = None) -> None:
        save_checkpoint(last_path, net, epoch=epoch if not batch else epoch - 1, batch=batch, best=best,
                        rows=json.dumps(rows), elapsed=elapsed, partial=json.dumps(partial or {}),
                        world_size=env.world_size, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict())

    row: dict[str, Any] = rows[-1] if rows else {}
    epoch = start_epoch
    while epoch <= planned:  # planned ends the loop where max_minutes is spent (epochs_that_fit)
        model.train()
        t0 = time.perf_counter()
        first = start_batch if epoch == start_epoch else 0
        sampler.set_epoch(epoch, first)
        _reseed(config.seed, epoch, env.rank, first)
        keys = ("loss", "char", "phone", "audio", "done", "skipped", "seconds")
        sums = {k: partial.get(k, 0.0) if epoch == start_epoch else 0.0 for k in keys}
        bar = tqdm(loader, desc=f"epoch {epoch}", disable=not progress, leave=False)
        for i, collated in enumerate(bar, first):
            batch = _batch_examples(examples, collated)
            losses = train_step(model, optimizer, batch, config, device,
                                [examples[j] for j in sampler.global_batch(i)], env.world_size)
            scheduler.step()
            if losses is None:
                sums["skipped"] += 1  # a non-finite loss or gradient: the batch is skipped, the weights untouched
            else:
                sums["done"] += 1
                sums["audio"] += sum(e.utt.duration for e in batch)
                for key, value in zip(("loss", "char", "phone"), losses):
                    sums[key] += value
            if progress:
                bar.set_postfix(loss=f"{sums['loss'] / max(sums['done'], 1):.3f}")
            if config.save_every_steps and (i + 1) % config.save_every_steps == 0 and i + 1 < steps_per_epoch:
                now = dict(sums, seconds=sums["seconds"] + time.perf_counter() - t0)
                totals = dict(zip(keys, env.sum([now[k] for k in keys[:4]], device) + [now[k] for k in keys[4:]]))
                if env.main:
                    save_last(epoch, i + 1, totals)
                env.barrier()
        train_seconds = sums["seconds"] + time.perf_counter() - t0
        loss, char, phone, audio = env.sum([sums[k] for k in ("loss", "char", "phone", "audio")], device)
        done = max(sums["done"], 1)
        row = {"epoch": epoch, "lr": scheduler.get_last_lr()[0], "train_seconds": round(train_seconds, 1),
               "audio_seconds_per_second": round(audio / train_seconds, 1), "skipped_batches": int(sums["skipped"]),
               "loss": round(loss / done, 4), "char": round(char / done, 4), "phone": round(phone / done, 4)}
        if env.main:
            if dev and _scores_dev(config, epoch, (elapsed + time.perf_counter() - t0) / 60, planned):
                t1 = time.perf_counter()
                scores = evaluate_examples(net, dev, config)
                row.update({f"dev_{k}": round(v, 4) if isinstance(v, float) else v for k, v in scores.items()})
                row["dev_seconds"] = round(time.perf_counter() - t1, 1)
            elapsed += time.perf_counter() - t0
            row["elapsed_minutes"] = round(elapsed / 60, 2)
            fit = epochs_that_fit(config, epoch, elapsed / 60)
            if fit != planned:
                log(f"max_minutes={config.max_minutes:g} fits {fit} of the {config.epochs} epochs at "
                    f"{elapsed / 60 / epoch:.1f} min each: the learning rate's cosine now ends with epoch {fit}")
                planned = fit
            rows.append(row)
            metric = row.get(f"dev_{config.best_metric}", None if dev else row["loss"])
            if metric is not None and metric < best:
                best = metric
                save_checkpoint(out_dir / "best.pt", net, epoch=epoch, dev=row)
            if config.average_last:
                save_checkpoint(out_dir / f"epoch-{epoch}.pt", net, epoch=epoch)
                for old in _epoch_checkpoints(out_dir)[:-config.average_last]:
                    old.unlink()
            save_last(epoch)
            _write_csv(out_dir / "log.csv", rows)
            log(" ".join(f"{k}={v}" for k, v in row.items()))
        elapsed, planned = env.broadcast((elapsed, planned))  # rank 0's clock decides max_minutes for all
        _lay_out(scheduler, config, steps_per_epoch, planned)
        env.barrier()
        epoch += 1
    if planned < config.epochs:
        log(f"stopped after epoch {planned} of {config.epochs}: {elapsed / 60:.1f} min used of "
            f"max_minutes={config.max_minutes:g}")
    if rows and env.main:
        _finalize(net, dev, config, out_dir, best, log)
    env.barrier()
    return row


def _lay_out(scheduler: torch.optim.lr_scheduler.LambdaLR, config: TrainConfig, steps_per_epoch: int,
             epochs: int) -> None:
    """Lay ``scheduler``'s warmup and cosine out over ``epochs`` epochs from now on (the steps taken
    so far stay counted)."""
    scheduler.lr_lambdas = [lr_lambda(config, steps_per_epoch * epochs)] * len(scheduler.lr_lambdas)


def _init_weights(config: TrainConfig) -> dict[str, torch.Tensor]:
    """The weights of ``config.init_from`` (read by :func:`load_model`), whose model config must be
    ``config.model``'s. (Checked when training starts, not when the config is read: a recipe's
    fine-tuning config names a checkpoint that an earlier stage writes.)"""
    if not Path(config.init_from).is_file():
        raise ConfigError(f"init_from = {config.init_from}: checkpoint not found")
    source = load_model(config.init_from)
    theirs, ours = source.config, config.model
    if theirs != ours:
        differ = [f"{k} ({getattr(theirs, k)} there, {getattr(ours, k)} here)"
                  for k in (f.name for f in dataclasses.fields(ModelConfig)) if getattr(theirs, k) != getattr(ours, k)]
        raise ConfigError(f"init_from = {config.init_from}: another model: " + ", ".join(differ))
    return source.state_dict()


def _scores_dev(config: TrainConfig, epoch: int, minutes: float, planned: int) -> bool:
    """Whether dev is scored after ``epoch`` (``minutes``: the run's time so far; ``planned``: the
    epochs the run is laid out over, :func:`epochs_that_fit`): every ``dev_every``th epoch, and every
    epoch that ``best.pt`` or averaging may take (the last ``average_last``, and the last one, whether
    ``planned`` or ``max_minutes`` ends the run)."""
    last = epoch >= planned or _out_of_time(config, minutes)
    return last or epoch % config.dev_every == 0 or epoch > planned - config.average_last


def _out_of_time(config: TrainConfig, minutes: float) -> bool:
    """Whether a run that has used ``minutes`` starts no further epoch (``max_minutes``)."""
    return config.max_minutes is not None and minutes >= config.max_minutes


def _finalize(model: AcousticModel, dev: list[Example], config: TrainConfig, out_dir: Path, best: float, log) -> None:
    """Write ``final.pt``: the average of the last ``average_last`` epochs if it scores better on dev than ``best.pt``.

    The averaged weights are scored on dev like every epoch (``averaged.json``); without dev or
    averaging, ``final.pt`` is ``best.pt``.
    """
    best_ckpt = load_checkpoint(out_dir / "best.pt")
    chosen = {"model": best_ckpt["model"], "epoch": best_ckpt["epoch"], "dev": best_ckpt["dev"], "averaged": []}
    paths = _epoch_checkpoints(out_dir)[-config.average_last:] if config.average_last else []
    if paths and dev:
        model.load_state_dict(average_checkpoints(paths))
        scores = {f"dev_{k}": round(v, 4) if isinstance(v, float) else v
                  for k, v in evaluate_examples(model, dev, config).items()}
        epochs = [_epoch_of(p) for p in paths]
        atomic_write_text(out_dir / "averaged.json", json.dumps({"epochs": epochs, **scores}, indent=2) + "\n")
        metric = scores[f"dev_{config.best_metric}"]
        log(f"average of epochs {epochs}: " + " ".join(f"{k}={v}" for k, v in scores.items())
            + f" ({'better' if metric < best else 'not better'} than best.pt's {config.best_metric}={best})")
        if metric < best:
            chosen = {"model": model.state_dict(), "epoch": epochs[-1], "dev": scores, "averaged": epochs}
    model.load_state_dict(chosen.pop("model"))
    # The training config travels with the weights: `asr bundle` records it as what produced the model.
    save_checkpoint(out_dir / "final.pt", model, **chosen, training=dataclasses.asdict(config))


def _epoch_of(path: Path) -> int:
    return int(path.stem.split("-")[1])  # epoch-12.pt -> 12


def _epoch_checkpoints(out_dir: Path) -> list[Path]:
    """``out_dir/epoch-N.pt`` in order of N."""
    return sorted(out_dir.glob("epoch-*.pt"), key=_epoch_of)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _log(path: str):
    def log(msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        tqdm.write(line)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return log
