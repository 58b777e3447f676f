"""asr.rnn: the model exported from torch and run in numpy gives what the torch model gives."""

import dataclasses

import json

import numpy as np
import pytest

from asr.rnn import ExportError, ModelConfig, RNNModel

torch = pytest.importorskip("torch")  # the models to compare with are trained (made) by torch

from asr.model import AcousticModel, export  # noqa: E402


def _pair(config: ModelConfig, seed: int = 0) -> tuple[AcousticModel, RNNModel]:
    torch.manual_seed(seed)
    model = AcousticModel(config).eval()
    with torch.no_grad():  # non-trivial LayerNorm parameters, so that they are checked too
        for name, p in model.named_parameters():
            if "norm" in name or "input.1" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model, export(model)


@pytest.mark.parametrize("bidirectional,nonlinearity,residual,proj,lookahead,condition", [
    (True, "tanh", False, 0, 0, False), (False, "relu", True, 0, 2, False), (True, "tanh", True, 12, 0, True),
    (False, "tanh", False, 0, 0, True)])
def test_exported_model_gives_the_torch_models_output_for_a_batch_of_any_lengths(
        bidirectional, nonlinearity, residual, proj, lookahead, condition):
    config = ModelConfig(hidden=16, layers=3, bidirectional=bidirectional, nonlinearity=nonlinearity,
                         residual=residual, proj=proj, lookahead=lookahead, inter_layer=1 if condition else 0,
                         self_condition=condition, dropout=0.0)
    model, rnn = _pair(config)
    rng = np.random.default_rng(1)
    feats = [rng.standard_normal((n, 40)).astype(np.float32) for n in (50, 31, 7, 50)]
    batched = {tuple(i): out for i, out in rnn.forward_batches(feats)}
    assert sorted(i for idx in batched for i in idx) == [0, 1, 2, 3]
    for idx, out in batched.items():
        for b, i in enumerate(idx):
            with torch.no_grad():
                ref = model(torch.from_numpy(feats[i])[None], torch.tensor([len(feats[i])]))
            n = int(ref["lengths"][0])
            assert out["lengths"][b] == n
            for head in ("char", "phone"):
                assert out[head].dtype == np.float32
                np.testing.assert_allclose(out[head][b, :n], ref[head][0].numpy(), atol=2e-5, rtol=0)


def test_save_and_load_round_trip_and_bad_files(tmp_path):
    _, rnn = _pair(ModelConfig(hidden=8, layers=2, dropout=0.0))
    rnn.save(tmp_path / "m.npz")
    again = RNNModel.load(tmp_path / "m.npz")
    assert again.config == rnn.config and again.w.keys() == rnn.w.keys()
    assert all(np.array_equal(again.w[k], rnn.w[k]) for k in rnn.w)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    for name, problem in (("missing.npz", "not found"), ("junk.npz", "not a readable exported model")):
        with pytest.raises(ExportError, match=problem) as e:
            RNNModel.load(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and "\n" not in str(e.value)
    partial = {k: v for k, v in rnn.w.items() if k != "char_head.bias"}
    np.savez(tmp_path / "partial.npz", __config__=np.load(tmp_path / "m.npz")["__config__"], **partial)
    with pytest.raises(ExportError, match="lacks char_head.bias"):
        RNNModel.load(tmp_path / "partial.npz")


def test_int8_storage_is_a_quarter_of_the_size_and_each_weight_within_half_a_step(tmp_path):
    _, rnn = _pair(ModelConfig(hidden=64, layers=2, dropout=0.0))
    rnn.save(tmp_path / "f32.npz")
    rnn.save(tmp_path / "i8.npz", int8=True)
    assert json.loads(str(np.load(tmp_path / "f32.npz")["__config__"]))["format"] == 1  # as before int8 storage
    assert json.loads(str(np.load(tmp_path / "i8.npz")["__config__"]))["format"] == 2
    assert (tmp_path / "i8.npz").stat().st_size < 0.35 * (tmp_path / "f32.npz").stat().st_size  # biases stay float32
    again = RNNModel.load(tmp_path / "i8.npz")
    assert again.config == rnn.config and again.w.keys() == rnn.w.keys()
    for k, w in rnn.w.items():
        assert again.w[k].dtype == np.float32
        if w.ndim == 2:  # within half a step of its row's scale, and not all equal to it
            step = np.abs(w).max(axis=1, keepdims=True) / 127
            assert (np.abs(again.w[k] - w) <= step / 2 + 1e-7).all() and not np.array_equal(again.w[k], w)
        else:
            assert np.array_equal(again.w[k], w)
    feats = np.random.default_rng(0).standard_normal((2, 30, 40)).astype(np.float32)
    exact, stored = rnn.forward(feats, np.array([30, 20])), again.forward(feats, np.array([30, 20]))
    np.testing.assert_allclose(np.exp(stored["char"]), np.exp(exact["char"]), atol=0.02)
    with np.load(tmp_path / "i8.npz") as z:  # a scale of the wrong length: refused, named
        arrays = {k: z[k] for k in z.files}
    arrays["char_head.weight.scale"] = arrays["char_head.weight.scale"][:-1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ExportError, match="char_head.weight.scale scales no int8 matrix"):
        RNNModel.load(tmp_path / "bad.npz")


def test_a_pickled_object_in_an_exported_model_is_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", __config__=np.array([{"config": {}}], dtype=object))
    with pytest.raises(ExportError, match="not a readable exported model"):
        RNNModel.load(tmp_path / "evil.npz")


@pytest.mark.parametrize("nonlinearity,lookahead", [("tanh", 0), ("relu", 0), ("tanh", 2)])
def test_forward_chunk_of_a_unidirectional_model_is_the_whole_forward(nonlinearity, lookahead):
    _, m = _pair(ModelConfig(hidden=16, layers=3, bidirectional=False, nonlinearity=nonlinearity,
                             inter_layer=1, self_condition=True, residual=True, lookahead=lookahead, dropout=0.0))
    feats = np.random.default_rng(0).standard_normal((50, 40)).astype(np.float32)  # 17 steps of 3 frames
    whole = m.forward(feats[None], np.array([50]))
    for steps in (1, 2, 5, 17):
        outs, state = [], None
        for start in range(0, 50, steps * 3):
            n = min(steps, -(-(50 - start) // 3))
            # a right context of the look-ahead's 2 steps (more changes nothing for a model that only looks back)
            out, state = m.forward_chunk(feats[start:start + steps * 3 + 6], n, state)
            outs.append(out)
        for head in ("char", "phone"):
            np.testing.assert_allclose(np.concatenate([o[head] for o in outs]), whole[head][0], atol=1e-5, rtol=0)


def test_forward_chunk_of_a_bidirectional_model_hears_only_its_right_context():
    _, m = _pair(ModelConfig(hidden=16, layers=2, bidirectional=True, dropout=0.0))
    feats = np.random.default_rng(0).standard_normal((60, 40)).astype(np.float32)
    whole = m.forward(feats[None], np.array([60]))["phone"][0]
    out, _ = m.forward_chunk(feats, 20)  # one chunk of everything: the whole forward
    np.testing.assert_allclose(out["phone"], whole, atol=1e-5, rtol=0)
    first, state = m.forward_chunk(feats[:36], 6)  # 6 steps, 6 more of right context
    changed = feats.copy()
    changed[36:] += 5.0  # audio beyond the right context
    again, _ = m.forward_chunk(changed[:36], 6)
    assert np.array_equal(first["phone"], again["phone"])
    assert not np.allclose(first["phone"], whole[:6], atol=1e-3)  # it is not the whole's output
    assert len(state) == 2 and state[0].shape == (1, 16)


def test_model_config_checks_its_values_where_it_is_made():
    from asr.errors import ConfigError

    for bad, match in (({"nonlinearity": "gelu"}, "nonlinearity"), ({"lookahead": -1}, "lookahead"),
                       ({"layers": 3, "inter_layer": 3}, "inter_layer"), ({"self_condition": True}, "self_condition"),
                       ({"identity_init": True, "orthogonal_init": True}, "exclude")):
        with pytest.raises(ConfigError, match=match):
            ModelConfig(**bad)


def test_an_ensemble_combines_each_frame_of_its_members_by_hand():
    from asr.rnn import Ensemble, EnsembleConfig

    config = ModelConfig(hidden=8, layers=2, dropout=0.0)
    members = [_pair(config, seed)[1] for seed in (0, 1)]
    feats = np.random.default_rng(2).standard_normal((1, 20, 40)).astype(np.float32)
    a, b = (m.forward(feats, np.array([20])) for m in members)
    mean = Ensemble(members, EnsembleConfig(rule="mean")).forward(feats, np.array([20]))
    weighted = Ensemble(members, EnsembleConfig(("m2",), (3.0, 1.0), "mean")).forward(feats, np.array([20]))
    product = Ensemble(members, EnsembleConfig(rule="product")).forward(feats, np.array([20]))
    for head in ("char", "phone"):
        pa, pb = np.exp(a[head].astype(np.float64)), np.exp(b[head].astype(np.float64))
        np.testing.assert_allclose(mean[head], np.log((pa + pb) / 2), atol=1e-5, rtol=0)
        np.testing.assert_allclose(weighted[head], np.log(0.75 * pa + 0.25 * pb), atol=1e-5, rtol=0)
        geo = np.sqrt(pa * pb)
        np.testing.assert_allclose(product[head], np.log(geo / geo.sum(-1, keepdims=True)), atol=1e-5, rtol=0)
        np.testing.assert_allclose(np.exp(mean[head]).sum(-1), 1.0, atol=1e-5)
    assert np.array_equal(mean["lengths"], a["lengths"])
    alone = Ensemble(members, EnsembleConfig(("m2",), (1.0, 0.0), "mean")).forward(feats, np.array([20]))
    np.testing.assert_allclose(alone["phone"], a["phone"], atol=1e-6, rtol=0)  # weight 0: the first alone
    # n-best combination: the first model's output, the other's beside it with its weight relative to the first's
    nbest = Ensemble(members, EnsembleConfig(("m2",), (2.0, 1.0))).forward(feats, np.array([20]))
    assert np.array_equal(nbest["phone"], a["phone"]) and np.array_equal(nbest["members"][0]["char"], b["char"])
    assert nbest["member_weights"] == [0.5]


def test_an_ensemble_gives_per_item_results_in_a_batch_and_streams_chunk_by_chunk():
    from asr.rnn import Ensemble, EnsembleConfig

    uni = ModelConfig(hidden=8, layers=2, bidirectional=False, lookahead=1, dropout=0.0)
    members = [_pair(uni, 0)[1], _pair(dataclasses.replace(uni, lookahead=2, hidden=12), 1)[1]]
    ens = Ensemble(members, EnsembleConfig(rule="mean"))
    assert ens.config.lookahead == 2 and not ens.config.bidirectional
    rng = np.random.default_rng(3)
    feats = [rng.standard_normal((n, 40)).astype(np.float32) for n in (45, 12, 30)]
    for idx, out in ens.forward_batches(feats):
        for b, i in enumerate(idx):
            one = ens.forward(feats[i][None], np.array([len(feats[i])]))
            n = int(one["lengths"][0])
            np.testing.assert_allclose(out["phone"][b, :n], one["phone"][0], atol=1e-5, rtol=0)
    whole = ens.forward(feats[0][None], np.array([45]))  # 15 steps of 3 frames
    outs, state = [], None
    for start in range(0, 45, 5 * 3):
        out, state = ens.forward_chunk(feats[0][start:start + 15 + 6], 5, state)  # right context: 2 steps
        outs.append(out["char"])
    assert len(state) == 2
    np.testing.assert_allclose(np.concatenate(outs), whole["char"][0], atol=1e-5, rtol=0)


def test_an_ensemble_refuses_members_that_do_not_fit_and_bad_settings():
    from asr.errors import ConfigError
    from asr.features import FeatureConfig
    from asr.rnn import Ensemble, EnsembleConfig

    first = _pair(ModelConfig(hidden=8, layers=2, dropout=0.0))[1]
    for other, what in ((ModelConfig(hidden=8, layers=2, stack=2, dropout=0.0), "stack"),
                        (ModelConfig(hidden=8, layers=2, dropout=0.0, features=FeatureConfig(n_mfcc=13)), "features")):
        with pytest.raises(ConfigError, match=f"member 2 differs from the first in {what}"):
            Ensemble([first, _pair(other)[1]])
    for bad, match in (({"rule": "vote"}, "rule must be one of nbest, mean, product"),
                       ({"members": ("a",), "weights": (1.0,)}, "one per model"),
                       ({"members": ("a",), "weights": (0.0, 0.0)}, "not all 0"),
                       ({"members": ("a",), "weights": (1.0, -1.0)}, "non-negative")):
        with pytest.raises(ConfigError, match=match):
            EnsembleConfig(**bad)
    with pytest.raises(ConfigError, match="searches with its first model"):
        Ensemble([first, first], EnsembleConfig(("a",), (0.0, 1.0)))
