"""The acoustic model's forward pass, one core: asr.rnn (numpy) against torch and ONNX Runtime.

    python benchmarks/rnn_runtime.py [--bundle DIR] [--seconds 30] [--batch 4] [--repeats 5]

Times the shipped model (the bundle's model.npz; model.pt for torch) over a batch of
``--batch`` random feature matrices of ``--seconds`` each (the shape of one of
`asr transcribe`'s 120 s batches by default), on one thread each:

- ``asr.rnn`` in numpy (fp32, the runtime);
- the torch model in fp32, and under bf16 autocast (what `asr transcribe` ran before issue 44,
  where the CPU has bf16), if torch is installed;
- ONNX Runtime (fp32) running the same network built as an ONNX graph (MatMul, LayerNormalization,
  the RNN operator with sequence lengths, LogSoftmax), if onnx and onnxruntime are installed
  (`pip install onnx onnxruntime`: not a dependency of asr).

Prints the median seconds of ``--repeats`` runs and the largest difference of each output from
numpy's. The runs take turns, so that the machine's noise falls on all alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from asr.bundle import load_bundle
from asr.rnn import LAYER_NORM_EPS, RNNModel


def onnx_session(rnn: RNNModel, input_dim: int):
    """An ONNX Runtime session computing ``rnn.forward`` on stacked input ``(T', B, in)`` with
    ``lengths (B,)`` (steps), both heads' log-probabilities ``(T', B, V)`` out."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    c, w = rnn.config, rnn.w
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def linear(x, weight, bias, out):
        nodes.append(helper.make_node("MatMul", [x, const(weight + ".T", w[weight].T)], [out + ".mm"]))
        if bias is None:
            nodes.append(helper.make_node("Identity", [out + ".mm"], [out]))
        else:
            nodes.append(helper.make_node("Add", [out + ".mm", const(bias, w[bias])], [out]))
        return out

    def norm(x, prefix, out):
        nodes.append(helper.make_node("LayerNormalization", [x, const(prefix + ".weight", w[prefix + ".weight"]),
                                                             const(prefix + ".bias", w[prefix + ".bias"])],
                                      [out], axis=-1, epsilon=LAYER_NORM_EPS))
        return out

    x = norm(linear("x", "input.0.weight", "input.0.bias", "in.lin"), "input.1", "in.norm")
    nodes.append(helper.make_node("Cast", ["lengths"], ["lengths32"], to=TensorProto.INT32))
    D = 2 if c.bidirectional else 1
    H = c.hidden
    for i in range(c.layers):
        inp = linear(x, f"projs.{i - 1}.weight", None, f"proj{i}") if c.proj and i > 0 else x
        sfx = ["_l0"] + (["_l0_reverse"] if c.bidirectional else [])
        W = np.stack([w[f"rnns.{i}.weight_ih{s}"] for s in sfx])
        R = np.stack([w[f"rnns.{i}.weight_hh{s}"] for s in sfx])
        B = np.stack([np.concatenate([w[f"rnns.{i}.bias_ih{s}"], w[f"rnns.{i}.bias_hh{s}"]]) for s in sfx])
        nodes.append(helper.make_node(
            "RNN", [inp, const(f"W{i}", W), const(f"R{i}", R), const(f"B{i}", B), "lengths32"], [f"y{i}"],
            hidden_size=H, activations=[c.nonlinearity.capitalize()] * D,
            direction="bidirectional" if c.bidirectional else "forward"))
        # (T, D, B, H) -> (T, B, D*H)
        nodes.append(helper.make_node("Transpose", [f"y{i}"], [f"yt{i}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"yt{i}", const(f"shape{i}", np.array([0, 0, D * H]))], [f"yr{i}"]))
        y = f"yr{i}"
        if c.residual and i > 0:
            nodes.append(helper.make_node("Add", [y, x], [f"res{i}"]))
            y = f"res{i}"
        x = norm(y, f"norms.{i}", f"n{i}")
        if c.self_condition and i + 1 == c.inter_layer:
            logits = linear(x, "inter_head.weight", "inter_head.bias", f"inter{i}")
            nodes.append(helper.make_node("Softmax", [logits], [f"post{i}"], axis=-1))
            cond = linear(f"post{i}", "condition.weight", "condition.bias", f"cond{i}")
            nodes.append(helper.make_node("Add", [x, cond], [f"sc{i}"]))
            x = f"sc{i}"
    outs = []
    for head in ("char", "phone"):
        logits = linear(x, f"{head}_head.weight", f"{head}_head.bias", f"{head}.logits")
        nodes.append(helper.make_node("LogSoftmax", [logits], [head], axis=-1))
        outs.append(helper.make_tensor_value_info(head, TensorProto.FLOAT, [None, None, w[f"{head}_head.bias"].shape[0]]))
    graph = helper.make_graph(nodes, "asr", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, input_dim]),
                                             helper.make_tensor_value_info("lengths", TensorProto.INT64, [None])],
                              outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", help="bundle folder (default: the shipped one)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    threadpool_limits(1)
    bundle = load_bundle(args.bundle)
    rnn = RNNModel.load(bundle.runtime)
    frames = int(args.seconds * 100)
    feats = np.random.default_rng(0).standard_normal((args.batch, frames, rnn.config.features.dim)).astype(np.float32)
    lengths = np.full(args.batch, frames)
    runs = {"asr.rnn (numpy, fp32)": lambda: rnn.forward(feats, lengths)}
    try:
        import torch

        from asr.model import load_model

        torch.set_num_threads(1)
        model = load_model(bundle.model)
        x, n = torch.from_numpy(feats), torch.from_numpy(lengths)

        def torch_run(bf16: bool):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(x, n)
            return {k: v.float().numpy() for k, v in out.items() if k != "lengths"}

        runs["torch, fp32"] = lambda: torch_run(False)
        runs["torch, bf16 autocast"] = lambda: torch_run(True)
    except ImportError:
        print("torch not installed: numpy alone")
    try:
        stacked = rnn.stack_frames(feats).transpose(1, 0, 2).copy()
        session = onnx_session(rnn, stacked.shape[2])
        steps = rnn.output_lengths(lengths)

        def ort_run():
            char, phone = session.run(["char", "phone"], {"x": stacked, "lengths": steps})
            return {"char": char.transpose(1, 0, 2), "phone": phone.transpose(1, 0, 2)}

        runs["ONNX Runtime, fp32"] = ort_run
    except ImportError:
        print("onnx/onnxruntime not installed: no ONNX Runtime run")
    reference = runs["asr.rnn (numpy, fp32)"]()
    times: dict[str, list[float]] = {name: [] for name in runs}
    diffs = {}
    for name, run in runs.items():  # a warm-up each, and the outputs compared
        out = run()
        diffs[name] = max(float(np.abs(out[h] - reference[h]).max()) for h in ("char", "phone"))
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    audio = args.batch * args.seconds
    print(f"{args.batch} x {args.seconds:g} s of features, one thread, median of {args.repeats}:")
    for name, ts in times.items():
        print(f"{name:24s} {statistics.median(ts):6.3f} s  (RTF {statistics.median(ts) / audio:.4f})  "
              f"largest log-prob difference from numpy {diffs[name]:.1e}")


if __name__ == "__main__":
    main()
