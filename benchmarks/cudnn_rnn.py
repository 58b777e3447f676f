"""One recurrent layer of the model on a GPU, forward + backward, in the ways cuDNN can run it.

    python benchmarks/cudnn_rnn.py [--hidden 512] [--input 1024] [--frames 400] [--batch 32 64 96 128]

``asr.model`` runs each layer as one bidirectional ``nn.RNN`` (tanh); in bf16 autocast cuDNN
uses its standard algorithm, a small matrix product per time step, so a layer's time is
set by the number of steps, not by the batch. cuDNN also has a *persistent* algorithm that
keeps ``W_hh`` on chip for the whole sequence; PyTorch picks it only for fp16, one direction,
one layer, sizes a multiple of 128 and batches a multiple of 8 up to 128
(``aten/src/ATen/native/cudnn/RNN.cpp``, ``get_algo``). The variants, each timed with CUDA
events as the mean of ``--reps`` after 3 untimed runs, input ``(T, B, input)`` time-major:

- ``bidir-fp32`` / ``bidir-bf16`` / ``bidir-fp16``: one bidirectional ``nn.RNN`` (today's layer);
- ``2x uni-fp16`` / ``2x uni-bf16``: two one-direction ``nn.RNN``, the second on the input
  reversed in time, then flipped back (the same function as a bidirectional layer on a padded batch).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn


def layer_time(variant: str, x: torch.Tensor, hidden: int, reps: int) -> float:
    """Mean milliseconds of forward + backward of one layer in ``variant`` on ``x`` (T, B, input)."""
    bidir = variant.startswith("bidir")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[variant.rsplit("-", 1)[1]]
    rnns = [nn.RNN(x.shape[-1], hidden, bidirectional=bidir).to(x.device) for _ in range(1 if bidir else 2)]
    x = x.detach().requires_grad_()

    def step() -> None:
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            if bidir:
                y, _ = rnns[0](x)
            else:
                y = torch.cat([rnns[0](x)[0], rnns[1](x.flip(0))[0].flip(0)], dim=-1)
        y.float().square().mean().backward()

    for _ in range(3):
        step()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(reps):
        step()
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--input", type=int, default=1024, help="input units (2 x hidden above the first layer)")
    ap.add_argument("--frames", type=int, default=400, help="time steps T' (400: a 12 s utterance at 30 ms)")
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 64, 96, 128])
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("cudnn_rnn.py: needs a CUDA GPU")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}; "
          f"one tanh layer, input {args.input}, hidden {args.hidden} per direction, {args.frames} steps; "
          f"forward + backward, ms (mean of {args.reps})")
    variants = ["bidir-fp32", "bidir-bf16", "bidir-fp16", "2x uni-bf16", "2x uni-fp16"]
    print("batch  " + "  ".join(f"{v:>12}" for v in variants) + "   frames/s bidir-bf16 -> best")
    for b in args.batch:
        torch.manual_seed(0)
        x = torch.randn(args.frames, b, args.input, device="cuda")
        ms = [layer_time(v, x, args.hidden, args.reps) for v in variants]
        best = min(ms)
        print(f"{b:5d}  " + "  ".join(f"{t:12.2f}" for t in ms) +
              f"   {b * args.frames / ms[1] * 1e3:,.0f} -> {b * args.frames / best * 1e3:,.0f} ({variants[ms.index(best)]})",
              flush=True)


if __name__ == "__main__":
    main()
