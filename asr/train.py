"""Training: two CTC losses (characters and phones) over a vanilla RNN, with dev scoring each epoch."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import random
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .data import Utterance, atomic_write_text, bucket_batches, load_features, pad_features, read_manifest, spec_augment
from .decode import recognize
from .errors import ConfigError
from .features import FeatureConfig
from .metrics import score_heads
from .model import AcousticModel, ModelConfig, average_checkpoints, load_checkpoint, save_checkpoint
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
    dev_manifest: str | None
    out_dir: str
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
    threads: int = 1  # torch CPU threads; pick on purpose: oversubscribed cores slow RNNs ~10x
    precision: str = "fp32"  # "fp32" or "bf16": autocast of the network (CPU with avx512_bf16, or CUDA); CTC in fp32
    speed_perturb: tuple[float, ...] = ()  # e.g. (0.9, 1.0, 1.1): one epoch trains on every speed (Kaldi style)
    average_last: int = 0  # average the weights of the last N epochs into final.pt (icefall/ESPnet); 0: final.pt = best.pt
    device: str = "auto"  # "auto" (CUDA when available), "cpu" or "cuda[:N]"
    feature_workers: int = 2
    seed: int = 0
    best_metric: str = "per"  # dev metric that chooses best.pt (lower is better): "per" for the phone head that ships
    max_minutes: float | None = None  # stop after the epoch that crosses this wall-clock budget
    lexicon: str | None = None  # default: the shipped CMUdict lexicon

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
        _known(cls, d, "training")
        if "speed_perturb" in d:
            d["speed_perturb"] = tuple(float(f) for f in d["speed_perturb"])
        config = cls(**d)
        if config.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16', not {config.precision!r}")
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
        return cls.from_dict(d)


def _known(cls: type, d: dict[str, Any], where: str) -> dict[str, Any]:
    """``d`` if all its keys are fields of the dataclass ``cls``, else a :class:`ConfigError` naming the others."""
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {where} option(s): {', '.join(sorted(unknown))}")
    return d


@dataclass
class Example:
    utt: Utterance
    feats: torch.Tensor  # (T, D) float16
    chars: torch.Tensor  # (L,) int64
    phones: torch.Tensor | None  # (L',) int64, None when a word has no pronunciation


def ctc_min_frames(targets: list[int]) -> int:
    """Frames CTC needs for ``targets``: one per token plus one blank between equal neighbours."""
    return len(targets) + sum(a == b for a, b in zip(targets, targets[1:]))


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
    """Mean per-utterance CTC losses ``(char, phone)``; the phone loss skips utterances without phones."""
    lengths = out["lengths"].cpu()
    char_t = torch.cat([e.chars for e in batch])
    char_l = torch.tensor([len(e.chars) for e in batch])
    dev = out["char"].device
    char = torch.nn.functional.ctc_loss(out["char"].transpose(0, 1), char_t.to(dev), lengths, char_l,
                                        blank=CHAR_VOCAB.blank, reduction="sum", zero_infinity=True) / len(batch)
    has = [i for i, e in enumerate(batch) if e.phones is not None]
    if not has:
        return char, torch.zeros((), device=char.device)
    ph_t = torch.cat([batch[i].phones for i in has])
    ph_l = torch.tensor([len(batch[i].phones) for i in has])
    phone = torch.nn.functional.ctc_loss(out["phone"][torch.tensor(has, device=out["phone"].device)].transpose(0, 1), ph_t.to(dev), lengths[has], ph_l,
                                         blank=PHONE_VOCAB.blank, reduction="sum", zero_infinity=True) / len(has)
    return char, phone


def train_step(model: AcousticModel, optimizer: torch.optim.Optimizer, batch: list[Example], config: TrainConfig,
               device: torch.device) -> tuple[float, float, float] | None:
    """One update on ``batch``: SpecAugment, forward, both CTC losses, backward, clipping, step.

    Returns ``(loss, char loss, phone loss)``, or ``None`` without touching the weights when
    the loss or the gradient norm is not finite.
    """
    x, lengths = pad_features([e.feats for e in batch])
    if config.spec_augment is not None:
        sa = config.spec_augment
        x = spec_augment(x, lengths, sa.freq_masks, sa.freq_width, sa.time_masks, sa.time_ratio)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
        out = model(x.to(device, non_blocking=True), lengths)
    # CTC sums log-probabilities over thousands of paths: bf16's 8-bit mantissa is too coarse for it.
    out = {k: v.float() if v.is_floating_point() else v for k, v in out.items()}
    char, phone = ctc_losses(out, batch)
    loss = config.char_weight * char + (1 - config.char_weight) * phone
    optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return None
    loss.backward()
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


def evaluate_examples(model: AcousticModel, examples: list[Example], config: TrainConfig) -> dict[str, float | int]:
    lexicon = load_lexicon(config.lexicon)
    hyps = recognize(model, [e.feats for e in examples], lexicon)
    refs = [e.utt.text for e in examples]
    return score_heads(refs, [h.text("char") for h in hyps], [h.text("phone") for h in hyps],
                       [_strip_boundaries(lexicon.phones_for_words(r.split())) for r in refs],
                       [h.phones for h in hyps])


def _strip_boundaries(phones: list[str] | None) -> list[str] | None:
    return None if phones is None else [p for p in phones if p != "|"]


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train, writing ``out_dir/{best,last}.pt``, ``log.csv`` and ``config.json``; return the last epoch's row."""
    torch.set_num_threads(config.threads)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.json", json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    log = _log(f"{out_dir}/train.log")

    train_utts = read_manifest(config.train_manifest)
    examples: list[Example] = []
    for speed in config.speed_perturb or (1.0,):
        # A copy of the training set per speed, its features cached apart; durations scale by 1 / speed.
        utts = train_utts if speed == 1.0 else [
            dataclasses.replace(u, id=f"sp{speed}-{u.id}", duration=u.duration / speed) for u in train_utts]
        cache = out_dir / "cache" / ("train_feats.pt" if speed == 1.0 else f"train_feats_sp{speed}.pt")
        feats = load_features(utts, config.model.features, cache, config.feature_workers, progress, speed=speed)
        kept, dropped = make_examples(utts, feats, config)
        examples += kept
        log(f"train at speed {speed}: {len(kept)} utterances kept of {len(utts)}; {dropped['too_short']} dropped as "
            f"too short for their characters; phone loss off for {dropped['no_pronunciation']} (word missing from "
            f"lexicon) and {dropped['phones_too_short']} (too short for their phones)")
    dev: list[Example] = []
    if config.dev_manifest:
        dev_utts = read_manifest(config.dev_manifest)
        dev_feats = load_features(dev_utts, config.model.features, out_dir / "cache" / "dev_feats.pt",
                                  config.feature_workers, progress)
        dev = [Example(u, f, torch.tensor([]), None) for u, f in zip(dev_utts, dev_feats)]

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available()
                          else "cpu" if config.device == "auto" else config.device)
    model = AcousticModel(config.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    durations = [e.utt.duration for e in examples]
    steps_per_epoch = len(bucket_batches(durations, config.batch_seconds, shuffle=False))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, steps_per_epoch * config.epochs))
    start_epoch, best, rows, elapsed = 1, float("inf"), [], 0.0
    last_path = out_dir / "last.pt"
    if resume and last_path.is_file():
        ckpt = load_checkpoint(last_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, best, rows, elapsed = ckpt["epoch"] + 1, ckpt["best"], json.loads(ckpt["rows"]), ckpt["elapsed"]
        torch.set_rng_state(ckpt["rng"])
        log(f"resumed from {last_path} after epoch {ckpt['epoch']}")
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f} M parameters, {steps_per_epoch} batches per epoch, device {device}"
        + (f", {config.threads} thread(s)" if device.type == "cpu" else ""))

    row: dict[str, Any] = rows[-1] if rows else {}
    for epoch in range(start_epoch, config.epochs + 1):
        if config.max_minutes is not None and elapsed / 60 >= config.max_minutes:
            log(f"stopping before epoch {epoch}: {elapsed / 60:.1f} min used of max_minutes={config.max_minutes}")
            break
        model.train()
        t0 = time.perf_counter()
        batches = bucket_batches(durations, config.batch_seconds, shuffle=True, seed=config.seed + epoch)
        sums = {"loss": 0.0, "char": 0.0, "phone": 0.0}
        done, skipped, audio = 0, 0, 0.0
        bar = tqdm(batches, desc=f"epoch {epoch}", disable=not progress, leave=False)
        for idx in bar:
            batch = [examples[i] for i in idx]
            losses = train_step(model, optimizer, batch, config, device)
            scheduler.step()
            if losses is None:
                skipped += 1  # a non-finite loss or gradient: the batch is skipped, the weights untouched
                continue
            done += 1
            audio += sum(e.utt.duration for e in batch)
            for key, value in zip(("loss", "char", "phone"), losses):
                sums[key] += value
            bar.set_postfix(loss=f"{sums['loss'] / done:.3f}", audio_s_per_s=f"{audio / (time.perf_counter() - t0):.0f}")
        train_seconds = time.perf_counter() - t0
        row = {"epoch": epoch, "lr": scheduler.get_last_lr()[0], "train_seconds": round(train_seconds, 1),
               "audio_seconds_per_second": round(audio / train_seconds, 1), "skipped_batches": skipped,
               **{k: round(v / max(done, 1), 4) for k, v in sums.items()}}
        if dev:
            t1 = time.perf_counter()
            scores = evaluate_examples(model, dev, config)
            row.update({f"dev_{k}": round(v, 4) if isinstance(v, float) else v for k, v in scores.items()})
            row["dev_seconds"] = round(time.perf_counter() - t1, 1)
        elapsed += time.perf_counter() - t0
        row["elapsed_minutes"] = round(elapsed / 60, 2)
        rows.append(row)
        metric = row.get(f"dev_{config.best_metric}", row["loss"])
        if metric < best:
            best = metric
            save_checkpoint(out_dir / "best.pt", model, epoch=epoch, dev=row)
        if config.average_last:
            save_checkpoint(out_dir / f"epoch-{epoch}.pt", model, epoch=epoch)
            for old in _epoch_checkpoints(out_dir)[:-config.average_last]:
                old.unlink()
        save_checkpoint(last_path, model, epoch=epoch, best=best, rows=json.dumps(rows), elapsed=elapsed,
                        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), rng=torch.get_rng_state())
        _write_csv(out_dir / "log.csv", rows)
        log(" ".join(f"{k}={v}" for k, v in row.items()))
    if rows:
        _finalize(model, dev, config, out_dir, best, log)
    return row


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
    save_checkpoint(out_dir / "final.pt", model, **chosen)


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
