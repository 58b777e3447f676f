import numpy as np
import pytest
import torch

from asr.data import BucketingSampler, load_features, pad_features, spec_augment
from asr.manifest import ManifestError, read_manifest
from asr.features import FeatureConfig, file_features
from conftest import TEST_DATA


@pytest.mark.parametrize("n", [1, 2, 7, 13, 101])
def test_sampler_gives_every_rank_as_many_batches_and_covers_each_utterance_once(n):
    """Awkward sizes (fewer utterances than ranks, odd counts, one 200 s utterance): counts stay equal."""
    durations = [float(d) for d in np.random.default_rng(n).uniform(1, 20, n)]
    durations[0] = 200.0  # longer than a batch: a global batch of one, repeated on every rank
    for world in (1, 2, 3, 5):
        samplers = [BucketingSampler(durations, 60.0, world, rank, seed=4) for rank in range(world)]
        for epoch in (1, 2):
            for s in samplers:
                s.set_epoch(epoch)
            per_rank = [list(s) for s in samplers]
            assert len({len(b) for b in per_rank}) == 1  # equal counts: DDP never waits for a missing batch
            assert all(len(b) > 0 for batches in per_rank for b in batches)
            used = [i for batches in per_rank for b in batches for i in b]
            assert sorted(set(used)) == list(range(n))
            assert len(used) == n + samplers[0].repeated  # each once, apart from the stated repeats
            assert samplers[0].repeated == sum(max(0, world - len(b)) for b in samplers[0].batches)
            # The global batch of each step does not depend on the world size.
            single = BucketingSampler(durations, 60.0, seed=4)
            single.set_epoch(epoch)
            for step, batch in enumerate(single):
                merged = [i for batches in per_rank for i in batches[step]]
                assert sorted(set(merged)) == sorted(batch)
                assert sorted(samplers[0].global_batch(step)) == sorted(merged)


def test_sampler_epochs_differ_and_a_resumed_epoch_starts_at_its_position():
    durations = [float(d) for d in np.random.default_rng(0).uniform(1, 20, 300)]
    s = BucketingSampler(durations, 60.0, 2, 1, seed=0)
    s.set_epoch(3)
    whole = list(s)
    s.set_epoch(3, start=5)
    assert list(s) == whole[5:] and len(s) == len(whole) - 5
    s.set_epoch(4)
    assert list(s) != whole
    with pytest.raises(ValueError, match="rank 2"):
        BucketingSampler(durations, 60.0, 2, 2)


def test_pad_and_spec_augment():
    feats = [torch.ones(5, 4, dtype=torch.float16), torch.ones(3, 4, dtype=torch.float16)]
    x, lengths = pad_features(feats)
    assert x.dtype == torch.float32 and x.shape == (2, 5, 4) and lengths.tolist() == [5, 3]
    assert x[1, 3:].abs().sum() == 0
    g = torch.Generator().manual_seed(0)
    y = spec_augment(x, lengths, freq_masks=1, freq_width=2, time_masks=1, time_ratio=0.4, generator=g)
    assert y.shape == x.shape and (y <= x).all() and x.sum() == 32  # input untouched
    assert ((y == 0) & (x == 1)).any()  # something was masked
    # Each mask is whole: a frequency band zeroes its coefficients in every frame of the utterance.
    g = torch.Generator().manual_seed(1)
    y = spec_augment(torch.ones(1, 50, 10), torch.tensor([50]), freq_masks=1, freq_width=3, time_masks=0,
                     time_ratio=0.0, generator=g)
    zero_cols = (y[0] == 0).all(0)
    assert 1 <= int(zero_cols.sum()) <= 3 and int((y[0] == 0).sum()) == 50 * int(zero_cols.sum())


def test_load_features_cache(tmp_path):
    utts = read_manifest(TEST_DATA / "manifest.jsonl")
    cfg = FeatureConfig()
    feats = load_features(utts, cfg, tmp_path / "cache.pt", progress=False)
    torch.testing.assert_close(feats[0].float(), torch.from_numpy(file_features(utts[0].audio, cfg)), atol=1e-2, rtol=1e-2)
    again = load_features(utts, cfg, tmp_path / "cache.pt", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(feats, again))
    saved = torch.load(tmp_path / "cache.pt", weights_only=True)  # the cache is what is read, not recomputed:
    saved["features"][0] = torch.full_like(saved["features"][0], 7)
    torch.save(saved, tmp_path / "cache.pt")
    assert (load_features(utts, cfg, tmp_path / "cache.pt", progress=False)[0] == 7).all()
    other = load_features(utts, FeatureConfig(n_mfcc=13), tmp_path / "cache.pt", progress=False)  # another key
    assert other[0].shape[1] == 13


def test_load_features_speed_perturbed_has_its_own_cache(tmp_path):
    utts = read_manifest(TEST_DATA / "manifest.jsonl")[:1]
    cfg = FeatureConfig()
    normal = load_features(utts, cfg, tmp_path / "cache.pt", progress=False)
    fast = load_features(utts, cfg, tmp_path / "cache.pt", progress=False, speed=1.1)  # same file: key must differ
    assert abs(fast[0].shape[0] - normal[0].shape[0] / 1.1) <= 2
    assert load_features(utts, cfg, tmp_path / "cache.pt", progress=False, speed=1.1)[0].shape == fast[0].shape


def test_feature_caches_and_shards_of_another_features_version_are_not_used(tmp_path, monkeypatch):
    # A cache written before the feature computation changed (run 3's predated the
    # digital-silence CMVN) must be recomputed, not read: its key holds FEATURES_VERSION.
    import asr.data
    from asr.data import FeatureShards, write_feature_shards

    utts = read_manifest(TEST_DATA / "manifest.jsonl")[:1]
    cfg = FeatureConfig()
    load_features(utts, cfg, tmp_path / "cache.pt", progress=False)
    folder = write_feature_shards(utts, cfg, tmp_path / "f", workers=1, progress=False)
    saved = torch.load(tmp_path / "cache.pt", weights_only=True)
    saved["features"][0] = torch.full_like(saved["features"][0], 7)
    torch.save(saved, tmp_path / "cache.pt")
    monkeypatch.setattr(asr.data, "FEATURES_VERSION", asr.data.FEATURES_VERSION + 1)
    assert not (load_features(utts, cfg, tmp_path / "cache.pt", progress=False)[0] == 7).all()
    with pytest.raises(ManifestError, match="another manifest or feature config"):
        FeatureShards(folder, utts, cfg)


def test_feature_shards_hold_the_cached_features_and_check_their_key(tmp_path):
    from asr.data import FeatureShards, ShardedFeature, write_feature_shards

    utts = read_manifest(TEST_DATA / "manifest.jsonl")
    config = FeatureConfig()
    cached = load_features(utts, config, progress=False, speed=0.9)
    folder = write_feature_shards(utts, config, tmp_path / "f", workers=1, speed=0.9, progress=False)
    shards = FeatureShards(folder, utts, config, speed=0.9)
    assert len(shards) == len(utts)
    for i, f in enumerate(cached):
        assert shards.frames(i) == f.shape[0] and ShardedFeature(shards, i).shape == tuple(f.shape)
        assert torch.equal(shards[i], f)
    assert oct((folder / "index.jsonl").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    mtime = (folder / "shard-00000.f16").stat().st_mtime_ns
    write_feature_shards(utts, config, folder, workers=1, speed=0.9, progress=False)  # complete: left as it is
    assert (folder / "shard-00000.f16").stat().st_mtime_ns == mtime
    for other in ({"speed": 1.0}, {"utts": utts[:2]}):
        with pytest.raises(ManifestError, match="another manifest or feature config"):
            FeatureShards(folder, other.get("utts", utts), config, other.get("speed", 0.9))
    with pytest.raises(ManifestError, match="asr features"):
        FeatureShards(tmp_path / "none", utts, config)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
