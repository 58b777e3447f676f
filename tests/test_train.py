"""Real training runs: overfitting a few clips, and spoken digits (FSDD) to 95 % word accuracy."""

import csv
import dataclasses
import json
import re

import pytest
import torch

from asr.manifest import read_manifest, write_manifest
from asr.model import AcousticModel, ModelConfig, average_checkpoints, load_model
from asr.errors import ConfigError
from asr.train import TrainConfig, ctc_min_frames, make_examples, train, write_training_features
from conftest import FSDD, TEST_DATA, needs_fsdd


def test_ctc_min_frames():
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([1, 1, 2, 2, 2]) == 8


def test_too_short_utterances_are_dropped_and_counted(tmp_path):
    utts = read_manifest(TEST_DATA / "manifest.jsonl")[:2]
    feats = [torch.zeros(6, 40), torch.zeros(3000, 40)]  # 6 frames cannot hold a sentence
    cfg = TrainConfig(train_manifest="", dev_manifest=None, out_dir=str(tmp_path))
    examples, counts = make_examples(utts, feats, cfg)
    assert counts["too_short"] == 1 and len(examples) == 1 and examples[0].utt == utts[1]


RECIPE_CONFIGS = sorted((TEST_DATA.parents[1] / "recipes").glob("*/conf/*.toml"))


@pytest.mark.parametrize("path", RECIPE_CONFIGS, ids=[p.stem for p in RECIPE_CONFIGS])
def test_recipe_configs_load_and_build_their_model(path):
    """Every shipped recipe config is a valid TrainConfig (no unknown or mistyped key) whose model builds
    and maps its own features to both heads: (B, T, feature dim) -> (B, ceil(T / stack), vocabulary)."""
    config = TrainConfig.load(path)
    model = AcousticModel(config.model).eval()
    assert config.epochs >= 1 and config.batch_seconds > 0
    T, stack = 31, config.model.stack
    with torch.no_grad():
        out = model(torch.randn(2, T, config.model.features.dim), torch.tensor([T, T - stack]))
    assert out["char"].shape == (2, -(-T // stack), config.model.n_chars)
    assert out["phone"].shape == (2, -(-T // stack), config.model.n_phones)
    assert out["lengths"].tolist() == [-(-T // stack), -(-(T - stack) // stack)]


@pytest.mark.slow
def test_overfits_a_few_clips(tmp_path):
    """A tiny model must learn three clips by heart: the whole training path works."""
    cfg = TrainConfig(
        train_manifest=str(TEST_DATA / "manifest.jsonl"), dev_manifest=str(TEST_DATA / "manifest.jsonl"),
        out_dir=str(tmp_path / "exp"), model=ModelConfig(hidden=96, layers=2, dropout=0.0), spec_augment=None,
        epochs=150, batch_seconds=100, lr=3e-3, warmup_steps=10, threads=1, feature_workers=1, best_metric="cer",
    )
    row = train(cfg, progress=False)
    assert row["dev_cer"] < 0.1 and row["dev_per"] < 0.1, row
    log = (tmp_path / "exp" / "log.csv").read_text().splitlines()
    assert len(log) == 151 and log[0].startswith("epoch,")
    assert load_model(tmp_path / "exp" / "best.pt").config == cfg.model


def test_bf16_step_matches_fp32_and_keeps_ctc_in_fp32(tmp_path):
    """One step in bf16 autocast gives about the fp32 loss (bf16 keeps 8 bits of mantissa: 2 %)."""
    from asr.data import load_features
    from asr.train import train_step

    utts = read_manifest(TEST_DATA / "manifest.jsonl")
    cfg = TrainConfig(train_manifest="", dev_manifest=None, out_dir=str(tmp_path), spec_augment=None,
                      model=ModelConfig(hidden=32, layers=2, dropout=0.0))
    examples, _ = make_examples(utts, load_features(utts, cfg.model.features, progress=False), cfg)
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = AcousticModel(cfg.model)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        losses[precision] = train_step(model, opt, examples, dataclasses.replace(cfg, precision=precision),
                                       torch.device("cpu"))
    assert losses["bf16"] != losses["fp32"]  # autocast did run in bf16
    for a, b in zip(losses["bf16"], losses["fp32"]):
        assert a == pytest.approx(b, rel=0.02)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig.from_dict({"train_manifest": "", "dev_manifest": None, "out_dir": "", "precision": "fp8"})


def test_inter_ctc_loss_mixes_the_intermediate_phone_head(tmp_path):
    """With model.inter_layer, loss = cw * char + (1 - cw) * ((1 - w) * phone + w * phone of the inter head)."""
    from asr.data import load_features, pad_features
    from asr.train import ctc_losses, phone_ctc, train_step

    utts = read_manifest(TEST_DATA / "manifest.jsonl")
    cfg = TrainConfig(train_manifest="", dev_manifest=None, out_dir=str(tmp_path), spec_augment=None,
                      model=ModelConfig(hidden=16, layers=2, dropout=0.0, inter_layer=1), char_weight=0.3,
                      inter_weight=0.4)
    examples, _ = make_examples(utts, load_features(utts, cfg.model.features, progress=False), cfg)
    torch.manual_seed(0)
    model = AcousticModel(cfg.model).train()
    out = model(*pad_features([e.feats for e in examples]))
    char, phone = ctc_losses(out, examples)
    inter = phone_ctc(out["phone_inter"], out["lengths"], examples)
    n = len(examples)
    assert inter.item() != pytest.approx(phone.item())
    expected = 0.3 * char / n + 0.7 * (0.6 * phone / n + 0.4 * inter / n)
    loss, char_step, phone_step = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0), examples, cfg,
                                             torch.device("cpu"))
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    assert (char_step, phone_step) == (pytest.approx(char.item() / n, rel=1e-5), pytest.approx(phone.item() / n, rel=1e-5))
    assert model.inter_head.weight.grad is not None and model.inter_head.weight.grad.abs().sum() > 0


def test_speed_perturbation_and_checkpoint_averaging(tmp_path):
    """Speed perturbation triples the training set; the last 2 epochs are averaged and scored on dev."""
    cfg = TrainConfig(
        train_manifest=str(TEST_DATA / "manifest.jsonl"), dev_manifest=str(TEST_DATA / "manifest.jsonl"),
        out_dir=str(tmp_path / "exp"), model=ModelConfig(hidden=16, layers=1, dropout=0.0), spec_augment=None,
        epochs=3, warmup_steps=2, feature_workers=1, speed_perturb=(0.9, 1.0, 1.1), average_last=2,
        precision="bf16",
    )
    train(cfg, progress=False)
    exp = tmp_path / "exp"
    log = (exp / "train.log").read_text()
    assert all(f"train at speed {s}: 3 utterances kept" in log for s in (0.9, 1.0, 1.1))
    assert sorted(p.name for p in exp.glob("epoch-*.pt")) == ["epoch-2.pt", "epoch-3.pt"]
    averaged = json.loads((exp / "averaged.json").read_text())
    assert averaged["epochs"] == [2, 3] and "dev_per" in averaged
    final = torch.load(exp / "final.pt", weights_only=True)
    best = torch.load(exp / "best.pt", weights_only=True)
    if final["averaged"]:  # the average won on dev: final.pt holds the mean of the epoch checkpoints
        assert final["dev"]["dev_per"] < best["dev"]["dev_per"]
        mean = average_checkpoints([exp / "epoch-2.pt", exp / "epoch-3.pt"])
        assert all(torch.allclose(final["model"][k].float(), mean[k].float()) for k in mean)
    else:  # it did not: final.pt is best.pt
        assert averaged["dev_per"] >= best["dev"]["dev_per"]
        assert all(torch.equal(final["model"][k], best["model"][k]) for k in best["model"])


def test_corrupted_copies_train_beside_the_clean_set_and_shards_match_ram(tmp_path):
    """[augment] copies = 2 at two speeds: six sets, each corrupted copy its own features (not the
    clean ones, not each other's), the same from the RAM cache as from shards on disk."""
    from asr.augment import AugmentConfig
    from asr.data import load_features
    from asr.manifest import read_manifest

    augment = AugmentConfig(copies=2, seed=1, noise=1.0, snr=(0.0, 5.0), telephone=0.5, gain=0.5, clipping=0.2)
    base = TrainConfig(
        train_manifest=str(TEST_DATA / "manifest.jsonl"), dev_manifest=None, out_dir=str(tmp_path / "ram"),
        model=ModelConfig(hidden=16, layers=1, dropout=0.0), epochs=1, warmup_steps=2, feature_workers=1,
        batch_seconds=4.5, speed_perturb=(0.9, 1.0), augment=augment, spec_augment=None)
    ram = train(base, progress=False)
    log = (tmp_path / "ram" / "train.log").read_text()
    assert all(f"train at speed {speed}{copy}: 3 utterances kept" in log
               for speed in (0.9, 1.0) for copy in ("", ", corrupted copy 1", ", corrupted copy 2"))
    utts = read_manifest(TEST_DATA / "manifest.jsonl")
    clean = load_features(utts, base.model.features, progress=False)
    one = load_features(utts, base.model.features, progress=False, augment=(augment, 1))
    two = load_features(utts, base.model.features, progress=False, augment=(augment, 2))
    assert [f.shape for f in one] == [f.shape for f in clean]  # the same length: corruption keeps it
    assert all(not torch.equal(a, b) and not torch.equal(a, c) for a, b, c in zip(one, clean, two))
    assert all(torch.equal(a, b) for a, b in zip(one, load_features(utts, base.model.features, progress=False,
                                                                    augment=(augment, 1))))  # fixed seeds
    sharded = dataclasses.replace(base, out_dir=str(tmp_path / "disk"), feature_shards=str(tmp_path / "features"))
    folders = write_training_features(sharded, workers=1, progress=False)
    assert [f.name for f in folders] == ["speed0.9", "speed0.9-aug1", "speed0.9-aug2",
                                         "speed1.0", "speed1.0-aug1", "speed1.0-aug2"]
    disk = train(sharded, progress=False)
    assert (disk["loss"], disk["char"], disk["phone"]) == (ram["loss"], ram["char"], ram["phone"])


@pytest.mark.parametrize("table, message", [
    ({"copies": -1}, "augment.copies must be 0 or more"),
    ({"noise": 1.5}, "augment.noise is a probability"),
    ({"snr": [20, 0]}, "augment.snr must be [low, high]"),
    ({"noise_kinds": ["pink", "crowd"]}, "choose from white, pink, brown, babble"),
    ({"nosie": 0.5}, "did you mean 'noise'"),
])
def test_augment_config_errors_name_the_field(tmp_path, table, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text('train_manifest = "t.jsonl"\nout_dir = "exp"\n[augment]\n'
                   + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig.load(cfg)


def test_extra_manifests_train_beside_the_main_one(tmp_path):
    """extra_manifests (e.g. asr.crops' word crops) add their utterances to every speed's training set."""
    from asr.train import _training_sets

    utts = read_manifest(TEST_DATA / "manifest.jsonl")
    write_manifest(utts[:2], tmp_path / "a.jsonl")
    write_manifest(utts[2:3], tmp_path / "b.jsonl")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'train_manifest = "{tmp_path / "a.jsonl"}"\nout_dir = "exp"\n'
                   f'extra_manifests = ["{tmp_path / "b.jsonl"}"]\nspeed_perturb = [1.0, 1.1]\n')
    config = TrainConfig.load(cfg)
    assert config.extra_manifests == (str(tmp_path / "b.jsonl"),)
    sets = _training_sets(config)
    assert [[u.id for u in s] for _, _, s in sets] == [[u.id for u in utts[:3]], [f"sp1.1-{u.id}" for u in utts[:3]]]
    cfg.write_text(f'train_manifest = "a.jsonl"\nout_dir = "exp"\nextra_manifests = "b.jsonl"\n')
    with pytest.raises(ConfigError, match="extra_manifests must be a list of manifest paths"):
        TrainConfig.load(cfg)


def test_init_from_starts_from_a_checkpoints_weights_with_a_fresh_schedule(tmp_path):
    """Fine-tuning: init_from loads a checkpoint of the same model; its first epoch starts where
    that model left off (a lower loss than from scratch); another model or a missing file is named."""
    cfg = TrainConfig(
        train_manifest=str(TEST_DATA / "manifest.jsonl"), dev_manifest=None, out_dir=str(tmp_path / "a"),
        model=ModelConfig(hidden=16, layers=1, dropout=0.0), spec_augment=None, epochs=6, warmup_steps=2,
        feature_workers=1, lr=3e-3)
    train(cfg, progress=False)
    scratch = train(dataclasses.replace(cfg, out_dir=str(tmp_path / "b"), epochs=1), progress=False)
    tuned = train(dataclasses.replace(cfg, out_dir=str(tmp_path / "c"), epochs=1,
                                      init_from=str(tmp_path / "a" / "final.pt")), progress=False)
    assert tuned["loss"] < 0.9 * scratch["loss"]
    assert f"weights from {tmp_path / 'a' / 'final.pt'}" in (tmp_path / "c" / "train.log").read_text()
    with pytest.raises(ConfigError, match=r"another model: hidden \(16 there, 32 here\)"):
        train(dataclasses.replace(cfg, out_dir=str(tmp_path / "d"), epochs=1, init_from=str(tmp_path / "a" / "final.pt"),
                                  model=ModelConfig(hidden=32, layers=1, dropout=0.0)), progress=False)
    with pytest.raises(ConfigError, match="init_from = nope.pt: checkpoint not found"):
        train(dataclasses.replace(cfg, out_dir=str(tmp_path / "e"), init_from="nope.pt"), progress=False)
    assert not (tmp_path / "e").exists()  # said before anything was written or computed


def test_dev_every_scores_dev_on_its_epochs_and_the_last(tmp_path):
    """dev_every=2 over 5 epochs with average_last=1: dev after epochs 2, 4 and 5 only; best.pt is one of them."""
    from asr.train import _scores_dev

    cfg = TrainConfig(
        train_manifest=str(TEST_DATA / "manifest.jsonl"), dev_manifest=str(TEST_DATA / "manifest.jsonl"),
        out_dir=str(tmp_path / "exp"), model=ModelConfig(hidden=16, layers=1, dropout=0.0), spec_augment=None,
        epochs=5, warmup_steps=2, feature_workers=1, dev_every=2, average_last=1,
    )
    train(cfg, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "exp" / "log.csv")))
    assert [r["epoch"] for r in rows if r["dev_per"]] == ["2", "4", "5"]
    assert torch.load(tmp_path / "exp" / "best.pt", weights_only=True)["epoch"] in (2, 4, 5)
    # max_minutes ends the run after the epoch that crosses it: that epoch is scored too
    timed = dataclasses.replace(cfg, epochs=20, dev_every=4, average_last=3, max_minutes=30.0)
    assert [e for e in range(1, 21) if _scores_dev(timed, e, 10.0, 20)] == [4, 8, 12, 16, 18, 19, 20]
    assert _scores_dev(timed, 5, 30.0, 20) and not _scores_dev(timed, 5, 29.9, 20)
    # a run that max_minutes fits into 14 epochs scores the last three of those, and the 14th
    assert [e for e in range(1, 15) if _scores_dev(timed, e, 10.0, 14)] == [4, 8, 12, 13, 14]
    with pytest.raises(ValueError, match="dev_every"):
        TrainConfig.from_dict({"train_manifest": "", "dev_manifest": None, "out_dir": "", "dev_every": 0})


def test_epochs_that_fit_max_minutes_at_the_pace_so_far():
    from asr.train import epochs_that_fit

    cfg = TrainConfig(train_manifest="", out_dir="", epochs=20, max_minutes=110.0)
    assert epochs_that_fit(dataclasses.replace(cfg, max_minutes=None), 3, 500.0) == 20  # no budget
    assert epochs_that_fit(cfg, 0, 0.0) == 20  # no pace yet
    # 8.3 min an epoch (this AMD machine): epochs start at 0, 8.3, ..., 107.9 min: 14 of them
    assert epochs_that_fit(cfg, 1, 8.3) == 14
    assert epochs_that_fit(cfg, 5, 41.5) == 14
    assert epochs_that_fit(cfg, 1, 4.8) == 20  # 4.8 min an epoch (run 11's Intel machine): all 20 fit
    assert epochs_that_fit(cfg, 13, 110.0) == 13  # spent: none more
    assert epochs_that_fit(cfg, 13, 107.9) == 14  # one more starts before 110 min


def test_max_minutes_lays_the_cosine_out_over_the_epochs_that_fit(tmp_path, monkeypatch):
    """A run whose epochs take a minute each (a fake clock) with max_minutes=3.5 of 10 epochs: 4 epochs
    start before the budget is spent, and the cosine reaches its end at the 4th, where without the
    fit it would stop at a high learning rate. Resumed after epoch 2, it takes the same course."""
    import types

    import asr.train

    clock = {"now": 0.0, "calls": 0, "crash_at": None}

    def perf_counter():  # 30 s a call: an epoch without dev reads it 3 times and spans one minute
        clock["now"] += 30.0
        clock["calls"] += 1
        if clock["calls"] == clock["crash_at"]:
            raise Crash
        return clock["now"]

    class Crash(Exception):
        pass

    monkeypatch.setattr(asr.train, "time", types.SimpleNamespace(perf_counter=perf_counter, strftime=lambda f: "t"))
    cfg = TrainConfig(
        train_manifest=str(TEST_DATA / "manifest.jsonl"), dev_manifest=None, out_dir=str(tmp_path / "a"),
        model=ModelConfig(hidden=16, layers=1, dropout=0.0), spec_augment=None, epochs=10, warmup_steps=1,
        batch_seconds=1000, lr=1e-3, final_lr_ratio=0.05, feature_workers=1, max_minutes=3.5,
    )
    train(cfg, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "a" / "log.csv")))
    assert [r["elapsed_minutes"] for r in rows] == ["1.0", "2.0", "3.0", "4.0"]
    assert float(rows[-1]["lr"]) == pytest.approx(cfg.lr * cfg.final_lr_ratio)  # the cosine's end
    assert float(rows[1]["lr"]) > 0.5 * cfg.lr
    logged = (tmp_path / "a" / "train.log").read_text()
    assert "max_minutes=3.5 fits 4 of the 10 epochs at 1.0 min each" in logged
    assert "stopped after epoch 4 of 10: 4.0 min used of max_minutes=3.5" in logged
    # a crash inside epoch 3 (the clock's 8th reading), then resumed from epoch 2's last.pt: the same
    # schedule, laid out again from the pace in the checkpoint
    clock.update(calls=0, crash_at=8)
    with pytest.raises(Crash):
        train(dataclasses.replace(cfg, out_dir=str(tmp_path / "b")), progress=False)
    train(dataclasses.replace(cfg, out_dir=str(tmp_path / "b")), resume=True, progress=False)
    resumed = list(csv.DictReader(open(tmp_path / "b" / "log.csv")))
    assert [r["lr"] for r in resumed] == [r["lr"] for r in rows]


def test_without_dev_best_pt_is_the_epoch_of_lowest_training_loss(tmp_path):
    """No dev manifest: best.pt falls back to the training loss (lower is better), and final.pt is best.pt."""
    cfg = TrainConfig(
        train_manifest=str(TEST_DATA / "manifest.jsonl"), dev_manifest=None, out_dir=str(tmp_path / "exp"),
        model=ModelConfig(hidden=16, layers=1, dropout=0.0), spec_augment=None, epochs=4, warmup_steps=2,
        feature_workers=1, lr=0.3,  # high enough that the loss climbs again after epoch 2 (181, 93, 163, 139)
    )
    train(cfg, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "exp" / "log.csv")))
    losses = [float(r["loss"]) for r in rows]
    assert len(losses) == 4 and not any(r.get("dev_per") for r in rows)
    lowest = 1 + losses.index(min(losses))
    assert lowest not in (1, 4)  # neither the first epoch nor the last: saving every epoch, or only once, would fail
    best = torch.load(tmp_path / "exp" / "best.pt", weights_only=True)
    assert best["epoch"] == lowest
    final = torch.load(tmp_path / "exp" / "final.pt", weights_only=True)
    assert all(torch.equal(final["model"][k], best["model"][k]) for k in best["model"])


def test_resume_continues_where_it_stopped(tmp_path):
    base = TrainConfig(
        train_manifest=str(TEST_DATA / "manifest.jsonl"), dev_manifest=None, out_dir=str(tmp_path / "a"),
        model=ModelConfig(hidden=16, layers=1, dropout=0.0), spec_augment=None, epochs=4, warmup_steps=2,
        feature_workers=1,
    )
    full = train(base, progress=False)
    train(dataclasses.replace(base, out_dir=str(tmp_path / "b"), epochs=2), progress=False)
    resumed = train(dataclasses.replace(base, out_dir=str(tmp_path / "b")), resume=True, progress=False)
    assert resumed["epoch"] == 4
    assert resumed["loss"] == pytest.approx(full["loss"], rel=1e-4)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_training_from_feature_shards_equals_training_from_ram(tmp_path):
    """`asr features` then training that reads each batch from disk (2 DataLoader workers): the same run."""
    from asr.train import write_training_features

    base = TrainConfig(
        train_manifest=str(TEST_DATA / "manifest.jsonl"), dev_manifest=None, out_dir=str(tmp_path / "ram"),
        model=ModelConfig(hidden=16, layers=1, dropout=0.0), epochs=2, warmup_steps=2, feature_workers=1,
        batch_seconds=4.5, speed_perturb=(0.9, 1.0),
    )
    ram = train(base, progress=False)
    sharded = dataclasses.replace(base, out_dir=str(tmp_path / "disk"), feature_shards=str(tmp_path / "features"),
                                  data_workers=2)
    folders = write_training_features(sharded, workers=1, progress=False)
    assert [f.name for f in folders] == ["speed0.9", "speed1.0"]
    disk = train(sharded, progress=False)
    assert not (tmp_path / "disk" / "cache").exists()  # nothing cached in RAM or beside the run
    assert (disk["loss"], disk["char"], disk["phone"]) == (ram["loss"], ram["char"], ram["phone"])


def test_a_worker_hands_over_a_batch_of_thousands_of_utterances(tmp_path):
    """Found by benchmarks/shard_memory.py at 960 h: a tensor per utterance through DataLoader workers
    took a file descriptor each, and 2400 s batches of short utterances hit the limit of 1024."""
    import resource

    from asr.data import BucketingSampler
    from asr.manifest import Utterance
    from asr.train import Example, _batch_examples, _collate, _ExampleSet

    n = resource.getrlimit(resource.RLIMIT_NOFILE)[0] + 500
    examples = [Example(Utterance(f"u{i}", "", 0.1, "a", "s"), torch.full((3, 2), float(i), dtype=torch.float16),
                        torch.tensor([3]), None) for i in range(n)]
    sampler = BucketingSampler([0.1] * n, 0.1 * n, seed=0)
    loader = torch.utils.data.DataLoader(_ExampleSet(examples), batch_sampler=sampler, collate_fn=_collate,
                                         num_workers=1)
    (collated,) = list(loader)
    batch = _batch_examples(examples, collated)
    assert len(batch) == n and all(torch.equal(e.feats, examples[int(e.utt.id[1:])].feats) for e in batch)


@pytest.mark.slow
@needs_fsdd
def test_fsdd_recipe_ends_in_a_bundle_that_decodes_digits_with_its_own_search(tmp_path):
    """recipes/fsdd/run.sh as README gives it: train (best.pt chosen on dev recordings 5-9), a
    digit LM, a bundle tuned and calibrated on dev; on test (recordings 0-4) the bundle's own
    decoding is at least as good as greedy decoding of the same model, and asr.load() uses it."""
    import json
    import os
    import subprocess
    import sys

    import asr

    repo = TEST_DATA.parents[1]
    (tmp_path / "recipes").symlink_to(repo / "recipes")
    r = subprocess.run(["bash", str(repo / "recipes" / "fsdd" / "run.sh"), str(FSDD)], cwd=tmp_path, text=True,
                       capture_output=True, env={**os.environ, "ASR": f"{sys.executable} -m asr", "OMP_NUM_THREADS": "1"},
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    exp = tmp_path / "exp" / "fsdd"
    bundle = json.loads((exp / "test-bundle" / "summary.json").read_text())
    greedy = json.loads((exp / "test-greedy" / "summary.json").read_text())
    assert bundle["utterances"] == greedy["utterances"] == 300 and bundle["decoder"] == "beam"
    assert bundle["wer"] <= greedy["wer"] and bundle["wer"] <= 0.05, (bundle["wer"], greedy["wer"])
    assert f"CER {bundle['cer']:.2%}" in r.stdout and f"CER {greedy['cer']:.2%}" in r.stdout
    rec = asr.load(exp / "bundle")
    assert rec.decoding.lm == str(exp / "bundle" / "lm.arpa") and rec.decoding.calibration is not None
    assert rec.transcribe(TEST_DATA / "3_jackson_0.wav").text == "three"


FSDD_CONFIG = TEST_DATA.parents[1] / "recipes" / "fsdd" / "conf" / "fsdd.toml"


def _fsdd_subset(tmp_path, n: int = 40):
    """``n`` FSDD recordings (0.3-0.8 s each) as a manifest."""
    from asr.manifest import prepare_folder

    prepare_folder(FSDD, FSDD / "SOURCE_manifest.tsv", tmp_path / "all.jsonl")
    write_manifest(read_manifest(tmp_path / "all.jsonl")[::3000 // n][:n], tmp_path / "fsdd.jsonl")
    return tmp_path / "fsdd.jsonl"


def _config_file(path, manifest, out_dir, **extra) -> str:
    """A small TOML config: no SpecAugment or dropout, so that runs differ only by how batches are computed."""
    extra = {"batch_seconds": 8.0, **extra}
    lines = [f'train_manifest = "{manifest}"', f'dev_manifest = "{manifest}"', f'out_dir = "{out_dir}"',
             "warmup_steps = 2", "feature_workers = 1", "threads = 1", "spec_augment = false",
             *(f"{k} = {json.dumps(v)}" for k, v in extra.items()),
             "[model]", "hidden = 32", "layers = 2", "dropout = 0.0"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _torchrun(config: str, *args: str, ranks: int = 2, **kwargs):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
           "-m", "asr", "train", config, "--quiet", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.slow
@needs_fsdd
def test_two_gloo_ranks_train_like_one_process_with_the_same_global_batch(tmp_path):
    """torchrun with 2 CPU ranks (gloo) against one process, same config: the losses agree to 1e-3.

    Not exactly: each rank pads its half of a global batch to its own longest utterance, and the
    backward direction of the BiRNN reads that padding (measured: ~1e-4 relative after 2 epochs).
    """
    manifest = _fsdd_subset(tmp_path)
    config = _config_file(tmp_path / "c.toml", manifest, tmp_path / "two", epochs=2)
    proc = _torchrun(config)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    one = train(TrainConfig.load(config, {"out_dir": str(tmp_path / "one")}), progress=False)
    two = list(csv.DictReader(open(tmp_path / "two" / "log.csv")))
    assert "2 ranks" in (tmp_path / "two" / "train.log").read_text()
    assert len(two) == 2 and two[-1]["epoch"] == "2"
    for key in ("loss", "char", "phone"):
        assert float(two[-1][key]) == pytest.approx(one[key], rel=1e-3), key
    model = load_model(tmp_path / "two" / "last.pt")  # rank 0's checkpoint loads in one process
    ref = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["model"]
    # Adam normalises each step: where a gradient is near zero, the tiny padding difference can flip
    # its sign, a step of up to lr (2e-3) either way; 8 steps bound the drift by 0.016.
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=0.02)


def _process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc (children before parents are killed: all at once)."""
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


@needs_fsdd
def test_killed_two_rank_run_resumes_mid_epoch_with_one_rank(tmp_path):
    """SIGKILL every process of a 2-rank run inside an epoch; --resume in one process completes it.

    last.pt is written every step (``save_every_steps = 1``); the kill follows its first
    appearance, inside epoch 1. The resumed run starts at the saved batch, with the same global
    batches dealt to one rank.
    """
    import os
    import signal
    import time

    manifest = _fsdd_subset(tmp_path)
    config = _config_file(tmp_path / "c.toml", manifest, tmp_path / "exp", epochs=3, save_every_steps=1,
                          batch_seconds=1.0)  # ~30 steps an epoch: the kill lands inside the first
    proc = _torchrun(config)
    last = tmp_path / "exp" / "last.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if last.is_file():  # the first save: after batch 1 of epoch 1
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.communicate()[0]
    for pid in _process_tree(proc.pid):  # the launcher and both ranks (each in its own session), as a scheduler ends a job
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    saved = torch.load(last, weights_only=True)
    assert saved["world_size"] == 2 and saved["batch"] > 0 and saved["epoch"] < 3
    row = train(TrainConfig.load(config), resume=True, progress=False)
    log = (tmp_path / "exp" / "train.log").read_text()
    assert f"batch {saved['batch']}; saved by 2 rank(s), now 1" in log
    assert row["epoch"] == 3 and "dev_per" in row
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "exp" / "log.csv"))] == ["1", "2", "3"]
    load_model(tmp_path / "exp" / "best.pt")


# Run `asr train` in a child that SIGKILLs itself at its Nth checkpoint write: "during" it (the
# temporary file half written, the rename never done) or right "after" it. Counting writes makes
# the kill points random (the test draws N) yet independent of how fast the machine is.
_DIE_AT_A_WRITE = """
import os, signal, sys
import asr.io
from asr.cli import main

target, when, calls, atomic = int(sys.argv[1]), sys.argv[2], [0], asr.io._atomic

def dying(path, write):
    if os.path.basename(path) not in ("last.pt", "best.pt"):  # checkpoints, not feature caches
        return atomic(path, write)
    calls[0] += 1
    if calls[0] != target:
        return atomic(path, write)
    if when == "after":
        atomic(path, write)
        os.kill(os.getpid(), signal.SIGKILL)

    def half_then_die(f):
        write(f)
        f.flush()
        f.truncate(f.tell() // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return atomic(path, half_then_die)

asr.io._atomic = dying
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.slow
@needs_fsdd
def test_training_killed_at_three_points_resumes_to_the_same_model(tmp_path):
    """SIGKILL an FSDD run at a random step inside epoch 1, in the middle of a random later
    checkpoint write, and at a random step after epoch 1; --resume after each. No checkpoint is
    ever unreadable, and the resumed run ends with exactly the uninterrupted run's dev figures
    and weights (it resumes at the saved batch with the saved optimizer, schedule and random
    states; every step is saved)."""
    import random
    import signal
    import subprocess
    import sys

    manifest = _fsdd_subset(tmp_path)
    whole = _config_file(tmp_path / "whole.toml", manifest, tmp_path / "whole", epochs=3, save_every_steps=1,
                         batch_seconds=1.0)
    reference = train(TrainConfig.load(whole), progress=False)
    config = _config_file(tmp_path / "c.toml", manifest, tmp_path / "exp", epochs=3, save_every_steps=1,
                          batch_seconds=1.0)  # ~29 steps an epoch, each saved
    out = tmp_path / "exp"
    rng = random.Random(0)

    def checkpoints_readable():
        for name in ("last.pt", "best.pt"):
            if (out / name).exists():
                torch.load(out / name, weights_only=True)  # raises if torn

    def killed(n, when, *resume):
        proc = subprocess.run([sys.executable, "-c", _DIE_AT_A_WRITE, str(n), when, "train", config, "--quiet",
                               *resume], capture_output=True, text=True, timeout=300)
        assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
        checkpoints_readable()
        return torch.load(out / "last.pt", weights_only=True)

    # 1. right after a random step of epoch 1
    n = rng.randint(2, 20)
    first = killed(n, "after")
    assert (first["epoch"], first["batch"]) == (0, n)
    # 2. in the middle of a random checkpoint write, later
    killed(rng.randint(3, 20), "during", "--resume")
    assert list(out.glob(".last.pt.*.tmp")), "the kill did not land inside a write"
    # 3. right after a random step after epoch 1
    third = killed(rng.randint(40, 60), "after", "--resume")
    assert third["epoch"] >= 1
    final = train(TrainConfig.load(config), resume=True, progress=False)
    assert not list(out.glob(".*.tmp")), "a resumed run leaves no temporary file behind"
    for key in ("epoch", "loss", "dev_per", "dev_cer"):
        assert final[key] == reference[key], key
    assert [r["epoch"] for r in csv.DictReader(open(out / "log.csv"))] == ["1", "2", "3"]
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    b = torch.load(out / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
