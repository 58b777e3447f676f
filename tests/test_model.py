import dataclasses

import pytest
import torch

from asr.errors import ConfigError
from asr.model import (AcousticModel, CheckpointError, Dropout, ModelConfig, average_checkpoints, load_model, rnn_layer,
                       save_checkpoint)

SMALL = ModelConfig(hidden=16, layers=2, stack=3, dropout=0.0)


def test_shapes_and_lengths():
    model = AcousticModel(SMALL).eval()
    x = torch.randn(2, 10, SMALL.features.dim)
    out = model(x, torch.tensor([10, 7]))
    assert out["char"].shape == (2, 4, SMALL.n_chars) and out["phone"].shape == (2, 4, SMALL.n_phones)
    assert out["lengths"].tolist() == [4, 3]  # ceil(10/3), ceil(7/3)
    torch.testing.assert_close(out["char"].exp().sum(-1), torch.ones(2, 4))


@pytest.mark.parametrize("p", [0.15, 0.5, 0.8])
def test_dropout_keeps_1_minus_p_scaled_and_each_lane_alike(p):
    drop = Dropout(p).train()
    torch.manual_seed(0)
    x = torch.full((4000, 1000), 2.0, requires_grad=True)  # 4 M elements: binomial sd of the share 0.0002-0.00025
    y = drop(x)
    kept = y != 0
    scale = 1 / (1 - p)  # p = 0.15 is 9830 of 65536 values: 1/(1-p) is exact to 1e-5
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 * scale), rtol=1e-4, atol=0)
    assert abs(kept.float().mean().item() - (1 - p)) < 0.002
    # Each 64-bit draw serves 4 neighbouring elements (16 bits each): every lane must keep 1 - p.
    # (The top lane of torch's int64 random_() without bounds has its sign bit always 0.)
    lanes = kept.flatten().view(-1, Dropout.LANES).float().mean(0)
    assert (lanes - (1 - p)).abs().max().item() < 0.004, lanes
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, y.detach() / 2.0)  # the gradient is the mask


def test_dropout_is_seeded_off_in_eval_and_rejects_bad_p():
    x = torch.randn(3, 50, 8)
    drop = Dropout(0.3).train()
    torch.manual_seed(1)
    a = drop(x)
    torch.manual_seed(1)
    torch.testing.assert_close(drop(x), a, rtol=0, atol=0)
    assert not torch.equal(drop(x), a)
    assert torch.equal(drop.eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)
    with pytest.raises(ConfigError, match="dropout"):
        Dropout(1.0)


def test_stack_frames():
    model = AcousticModel(SMALL)
    x = torch.arange(2 * 4 * 2, dtype=torch.float).reshape(2, 4, 2)  # 2 utterances, 4 frames of 2 coefficients
    s = model.stack_frames(x)
    assert s.shape == (2, 2, 6)
    # each step: 3 consecutive frames whole, one after the other; the last step padded with zeros
    assert s[0].tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 0, 0, 0, 0]]
    assert s[1].tolist() == [[8, 9, 10, 11, 12, 13], [14, 15, 0, 0, 0, 0]]


def test_stack_frames_with_lookahead_appends_the_next_steps():
    model = AcousticModel(ModelConfig(stack=2, lookahead=2, hidden=8, layers=1))
    x = torch.arange(1, 8, dtype=torch.float).reshape(1, 7, 1)  # 7 frames of 1 coefficient: 4 steps of 2
    s = model.stack_frames(x)
    assert s.shape == (1, 4, 6)
    # each step, then the next two steps' frames, zeros past the end
    assert s[0].tolist() == [[1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 0], [5, 6, 7, 0, 0, 0], [7, 0, 0, 0, 0, 0]]
    assert model.input[0].in_features == model.config.features.dim * 2 * 3
    with pytest.raises(ConfigError, match="lookahead"):
        AcousticModel(ModelConfig(lookahead=-1))


@pytest.mark.parametrize("bidirectional,nonlinearity,residual,proj,lookahead", [
    (True, "tanh", False, 0, 0), (False, "relu", False, 0, 0), (True, "tanh", True, 0, 0), (True, "tanh", True, 6, 0),
    (False, "tanh", False, 0, 2)])
def test_batch_equals_single(bidirectional, nonlinearity, residual, proj, lookahead):
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=16, layers=2, bidirectional=bidirectional, nonlinearity=nonlinearity, residual=residual,
                      proj=proj, lookahead=lookahead)
    model = AcousticModel(cfg).eval()
    feats = [torch.randn(n, cfg.features.dim) for n in (30, 17, 9)]
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    out = model(x, torch.tensor([30, 17, 9]))
    for i, f in enumerate(feats):
        single = model(f[None], torch.tensor([len(f)]))
        n = int(single["lengths"][0])
        assert int(out["lengths"][i]) == n
        torch.testing.assert_close(out["char"][i, :n], single["char"][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out["phone"][i, :n], single["phone"][0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bidirectional,nonlinearity", [(True, "tanh"), (False, "tanh"), (True, "relu"), (False, "relu")])
def test_rnn_layer_is_nn_rnn_forward_and_backward(bidirectional, nonlinearity):
    """The CPU layer gives nn.RNN's output and the gradients of its input and of all its parameters."""
    torch.manual_seed(0)
    rnn = torch.nn.RNN(6, 5, nonlinearity=nonlinearity, bidirectional=bidirectional).double()
    x = torch.randn(9, 3, 6, dtype=torch.double, requires_grad=True)  # (T, B, I), time-major
    y_ref, _ = rnn(x)
    g = torch.randn_like(y_ref)
    grads_ref = torch.autograd.grad(y_ref, [x, *rnn.parameters()], g)
    y = rnn_layer(rnn, x)
    grads = torch.autograd.grad(y, [x, *rnn.parameters()], g)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    names = ["x"] + [n for n, _ in rnn.named_parameters()]
    for name, a, b in zip(names, grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=name)
    assert torch.autograd.gradcheck(lambda x: rnn_layer(rnn, x), (x[:4, :2],))  # against finite differences too


def test_rnn_layer_under_bf16_autocast_is_close_to_nn_rnn_and_returns_fp32_gradients():
    torch.manual_seed(0)
    rnn = torch.nn.RNN(16, 32, bidirectional=True)
    x = torch.randn(40, 4, 16, requires_grad=True)
    outs = []
    for f in (lambda x: rnn(x)[0], lambda x: rnn_layer(rnn, x)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = f(x)
        assert y.dtype == torch.bfloat16
        outs.append((y.float(), torch.autograd.grad(y.float().square().sum(), [x, rnn.weight_hh_l0_reverse])))
    (y, (gx, gw)), (y_ref, (gx_ref, gw_ref)) = outs
    assert gx.dtype == gw.dtype == torch.float32
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0.05)
    for a, b in ((gx, gx_ref), (gw, gw_ref)):  # bf16 has 8 bits of mantissa: 2 % of the gradient's scale
        assert (a - b).abs().max() < 0.02 * b.abs().max()


def test_rejects_other_cells():
    with pytest.raises(ValueError, match="nonlinearity"):
        AcousticModel(ModelConfig(nonlinearity="gelu"))
    assert all(isinstance(r, torch.nn.RNN) for r in AcousticModel(SMALL).rnns)


def test_checkpoint_round_trip(tmp_path):
    model = AcousticModel(SMALL).eval()
    save_checkpoint(tmp_path / "m.pt", model, epoch=3)
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.config == SMALL
    x = torch.randn(1, 12, SMALL.features.dim)
    torch.testing.assert_close(loaded(x, torch.tensor([12]))["char"], model(x, torch.tensor([12]))["char"])


def test_bad_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(CheckpointError, match="junk.pt: not a PyTorch checkpoint"):
        load_model(tmp_path / "junk.pt")


def test_residual_adds_each_layers_input():
    """With the RNN weights at zero a layer outputs tanh(0) = 0: the residual model then passes its input on."""
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=8, layers=3, dropout=0.0, residual=True)
    model = AcousticModel(cfg).eval()
    for rnn in model.rnns[1:]:
        for p in rnn.parameters():
            torch.nn.init.zeros_(p)
    x = torch.randn(1, 9, cfg.features.dim)
    captured = []
    model.norms[0].register_forward_hook(lambda m, i, o: captured.append(o))
    model.norms[1].register_forward_hook(lambda m, i, o: captured.append(i[0]))
    model(x, torch.tensor([9]))
    torch.testing.assert_close(captured[1], captured[0])  # layer 2's norm sees layer 1's output + 0
    plain = AcousticModel(ModelConfig(hidden=8, layers=3, dropout=0.0))
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain.eval()(x, torch.tensor([9]))["char"], model(x, torch.tensor([9]))["char"])


@pytest.mark.parametrize("train", [False, True])
def test_projection_is_a_low_rank_input_matrix(train):
    """proj=P puts a (2H -> P) Linear before layers 2..L: the model equals the unprojected one whose
    W_ih of those layers is W_ih @ proj (training mode runs rnn_layer, eval mode nn.RNN)."""
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=8, layers=3, dropout=0.0, proj=5)
    model = AcousticModel(cfg).train(train)
    assert [r.weight_ih_l0.shape for r in model.rnns] == [(8, 8), (8, 5), (8, 5)]
    plain = AcousticModel(ModelConfig(hidden=8, layers=3, dropout=0.0)).train(train)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("projs.")}
    for i in (1, 2):
        for suffix in ("l0", "l0_reverse"):
            key = f"rnns.{i}.weight_ih_{suffix}"
            state[key] = state[key] @ model.projs[i - 1].weight.detach()
    plain.load_state_dict(state)
    x, lengths = torch.randn(2, 12, cfg.features.dim), torch.tensor([12, 7])
    torch.testing.assert_close(model(x, lengths)["phone"], plain(x, lengths)["phone"], atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in plain.parameters())


def test_inter_layer_head_in_training_only():
    """inter_layer=1: training adds the phone head of layer 1's output (a function of layer 1 alone); eval does not."""
    torch.manual_seed(0)
    model = AcousticModel(ModelConfig(hidden=8, layers=3, dropout=0.0, inter_layer=1)).train()
    x, lengths = torch.randn(2, 12, model.config.features.dim), torch.tensor([12, 7])
    out = model(x, lengths)
    assert out["phone_inter"].shape == out["phone"].shape == (2, 4, model.config.n_phones)
    torch.testing.assert_close(out["phone_inter"].exp().sum(-1), torch.ones(2, 4))
    with torch.no_grad():
        for p in model.rnns[1].parameters():
            p.add_(1.0)  # a layer above the head: the head's output stays, the top's changes
    again = model(x, lengths)
    torch.testing.assert_close(again["phone_inter"], out["phone_inter"])
    assert not torch.allclose(again["phone"], out["phone"])
    assert "phone_inter" not in model.eval()(x, lengths)
    for bad in (3, -1):
        with pytest.raises(ConfigError, match="inter_layer"):
            AcousticModel(ModelConfig(hidden=8, layers=3, inter_layer=bad))


def test_self_condition_feeds_the_inter_head_back():
    """self_condition: layer 2 reads layer 1's output + Linear(softmax(inter head)), in training and in eval.
    With that Linear zeroed the model is the plain InterCTC one; batched eval equals each utterance alone."""
    torch.manual_seed(0)
    config = ModelConfig(hidden=8, layers=3, dropout=0.0, inter_layer=1, self_condition=True)
    model = AcousticModel(config).eval()
    plain = AcousticModel(dataclasses.replace(config, self_condition=False)).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("condition.")})
    x, lengths = torch.randn(2, 12, config.features.dim), torch.tensor([12, 7])
    conditioned = model(x, lengths)["phone"]
    assert not torch.allclose(conditioned, plain(x, lengths)["phone"])
    with torch.no_grad():
        torch.nn.init.zeros_(model.condition.weight)
        torch.nn.init.zeros_(model.condition.bias)
    torch.testing.assert_close(model(x, lengths)["phone"], plain(x, lengths)["phone"])
    model.train()
    torch.testing.assert_close(model(x, lengths)["phone_inter"], plain.train()(x, lengths)["phone_inter"])
    # by hand: weights c 1^T on posteriors that sum to 1 shift layer 2's input by c, adding W_ih c to its pre-activations
    c = torch.randn(2 * config.hidden)
    with torch.no_grad():
        model.condition.weight.copy_(c[:, None].expand(-1, config.n_phones))
        for sfx in ("_l0", "_l0_reverse"):
            getattr(plain.rnns[1], "bias_ih" + sfx).add_(getattr(plain.rnns[1], "weight_ih" + sfx) @ c)
    torch.testing.assert_close(model.eval()(x, lengths)["phone"], plain.eval()(x, lengths)["phone"])
    # batched eval (packed) = alone
    torch.nn.init.normal_(model.condition.weight)
    x[1, 7:] = 0.0  # padding, as a batch holds it
    both = model(x, lengths)["phone"]
    alone = model(x[1:, :7], lengths[1:])["phone"]
    torch.testing.assert_close(both[1:, :3], alone, atol=1e-5, rtol=1e-5)
    # in training, the top head's loss reaches the condition Linear and, through it, the inter head;
    # without self_condition the inter head gets no gradient from the top head
    model.train().zero_grad()
    model(x, lengths)["phone"].sum().backward()
    assert model.condition.weight.grad.abs().sum() > 0 and model.inter_head.weight.grad.abs().sum() > 0
    plain.train().zero_grad()
    plain(x, lengths)["phone"].sum().backward()
    assert plain.inter_head.weight.grad is None or not plain.inter_head.weight.grad.any()
    with pytest.raises(ConfigError, match="self_condition"):
        AcousticModel(ModelConfig(hidden=8, layers=3, self_condition=True))


def test_identity_init_irnn():
    model = AcousticModel(ModelConfig(hidden=8, layers=2, nonlinearity="relu", identity_init=True))
    for rnn in model.rnns:
        torch.testing.assert_close(rnn.weight_hh_l0, torch.eye(8))
        torch.testing.assert_close(rnn.weight_hh_l0_reverse, torch.eye(8))
        assert not rnn.bias_hh_l0.any() and not rnn.bias_ih_l0.any()
    assert not torch.equal(AcousticModel(ModelConfig(hidden=8, layers=1)).rnns[0].weight_hh_l0, torch.eye(8))


def test_orthogonal_init():
    """Every recurrent matrix starts orthogonal (W W^T = I); the default init's is not; both inits together are refused."""
    model = AcousticModel(ModelConfig(hidden=8, layers=2, orthogonal_init=True))
    for rnn in model.rnns:
        for w in (rnn.weight_hh_l0, rnn.weight_hh_l0_reverse):
            torch.testing.assert_close(w @ w.T, torch.eye(8), atol=1e-5, rtol=0)
    w = AcousticModel(ModelConfig(hidden=8, layers=1)).rnns[0].weight_hh_l0
    assert not torch.allclose(w @ w.T, torch.eye(8), atol=1e-2)
    with pytest.raises(ConfigError, match="exclude"):
        AcousticModel(ModelConfig(identity_init=True, orthogonal_init=True))


def test_average_checkpoints(tmp_path):
    a, b = AcousticModel(SMALL), AcousticModel(SMALL)
    save_checkpoint(tmp_path / "a.pt", a)
    save_checkpoint(tmp_path / "b.pt", b)
    avg = average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])
    for k, v in a.state_dict().items():
        torch.testing.assert_close(avg[k], (v + b.state_dict()[k]) / 2)
    with pytest.raises(ValueError, match="no checkpoints"):
        average_checkpoints([])


class _RunsCode:
    """Pickles as a call of ``os.system``: loading it with plain pickle would run the command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_whose_pickle_runs_code_is_refused_and_runs_nothing(tmp_path):
    import subprocess
    import sys

    marker = tmp_path / "ran"
    torch.save({"config": {}, "model": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt: not a readable asr checkpoint"):
        load_model(tmp_path / "evil.pt")
    r = subprocess.run([sys.executable, "-m", "asr", "evaluate", "--model", str(tmp_path / "evil.pt"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "evil.pt: not a readable asr checkpoint" in r.stderr
    assert not marker.exists()  # neither load ran the payload


def test_truncated_or_foreign_checkpoints_give_one_line_errors(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, AcousticModel(ModelConfig(hidden=8, layers=1)))
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    for name, problem in (("cut.pt", "not a readable asr checkpoint"), ("text.pt", "not a PyTorch checkpoint"),
                          ("other.pt", "lacks 'config' or 'model'"), ("none.pt", "model file not found")):
        with pytest.raises(CheckpointError, match=problem) as e:
            load_model(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and "\n" not in str(e.value)
