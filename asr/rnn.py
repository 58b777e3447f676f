"""The acoustic model at recognition time: the network of :mod:`asr.model` run in numpy, from exported weights.

Stacked MFCC frames -> Linear + LayerNorm -> vanilla RNN layers (``h_t = act(W_ih x_t + b_ih +
W_hh h_{t-1} + b_hh)``, both directions, LayerNorm after each) -> two linear CTC heads with
log-softmax. :func:`asr.model.export` writes a trained :class:`~asr.model.AcousticModel` as an
``.npz`` file that :meth:`RNNModel.load` reads without torch, and tests hold the two equal.

Plain numpy rather than ONNX Runtime: a vanilla RNN is one large matrix product per layer (every
step's input term) and a small one and a ``tanh`` per step, which numpy's BLAS runs as fast as ONNX
Runtime's RNN operator does on one core (two 30 s windows: 0.377 s against 0.546 s; a stream's
chunk: 6 ms against 5 ms; ``benchmarks/rnn_runtime.py``, ``results/bench-rnn-runtime.log``), with
no graph to export and no onnxruntime package (with its protobuf and flatbuffers) to install.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import ConfigError, UserError
from .features import FRAME_SECONDS, FeatureConfig
from .io import atomic_write_bytes
from .text import CHAR_VOCAB, PHONE_VOCAB

EXPORT_FORMAT = 1  # bumped when the names or layout of an exported model's arrays change
# Format 2: format 1 with weight matrices stored as int8, a float32 scale per row beside each
# (`NAME` int8, `NAME.scale`): a quarter of the size on disk, read back as float32. A float32
# file is still written as format 1, which readers before int8 storage read too.
INT8_FORMAT = 2
SCALE = ".scale"  # the suffix of an int8 matrix's row scales


@dataclass(frozen=True)
class ModelConfig:
    features: FeatureConfig = FeatureConfig()
    stack: int = 3  # frames concatenated into one RNN step: 3 x 10 ms = 30 ms per step
    hidden: int = 320  # units per direction
    layers: int = 4
    bidirectional: bool = True
    lookahead: int = 0  # >0: each step's input also holds the next `lookahead` steps' frames (x stack x 10 ms
    # ahead), so that a unidirectional model hears a little of what follows each step at that much latency
    nonlinearity: str = "tanh"  # "tanh" or "relu"
    identity_init: bool = False  # recurrent weights start as the identity, biases at 0 (IRNN, Le et al. 2015; for relu)
    orthogonal_init: bool = False  # recurrent weights start as random orthogonal matrices (all singular values 1; Saxe et al. 2014)
    proj: int = 0  # >0: a bias-free Linear (2H -> proj) in front of RNN layers 2..L (as LSTMP's projection): fewer FLOPs
    inter_layer: int = 0  # >0: in training, a phone CTC head on this RNN layer's output too (InterCTC, Lee & Watanabe 2021)
    self_condition: bool = False  # with inter_layer: that head's phone posteriors, projected back, join the layer's output
    # as the next layer's input, in training and inference (self-conditioned CTC, Nozaki & Komatsu 2021)
    residual: bool = False  # add each RNN layer's input to its output (layers 2..L, where the widths match)
    dropout: float = 0.2
    n_chars: int = len(CHAR_VOCAB)
    n_phones: int = len(PHONE_VOCAB)

    def __post_init__(self):
        if self.nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"nonlinearity must be 'tanh' or 'relu', not {self.nonlinearity!r}")
        if self.lookahead < 0:
            raise ConfigError(f"lookahead must be 0 or more model steps, not {self.lookahead}")
        if not 0 <= self.inter_layer < self.layers:
            raise ConfigError(f"inter_layer must be 0 (off) or a layer below the top (1..{self.layers - 1}), "
                              f"not {self.inter_layer}")
        if self.self_condition and not self.inter_layer:
            raise ConfigError("self_condition needs inter_layer: it conditions on that layer's phone head")
        if self.identity_init and self.orthogonal_init:
            raise ConfigError("identity_init and orthogonal_init exclude each other")

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame of the CTC heads."""
        return self.stack * FRAME_SECONDS

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        if isinstance(d.get("features"), dict):
            d["features"] = FeatureConfig(**d["features"])
        return cls(**d)


# Padded feature frames the model reads at once: 60 s at 10 ms a frame, two 30 s windows. One
# hour through `asr transcribe` with 2 workers peaked at 454-456 MB against 520-540 MB with 120 s
# batches, at the same speed (results/bench-long-audio-batch-frames.log): numpy's product per
# step costs the same for 2 windows as for 4, where torch's had been 20 % slower.
BATCH_FRAMES = 6000
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default


class ExportError(UserError):
    """An exported model file that cannot be used; the message names it."""


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """``x (..., I) @ w.T (I, O) + b``: ``torch.nn.Linear``."""
    y = x @ w.T
    return y + b if b is not None else y


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``torch.nn.LayerNorm`` over the last axis, in one new array (activations of a 120 s batch are 16 MB each)."""
    out = x - x.mean(-1, keepdims=True)
    var = np.einsum("...i,...i->...", out, out)[..., None] / out.shape[-1]
    out /= np.sqrt(var + LAYER_NORM_EPS)
    out *= g
    out += b
    return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


class RNNModel:
    """The acoustic model's weights as numpy arrays, with its :class:`ModelConfig`.

    ``weights`` are named as the torch model's ``state_dict`` (``"rnns.0.weight_ih_l0"``, ...),
    float32. Nothing here trains: dropout is off, and the intermediate phone head is computed
    only where ``self_condition`` feeds it back.
    """

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]):
        self.config = config
        self.w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self._rnn = [self._rnn_weights(i) for i in range(config.layers)]
        missing = [k for k in self._needed() if k not in self.w]
        if missing:
            raise ExportError(f"exported model lacks {', '.join(missing[:3])}")

    def _needed(self) -> list[str]:
        c = self.config
        names = ["input.0.weight", "input.0.bias", "input.1.weight", "input.1.bias", "char_head.weight",
                 "char_head.bias", "phone_head.weight", "phone_head.bias"]
        names += [f"norms.{i}.{p}" for i in range(c.layers) for p in ("weight", "bias")]
        if c.self_condition:
            names += ["inter_head.weight", "inter_head.bias", "condition.weight", "condition.bias"]
        if c.proj:
            names += [f"projs.{i}.weight" for i in range(c.layers - 1)]
        return names

    def _rnn_weights(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Layer ``i``'s ``W_ih (D*H, I)``, both biases summed ``(D*H,)`` and ``W_hh`` transposed ``(D, H, H)``,
        laid out for :meth:`_layer`; the named weights become views of them (no second copy in memory)."""
        sfx = ["_l0"] + (["_l0_reverse"] if self.config.bidirectional else [])
        names = [(f"rnns.{i}.weight_ih{s}", f"rnns.{i}.weight_hh{s}") for s in sfx]
        try:
            w_ih = np.concatenate([self.w[ih] for ih, _ in names])
            b = np.concatenate([self.w[f"rnns.{i}.bias_ih{s}"] + self.w[f"rnns.{i}.bias_hh{s}"] for s in sfx])
            w_hh_t = np.ascontiguousarray(np.stack([self.w[hh].T for _, hh in names]))
        except KeyError as e:
            raise ExportError(f"exported model lacks {e.args[0]}") from None
        H = w_hh_t.shape[1]
        for d, (ih, hh) in enumerate(names):
            self.w[ih], self.w[hh] = w_ih[d * H:(d + 1) * H], w_hh_t[d].T
        return w_ih, b, w_hh_t

    # -- files ------------------------------------------------------------------------------

    def save(self, path: str | Path, int8: bool = False) -> None:
        """Write the config and weights as one ``.npz`` (atomically): arrays only, no pickles.

        ``int8``: each weight matrix stored as int8 with a float32 scale per row (its largest
        magnitude / 127), a quarter of the size; :meth:`load` gives float32 again, each weight
        within half a step (scale / 2) of the original. Biases and norms stay float32."""
        import io

        arrays = dict(self.w)
        if int8:
            for name, w in self.w.items():
                if w.ndim == 2:
                    scale = np.abs(w).max(axis=1) / 127
                    scale[scale == 0] = 1.0  # an all-zero row: any scale gives zeros
                    arrays[name] = np.round(w / scale[:, None]).astype(np.int8)
                    arrays[name + SCALE] = scale.astype(np.float32)
        buf = io.BytesIO()
        config = json.dumps({"format": INT8_FORMAT if int8 else EXPORT_FORMAT, "config": dataclasses.asdict(self.config)})
        np.savez(buf, __config__=np.array(config), **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "RNNModel":
        """Read a file :meth:`save` wrote (``allow_pickle=False``: it cannot run code)."""
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"{path}: exported model not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            raise ExportError(f"{path}: not a readable exported model ({str(e).splitlines()[0][:200]})") from None
        try:
            head = json.loads(str(arrays.pop("__config__")))
            config = ModelConfig.from_dict(head["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise ExportError(f"{path}: exported model without a readable config ({e})") from None
        if head.get("format") == INT8_FORMAT:
            scales = {name[:-len(SCALE)]: arrays.pop(name) for name in list(arrays) if name.endswith(SCALE)}
            for name, scale in scales.items():
                if name not in arrays or arrays[name].dtype != np.int8 or arrays[name].shape[:1] != scale.shape:
                    raise ExportError(f"{path}: {name}{SCALE} scales no int8 matrix of {len(scale)} rows")
                arrays[name] = arrays[name].astype(np.float32) * scale[:, None]
        elif head.get("format") != EXPORT_FORMAT:
            raise ExportError(f"{path}: exported model format {head.get('format')}, this asr reads {EXPORT_FORMAT} and "
                              f"{INT8_FORMAT}: export it again from its checkpoint (asr bundle CHECKPOINT --out DIR)")
        try:
            return cls(config, arrays)
        except ExportError as e:
            raise ExportError(f"{path}: {e}") from None

    # -- the network ------------------------------------------------------------------------

    def output_lengths(self, lengths: np.ndarray) -> np.ndarray:
        return (np.asarray(lengths) + self.config.stack - 1) // self.config.stack

    def stack_frames(self, feats: np.ndarray) -> np.ndarray:
        """``(B, T, D)`` -> ``(B, ceil(T/s), (1+k)*s*D)``: ``s`` frames a step, zero-padding the tail, then
        with ``lookahead`` ``k`` the next ``k`` steps' frames after them (zeros past the end)."""
        s, k = self.config.stack, self.config.lookahead
        B, T, D = feats.shape
        pad = (-T) % s
        if pad:
            feats = np.pad(feats, ((0, 0), (0, pad), (0, 0)))
        x = feats.reshape(B, (T + pad) // s, s * D)
        if k:
            ahead = np.pad(x, ((0, 0), (0, k), (0, 0)))
            x = np.concatenate([ahead[:, j:j + x.shape[1]] for j in range(k + 1)], -1)
        return x

    def _act(self, z: np.ndarray, out: np.ndarray) -> None:
        if self.config.nonlinearity == "relu":
            np.maximum(z, 0, out=out)
        else:
            np.tanh(z, out=out)

    def _layer(self, i: int, x: np.ndarray, lengths: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
        """RNN layer ``i`` over time-major ``x (T, B, I)``, each utterance ``b`` ``lengths[b]`` steps
        long: ``(T, B, D*H)``, as ``nn.RNN`` gives for a packed batch (zeros past each end). The
        forward direction starts from ``h0 (B, H)`` (default zeros), the backward one from zeros.

        Both directions run in one loop, one ``(D, B, H) x (D, H, H)`` product a step, the
        backward direction over each utterance reversed within its own length."""
        w_ih, b, w_hh_t = self._rnn[i]
        T, B, _ = x.shape
        D, H = w_hh_t.shape[0], w_hh_t.shape[1]
        pre = x.reshape(T * B, -1) @ w_ih.T  # every step's input term at once: one large matrix product
        pre += b
        pre = pre.reshape(T, B, D, H)
        h = np.empty((T, D, B, H), dtype=np.float32)
        h[:, 0] = pre[:, :, 0]
        rows = cols = None
        if D == 2:
            # step t of the backward pass reads step lengths[b] - 1 - t (past the end: its own padding)
            t = np.arange(T)[:, None]
            rows = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
            cols = np.broadcast_to(np.arange(B)[None, :], (T, B))
            h[:, 1] = pre[rows, cols, 1]
        z = np.empty((D, B, H), dtype=np.float32)
        if h0 is not None:
            h[0, 0] += h0 @ w_hh_t[0]
        self._act(h[0], h[0])
        for t in range(1, T):
            np.matmul(h[t - 1], w_hh_t, out=z)
            z += h[t]
            self._act(z, h[t])
        out = pre.reshape(T, B, D * H)  # the input terms are spent: their memory takes the output
        out[:, :, :H] = h[:, 0]
        if D == 2:
            out[:, :, H:] = h[rows, 1, cols]
        out[np.arange(T)[:, None] >= lengths[None, :]] = 0.0
        return out

    def _encode(self, feats: np.ndarray, lengths: np.ndarray, state: list[np.ndarray] | None = None,
                state_at: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Padded features ``(B, T, D)`` -> the top layer's normalised output, time-major
        ``(T', B, units)``, and, with ``state_at``, each layer's forward state ``(B, H)`` after that
        step; ``state``: each layer's forward state to start from (default zeros)."""
        c, w = self.config, self.w
        x = self.stack_frames(np.asarray(feats, dtype=np.float32)).transpose(1, 0, 2)  # (T', B, in)
        x = _layer_norm(_linear(x, w["input.0.weight"], w["input.0.bias"]), w["input.1.weight"], w["input.1.bias"])
        states = []
        for i in range(c.layers):
            inp = _linear(x, w[f"projs.{i - 1}.weight"]) if c.proj and i > 0 else x
            y = self._layer(i, np.ascontiguousarray(inp, dtype=np.float32), lengths,
                            None if state is None else state[i])
            if state_at is not None:
                states.append(y[state_at, :, :c.hidden].copy())
            x = self._norm(i, y + x if c.residual and i > 0 else y)
            x = self._condition(i, x)
        return x, states

    def forward(self, feats: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        """Padded features ``(B, T, D)`` with ``lengths (B,)`` frames each -> ``{"char": (B, T', n_chars),
        "phone": (B, T', n_phones), "lengths": (B,)}``: log-probabilities at ``stack`` x 10 ms a step,
        ``T' = ceil(T / stack)``; each utterance's rows are what it gives alone."""
        out_lengths = self.output_lengths(lengths)
        x, _ = self._encode(feats, out_lengths)
        return {"char": self._head("char", x).transpose(1, 0, 2), "phone": self._head("phone", x).transpose(1, 0, 2),
                "lengths": out_lengths}

    def _norm(self, i: int, y: np.ndarray) -> np.ndarray:
        return _layer_norm(y, self.w[f"norms.{i}.weight"], self.w[f"norms.{i}.bias"]).astype(np.float32)

    def _condition(self, i: int, x: np.ndarray) -> np.ndarray:
        """Self-conditioning after layer ``i``: the intermediate head's posteriors, projected back, added."""
        c, w = self.config, self.w
        if not (c.self_condition and i + 1 == c.inter_layer):
            return x
        posteriors = np.exp(log_softmax(_linear(x, w["inter_head.weight"], w["inter_head.bias"])))
        return (x + _linear(posteriors, w["condition.weight"], w["condition.bias"])).astype(np.float32)

    def _head(self, name: str, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(log_softmax(_linear(x, self.w[f"{name}_head.weight"], self.w[f"{name}_head.bias"])),
                                    dtype=np.float32)

    def forward_batches(self, feats: list[np.ndarray], batch_frames: int = BATCH_FRAMES
                        ) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
        """Run over feature matrices ``(T_i, D)`` in batches of similar length (at most ``batch_frames``
        padded frames). Yields ``(indices, out)``: the positions in ``feats`` of a batch and
        :meth:`forward`'s output for it."""
        for idx in length_batches([f.shape[0] for f in feats], batch_frames):
            lengths = np.array([feats[i].shape[0] for i in idx])
            x = np.zeros((len(idx), int(lengths.max()), feats[idx[0]].shape[1]), dtype=np.float32)
            for j, i in enumerate(idx):
                x[j, :lengths[j]] = feats[i]
            yield idx, self.forward(x, lengths)

    def forward_chunk(self, feats: np.ndarray, steps: int, state: list[np.ndarray] | None = None
                      ) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
        """One chunk of a stream, latency-controlled (LC-BLSTM, Zhang et al. 2016).

        ``feats (T, D)``: the normalised features of the chunk's ``steps`` model steps
        (``steps * stack`` frames), then its right context (any number of frames, the tail
        zero-padded to a whole step). In every layer the forward direction starts from ``state``
        (its state after the previous chunk's last step; ``None``: zeros, the stream's start) and
        runs on through the right context; the backward direction starts from zeros at the right
        context's end, so a bidirectional model hears ``T`` frames ahead at most instead of the
        whole utterance. Returns the chunk's log-probabilities ``{"char": (steps, n_chars),
        "phone": (steps, n_phones)}`` and each layer's forward state ``(1, hidden)`` after its
        last step, for the next chunk (the right context is heard, but the state carried on is
        the chunk's). A unidirectional model needs no right context beyond its ``lookahead``
        steps: with those, chunk by chunk it gives what :meth:`forward` gives for the whole.
        """
        feats = np.asarray(feats, dtype=np.float32)[None]
        x, states = self._encode(feats, self.output_lengths([feats.shape[1]]), state, state_at=steps - 1)
        x = x[:steps, 0]
        return {"char": self._head("char", x), "phone": self._head("phone", x)}, states



# How an ensemble joins its members' per-frame log-probabilities (:class:`Ensemble`).
ENSEMBLE_RULES = ("nbest", "mean", "product")


@dataclass(frozen=True)
class EnsembleConfig:
    """Other acoustic models to hear beside a bundle's own (:class:`Ensemble`); none by default.

    ``members``: exported models (``.npz``, :meth:`RNNModel.save`) or checkpoints (``.pt``,
    exported in memory: needs torch); ``weights``: one per model, the bundle's own first
    (empty: equal); ``rule``: one of :data:`ENSEMBLE_RULES`.
    """

    members: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    rule: str = "nbest"

    def __post_init__(self):
        if self.rule not in ENSEMBLE_RULES:
            raise ConfigError(f"ensemble rule must be one of {', '.join(ENSEMBLE_RULES)}, not {self.rule!r}")
        if self.weights and len(self.weights) != 1 + len(self.members):
            raise ConfigError(f"ensemble weights: give one per model, the bundle's own first "
                              f"({1 + len(self.members)}), not {len(self.weights)}")
        if any(w < 0 for w in self.weights) or (self.weights and not sum(self.weights) > 0):
            raise ConfigError(f"ensemble weights must be non-negative and not all 0, not {list(self.weights)}")


def check_same_frames(first: ModelConfig, other: ModelConfig, what: str, kind: str) -> None:
    """Raise :class:`ConfigError` unless ``other`` reads the features ``first`` reads and gives its
    frames (rate and vocabularies): what one search and calibrator need of two models. ``what``
    names ``other`` in the message (``"ensemble member 2"``), ``kind`` the models (``"members"``)."""
    for name in ("features", "stack", "n_chars", "n_phones"):
        if getattr(other, name) != getattr(first, name):
            raise ConfigError(f"{what} differs from the first in {name} ({getattr(other, name)} against "
                              f"{getattr(first, name)}): {kind} must read the same features and give the same frames")


class Ensemble:
    """Several acoustic models heard as one.

    Every member reads the same features (one :class:`~asr.features.FeatureConfig`) and gives
    frames at the same rate with the same vocabularies. How they are joined (``rule``):

    - ``"nbest"`` (n-best combination): the output is the first model's, with the others' under
      ``"members"`` and their weights relative to the first's under ``"member_weights"``; the beam
      search runs on the first model, and each hypothesis of its n-best gains each other model's
      CTC log-likelihood of its words times that weight (:func:`asr.search.nbest_scores`).
      Streaming and greedy decoding hear the first model only.
    - ``"mean"``: each frame's weighted mean of the members' probabilities, ``log sum_i w_i p_i(k|t)``;
    - ``"product"``: each frame's weighted mean of their log-probabilities, renormalised over the
      vocabulary, ``log_softmax(sum_i w_i log p_i(k|t))``.

    Frame by frame, two CTC models trained apart disagree about *where* each token's spike falls
    (each puts blanks where the other has the token), so "mean" and "product" lose what either
    model alone gets (RESULTS.md); they are kept for models trained to align alike.

    The weights (:class:`EnsembleConfig`; default equal) are normalised to sum to 1. It has
    :class:`RNNModel`'s interface (``config`` is the first member's, with the furthest look-ahead
    of any), so recognition takes either.
    """

    def __init__(self, models: list[RNNModel], config: EnsembleConfig = EnsembleConfig()):
        if not models:
            raise ConfigError("an ensemble needs at least one model")
        weights = list(config.weights) or [1.0] * len(models)
        if len(weights) != len(models):
            raise ConfigError(f"ensemble weights: one per model ({len(models)}), not {len(weights)}")
        first = models[0].config
        for i, m in enumerate(models[1:], 2):
            check_same_frames(first, m.config, f"ensemble member {i}", "members")
        self.models, self.rule = models, config.rule
        self.weights = np.array(weights, dtype=np.float32) / np.float32(sum(weights))
        if self.rule == "nbest" and not self.weights[0] > 0:
            raise ConfigError("an n-best ensemble searches with its first model: its weight must be above 0")
        # a streaming model's right context: enough for the member that looks furthest ahead
        self.config = dataclasses.replace(first, bidirectional=any(m.config.bidirectional for m in models),
                                          lookahead=max(m.config.lookahead for m in models))

    def output_lengths(self, lengths: np.ndarray) -> np.ndarray:
        return self.models[0].output_lengths(lengths)

    def combine(self, outs: list[np.ndarray]) -> np.ndarray:
        """The members' log-probabilities ``(..., V)`` each -> the ensemble's ``(..., V)``, float32."""
        if len(outs) == 1:
            return outs[0]
        if self.rule == "mean":
            with np.errstate(divide="ignore"):  # a member of weight 0 adds nothing: log 0 = -inf
                x = np.stack(outs) + np.log(self.weights).reshape(-1, *([1] * outs[0].ndim))
            top = x.max(0)
            return (top + np.log(np.exp(x - top).sum(0))).astype(np.float32)
        x = np.tensordot(self.weights, np.stack(outs), axes=1)
        return np.ascontiguousarray(log_softmax(x), dtype=np.float32)

    def forward(self, feats: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        """As :meth:`RNNModel.forward`, each head combined over the members."""
        outs = [m.forward(feats, lengths) for m in self.models]
        if self.rule == "nbest":
            return {**outs[0], "members": [{h: o[h] for h in ("char", "phone")} for o in outs[1:]],
                    "member_weights": [float(w / self.weights[0]) for w in self.weights[1:]]}
        return {"char": self.combine([o["char"] for o in outs]), "phone": self.combine([o["phone"] for o in outs]),
                "lengths": outs[0]["lengths"]}

    forward_batches = RNNModel.forward_batches

    def forward_chunk(self, feats: np.ndarray, steps: int, state: list[list[np.ndarray]] | None = None
                      ) -> tuple[dict[str, np.ndarray], list[list[np.ndarray]]]:
        """As :meth:`RNNModel.forward_chunk`; ``state`` holds each member's (the first's only for "nbest",
        whose stream hears its first model alone)."""
        models = self.models[:1] if self.rule == "nbest" else self.models
        results = [m.forward_chunk(feats, steps, None if state is None else state[i]) for i, m in enumerate(models)]
        out = {head: self.combine([o[head] for o, _ in results]) for head in ("char", "phone")}
        return out, [s for _, s in results]


def length_batches(lengths: list[int], batch_frames: int) -> list[list[int]]:
    """Indices of items of ``lengths`` frames grouped by length, shortest first, each group at most
    ``batch_frames`` padded frames (an item longer than that alone)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and lengths[order[end]] * (end - start + 1) <= batch_frames:
            end += 1
        batches.append(order[start:end])
        start = end
    return batches

