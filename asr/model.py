"""The acoustic model for training: stacked frames -> vanilla RNN layers -> two CTC heads (phones, characters).

Recognition runs the same network in numpy (:class:`asr.rnn.RNNModel`), from the weights
:func:`export` writes; :class:`~asr.rnn.ModelConfig` configures both.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, UserError
from .io import atomic_torch_save
from .rnn import ModelConfig, RNNModel

__all__ = ["AcousticModel", "ModelConfig", "export", "load_checkpoint", "load_model", "save_checkpoint"]


class Dropout(nn.Module):
    """``nn.Dropout`` with a cheaper random mask on the CPU (same distribution; elsewhere ``nn.Dropout``).

    On the CPU, drawing one random number per element is what makes dropout expensive. Here each
    element keeps or drops by one 16-bit slice of a 64-bit random draw: a quarter of the draws,
    and ``p`` is exact to 1/65536. For a 20 x 417 x 1024 activation (one layer of the shipped
    model in a 240 s batch) forward + backward take half the time of nn.Dropout's, and whole
    training steps run 1.08x faster (``benchmarks/dropout.py` (a settled probe, removed; commit 9d7b3b8 has it)`, RESULTS.md).
    """

    BITS = 16  # one int16 per element: p is exact to 2**-16
    LANES = 64 // BITS  # elements per 64-bit random draw

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), not {p}")
        self.p = p
        self.drop = round(p * 2**self.BITS)  # how many of the 2**16 values of a slice drop the element

    def mask(self, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        """A mask of ``shape``: 0 with probability ``p``, else ``1 / (1 - p)``."""
        n = shape.numel()
        draws = torch.empty(-(-n // self.LANES), dtype=torch.int64).random_(-2**63, None)  # all 64 bits random
        bits = draws.view(torch.int16)[:n].view(shape)  # uniform on [-2**(BITS-1), 2**(BITS-1))
        keep = bits >= self.drop - 2 ** (self.BITS - 1)  # the lowest `drop` values drop the element
        return torch.where(keep, 2**self.BITS / (2**self.BITS - self.drop), 0.0).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, training=True)
        return x * self.mask(x.shape, x.dtype)


class _RNNLayer(torch.autograd.Function):
    """One ``nn.RNN`` layer over a padded time-major batch, both directions in one loop (CPU).

    The math of ``nn.RNN`` (``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, ``h_{-1} = 0``),
    laid out for a 2-core CPU. ``nn.RNN`` runs each direction through its own loop and leaves
    backpropagation through time to autograd, which adds every step's ``W_hh`` gradient to a
    running sum. Here the two directions run as one ``(2, B, H) x (2, H, H)`` batched matmul per
    step (the reverse direction through time reversed in memory). Backward saves only the
    hidden states, and it runs one loop for the hidden-state gradients. The weight gradients
    then come out of single large matmuls over all ``T * B`` frames.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w_ih: torch.Tensor, b: torch.Tensor, w_hh: torch.Tensor,
                relu: bool) -> torch.Tensor:
        """``x (T, B, I)``, ``w_ih (D*H, I)``, ``b (D*H,)`` (both biases), ``w_hh (D, H, H)`` -> ``(T, B, D*H)``."""
        T, B, I = x.shape
        D, H, _ = w_hh.shape
        pre = torch.addmm(b, x.reshape(T * B, I), w_ih.t()).view(T, B, D, H)
        h = torch.empty(T, D, B, H, dtype=x.dtype, device=x.device)  # direction 1 in reversed time
        h[:, 0] = pre[:, :, 0]
        if D == 2:
            h[:, 1] = pre[:, :, 1].flip(0)
        w_hh_t = w_hh.transpose(1, 2).contiguous()
        for t in range(T):
            z = torch.baddbmm(h[t], h[t - 1], w_hh_t) if t else h[t]
            torch.clamp_min(z, 0, out=h[t]) if relu else torch.tanh(z, out=h[t])
        ctx.relu = relu
        ctx.save_for_backward(x, w_ih, w_hh, h)
        return _in_time_order(h)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, w_ih, w_hh, h = ctx.saved_tensors
        T, D, B, H = h.shape
        g = grad_y.view(T, B, D, H).transpose(1, 2)  # (T, D, B, H), laid out like h
        g = torch.stack([g[:, 0], g[:, 1].flip(0)], 1) if D == 2 else g.contiguous()
        # d = act'(pre-activation), written from h; the loop turns it into d loss / d pre-activation
        d = (h > 0).to(h.dtype) if ctx.relu else 1 - h * h
        grad_h = g[T - 1]
        for t in range(T - 1, 0, -1):
            grad_h = torch.baddbmm(g[t - 1], d[t].mul_(grad_h), w_hh)
        d[0].mul_(grad_h)
        grad_w_hh = torch.bmm(d[1:].transpose(0, 1).reshape(D, -1, H).transpose(1, 2),
                              h[:-1].transpose(0, 1).reshape(D, -1, H))
        grad_pre = _in_time_order(d).view(T * B, D * H)
        grad_x = (grad_pre @ w_ih).view(T, B, -1)
        grad_w_ih = grad_pre.t() @ x.reshape(T * B, -1)
        return grad_x, grad_w_ih, grad_pre.sum(0), grad_w_hh, None


def _in_time_order(h: torch.Tensor) -> torch.Tensor:
    """``(T, D, B, H)`` with direction 1 in reversed time -> ``(T, B, D*H)`` as ``nn.RNN`` returns it."""
    if h.shape[1] == 1:
        return h[:, 0].contiguous()
    return torch.cat([h[:, 0], h[:, 1].flip(0)], -1)


def rnn_layer(rnn: nn.RNN, x: torch.Tensor) -> torch.Tensor:
    """``rnn(x)[0]`` for a one-layer ``nn.RNN`` and a padded time-major ``x (T, B, I)``, by
    ``_RNNLayer``; under CPU autocast it computes in the autocast dtype, as ``nn.RNN`` does."""
    sfx = ["_l0"] + (["_l0_reverse"] if rnn.bidirectional else [])
    w_ih = torch.cat([getattr(rnn, "weight_ih" + s) for s in sfx])
    b = torch.cat([getattr(rnn, "bias_ih" + s) + getattr(rnn, "bias_hh" + s) for s in sfx])
    w_hh = torch.stack([getattr(rnn, "weight_hh" + s) for s in sfx])
    args = (x, w_ih, b, w_hh)
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        args = tuple(a.to(dtype) for a in args)  # the casts stay outside, so autograd casts the gradients back
    with torch.autocast(x.device.type, enabled=False):
        return _RNNLayer.apply(*args, rnn.nonlinearity == "relu")


class AcousticModel(nn.Module):
    """Vanilla ``nn.RNN`` stack with LayerNorm and dropout between layers and two linear CTC heads.

    Input ``(B, T, D)`` features at 10 ms; output log-probabilities ``(B, T', V)`` at
    ``stack`` x 10 ms with ``T' = ceil(T / stack)``, for each head. Inside, activations are
    time-major ``(T', B, units)``; on the CPU each layer's ``nn.RNN`` runs through
    ``rnn_layer`` unless the batch is packed.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config  # validated where it is made (ModelConfig.__post_init__)
        d = config.hidden * (2 if config.bidirectional else 1)
        steps_in = 1 + config.lookahead  # the step itself and the steps it looks ahead to
        self.input = nn.Sequential(nn.Linear(config.features.dim * config.stack * steps_in, config.hidden),
                                   nn.LayerNorm(config.hidden))
        # One nn.RNN per layer (rather than num_layers=L) so that LayerNorm and dropout can sit between them.
        # A projection makes layer i>0's input proj wide: its W_ih costs proj*(D*H) multiply-adds per frame
        # plus the projection's (D*H)*proj, against (D*H)^2 without (D*H = 1024: 0.52 M against 1.05 M at proj 256).
        self.projs = nn.ModuleList(nn.Linear(d, config.proj, bias=False) for _ in range(config.layers - 1)) \
            if config.proj else None
        self.rnns = nn.ModuleList(
            nn.RNN(config.hidden if i == 0 else (config.proj or d), config.hidden, nonlinearity=config.nonlinearity,
                   bidirectional=config.bidirectional)
            for i in range(config.layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(config.layers))
        # nn.RNN's default U(-1/sqrt(H), 1/sqrt(H)) starts W_hh (H = 512) with singular values from ~0 to 1.13 and a
        # spectral radius of 0.59: the state fades fast. The identity (IRNN, with zero biases) and an orthogonal
        # W_hh keep its norm through time.
        recurrent_init = nn.init.eye_ if config.identity_init else nn.init.orthogonal_ if config.orthogonal_init else None
        if recurrent_init is not None:
            for name, p in self.rnns.named_parameters():  # "0.weight_hh_l0", "0.bias_ih_l0", ...
                if ".weight_hh" in name:
                    recurrent_init(p)
                elif ".bias" in name and config.identity_init:
                    nn.init.zeros_(p)
        self.inter_head = nn.Linear(d, config.n_phones) if config.inter_layer else None
        self.condition = nn.Linear(config.n_phones, d) if config.self_condition else None
        self.dropout = Dropout(config.dropout)
        self.char_head = nn.Linear(d, config.n_chars)
        self.phone_head = nn.Linear(d, config.n_phones)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return (lengths + self.config.stack - 1) // self.config.stack

    def stack_frames(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, ceil(T/s), (1+k)*s*D)``: ``s`` frames a step, zero-padding the tail, then
        with ``lookahead`` ``k`` the next ``k`` steps' frames after them (zeros past the end)."""
        s, k = self.config.stack, self.config.lookahead
        B, T, D = feats.shape
        pad = (-T) % s
        if pad:
            feats = nn.functional.pad(feats, (0, 0, 0, pad))
        x = feats.reshape(B, (T + pad) // s, s * D)
        if k:
            # zeros past the end, as past a shorter utterance's end in a padded batch: batch == alone
            ahead = nn.functional.pad(x, (0, 0, 0, k))
            x = torch.cat([ahead[:, j:j + x.shape[1]] for j in range(k + 1)], -1)
        return x

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{"char": (B, T', n_chars), "phone": (B, T', n_phones), "lengths": (B,)}`` (log-softmax); in training
        with ``inter_layer``, also ``"phone_inter"`` (B, T', n_phones): the phone head on that layer's output (before
        ``self_condition`` adds its projected posteriors to that output)."""
        out_lengths = self.output_lengths(lengths)
        # Training runs on padded batches: on the CPU a PackedSequence makes the backward pass
        # several times slower, and duration bucketing keeps padding small. At inference the
        # batch is packed, so each utterance's output is exactly what it would be alone.
        packed = not self.training and bool((out_lengths != out_lengths.max()).any())
        out: dict[str, torch.Tensor] = {"lengths": out_lengths}
        # Time-major inside: (T', B, D), the layout of the RNN's loop over time.
        x = self.dropout(self.input(self.stack_frames(feats).transpose(0, 1)))
        for i, (rnn, norm) in enumerate(zip(self.rnns, self.norms)):
            inp = self.projs[i - 1](x) if self.projs is not None and i > 0 else x
            if packed:
                y = nn.utils.rnn.pack_padded_sequence(inp, out_lengths.cpu(), enforce_sorted=False)
                y, _ = rnn(y)
                y, _ = nn.utils.rnn.pad_packed_sequence(y, total_length=int(out_lengths.max()))
            elif x.device.type == "cpu":
                y = rnn_layer(rnn, inp)  # nn.RNN's output; training steps 1.35x faster (benchmarks/rnn_layer.py)
            else:
                y, _ = rnn(inp)
            x = self.dropout(norm(y + x if self.config.residual and i > 0 else y))
            if i + 1 == self.config.inter_layer and (self.training or self.condition is not None):
                logits = self.inter_head(x)  # (T', B, n_phones)
                if self.training:
                    out["phone_inter"] = _log_probs(logits)
                if self.condition is not None:  # the upper layers see what the lower ones predict
                    x = x + self.condition(logits.softmax(-1))
        out["char"] = _ctc_head(self.char_head, x)
        out["phone"] = _ctc_head(self.phone_head, x)
        return out


def _ctc_head(head: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """A CTC head on time-major activations ``(T', B, units)``: log-probabilities ``(B, T', V)``, contiguous."""
    return _log_probs(head(x))


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Time-major logits ``(T', B, V)`` -> log-probabilities ``(B, T', V)``, contiguous."""
    return logits.log_softmax(-1).transpose(0, 1).contiguous()


def export(model: AcousticModel) -> RNNModel:
    """The weights of ``model`` for recognition without torch (:class:`asr.rnn.RNNModel`), float32;
    ``RNNModel.save`` writes them beside a checkpoint (``asr bundle``)."""
    state = {k: v.detach().to("cpu", torch.float32).numpy().copy() for k, v in model.state_dict().items()}
    return RNNModel(model.config, state)


class CheckpointError(UserError):
    pass


def save_checkpoint(path: str | Path, model: AcousticModel, **extra: Any) -> None:
    """Write weights and config (plus ``extra`` entries) atomically."""
    atomic_torch_save({"config": dataclasses.asdict(model.config), "model": model.state_dict(), **extra}, path)


def average_checkpoints(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the ``model`` weights of ``paths`` (same architecture): checkpoint averaging."""
    states = [load_checkpoint(p)["model"] for p in paths]
    if not states:
        raise ValueError("no checkpoints to average")
    return {k: sum(s[k].double() for s in states).div(len(states)).to(states[0][k].dtype)
            if states[0][k].is_floating_point() else states[-1][k] for k in states[0]}


def default_model_path() -> Path:
    return Path(str(resources.files("asr") / "assets" / "model.pt"))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint (a bundle folder goes to --bundle)")
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":  # torch.save writes a zip archive since PyTorch 1.6
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (asr train writes them as .pt files)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file; all mean the same to the user
        raise CheckpointError(f"{path}: not a readable asr checkpoint ({str(e).splitlines()[0][:200]})") from None


def load_model(path: str | Path | None = None) -> AcousticModel:
    """Rebuild a model from a checkpoint (default: the model shipped with the package), in eval mode."""
    path = default_model_path() if path is None else Path(path)
    ckpt = load_checkpoint(path)
    if "config" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{path}: checkpoint lacks 'config' or 'model'")
    model = AcousticModel(ModelConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()
