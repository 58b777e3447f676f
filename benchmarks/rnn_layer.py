"""``nn.RNN`` against ``asr.model.rnn_layer`` (its CPU forward + backward), side by side.

    python benchmarks/rnn_layer.py --threads 2
    python benchmarks/rnn_layer.py --train-config recipes/librispeech/conf/train-clean-5.toml --batches 8 --fresh 2

First one bidirectional layer, forward + backward, fp32 and bf16 autocast; the default shape is
a middle layer of the shipped model in a 240 s training batch (417 steps of 30 ms x 20
utterances, 1024 inputs, 512 units per direction). Then, with ``--train-config``, whole
training steps of that config on real cached features, the two kernels taking turns on the same
batches in one process; with ``--fresh N``, also N rounds of one new process per kernel
(``benchmarks/steps.py`` says why both), with each process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import asr.model
from steps import alternate, fresh_processes, load_examples, time_steps_here, training_batches

KERNELS = {"nn.RNN": lambda rnn, x: rnn(x)[0], "rnn_layer": asr.model.rnn_layer}


def use(kernel: str):
    """A variant setup: the model's CPU layers run through ``KERNELS[kernel]``."""
    return lambda model: setattr(asr.model, "rnn_layer", KERNELS[kernel])


def time_layer(shape: list[int], repeats: int) -> None:
    T, B, I, H = shape
    torch.manual_seed(0)
    rnn = torch.nn.RNN(I, H, bidirectional=True)
    x = torch.randn(T, B, I, requires_grad=True)
    for precision in ("fp32", "bf16"):
        def step(kernel):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                y = KERNELS[kernel](rnn, x)
            y.float().square().mean().backward()
            return y
        times = {k: [] for k in KERNELS}
        for k in KERNELS:
            step(k)  # warm-up
        for r in range(repeats):
            for k in (list(KERNELS) if r % 2 else list(KERNELS)[::-1]):
                start = time.perf_counter()
                step(k)
                times[k].append(time.perf_counter() - start)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            diff = (KERNELS["nn.RNN"](rnn, x).float() - KERNELS["rnn_layer"](rnn, x).float()).abs().max().item()
        med = {k: sorted(v)[len(v) // 2] * 1000 for k, v in times.items()}
        print(f"{precision}: " + ", ".join(f"{k} {m:.1f} ms" for k, m in med.items())
              + f" (medians of {repeats}); rnn_layer {med['nn.RNN'] / med['rnn_layer']:.2f}x faster; max |output difference| {diff:.2g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", type=int, nargs=4, default=[417, 20, 1024, 512], metavar=("T", "B", "I", "H"))
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--train-config", help="also time training steps of this config (features: its cache, else computed)")
    ap.add_argument("--batches", type=int, default=8, help="training batches timed per kernel")
    ap.add_argument("--fresh", type=int, default=0, help="rounds of one new process per kernel")
    ap.add_argument("--only", choices=list(KERNELS), help=argparse.SUPPRESS)  # a --fresh child
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.only:
        config, examples = load_examples(args.train_config)
        batches = training_batches(config, examples)[: args.batches + 1]
        print(json.dumps(time_steps_here(config, batches, use(args.only))))
        return
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    print(f"one bidirectional layer, forward + backward, (T, B, I, H) = {tuple(args.shape)}:")
    time_layer(args.shape, args.repeats)
    if not args.train_config:
        return
    config, examples = load_examples(args.train_config)
    batches = training_batches(config, examples)[: args.batches + 1]
    audio = sum(e.utt.duration for b in batches[1:] for e in b)
    print(f"{args.train_config}: {args.batches} batches ({audio:.0f} s of audio), precision {config.precision}, "
          f"model {config.model.layers} x {config.model.hidden}")
    seconds = alternate(config, batches, {k: use(k) for k in KERNELS})
    for k, s in seconds.items():
        print(f"  alternating in one process: {k:9s} {s:6.1f} s, {audio / s:5.1f} audio s/s")
    print(f"  training steps {seconds['nn.RNN'] / seconds['rnn_layer']:.2f}x faster with rnn_layer")
    if args.fresh:
        child = ["--threads", str(args.threads), "--train-config", args.train_config, "--batches", str(args.batches)]
        runs = fresh_processes(__file__, child, list(KERNELS), args.fresh)
        for k, rs in runs.items():
            print(f"  fresh processes: {k:9s} " + ", ".join(f"{r['seconds']:.1f} s ({audio / r['seconds']:.1f} audio s/s, "
                                                          f"peak RSS {r['peak_rss_gb']:.2f} GB)" for r in rs))
        total = {k: sum(r["seconds"] for r in rs) for k, rs in runs.items()}
        print(f"  training steps {total['nn.RNN'] / total['rnn_layer']:.2f}x faster with rnn_layer (fresh processes, totals)")


if __name__ == "__main__":
    main()
