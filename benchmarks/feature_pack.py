"""Pack a training feature cache into 8-bit parts small enough to send to another machine, and unpack it.

    python benchmarks/feature_pack.py pack exp/.../cache/train_feats.pt .gpu/train --max-mb 55
    python benchmarks/feature_pack.py unpack .gpu/train/part-*.pt --out exp/.../cache/train_feats.pt

A cache (``asr.data.load_features``) holds float16 ``(T, D)`` matrices keyed by the manifest and
feature config. Packing quantises each matrix per coefficient to 8 bits between its own minimum
and maximum (step = range / 255: about 0.03 for CMVN features of unit variance, an error of
~1 % of a standard deviation), halving the size; unpacking restores a float16 cache with the
same key, which training then reads as its own. Used to run lever sweeps on a GPU machine that
only receives a limited working tree (benchmarks/lever_sweep.py).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch


def quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(T, D)`` float -> uint8 codes ``(T, D)``, per-coefficient minimum and step ``(D,)`` float32."""
    x = x.float()
    lo = x.min(0).values
    step = (x.max(0).values - lo).clamp_min(1e-6) / 255
    return torch.round((x - lo) / step).to(torch.uint8), lo, step


def dequantize(codes: torch.Tensor, lo: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    return (codes.float() * step + lo).to(torch.float16)


def pack(cache: Path, out: Path, max_mb: float) -> None:
    saved = torch.load(cache, weights_only=True)
    out.mkdir(parents=True, exist_ok=True)
    parts, part, size = [], [], 0
    for f in saved["features"]:
        part.append(quantize(f))
        size += f.numel() + 8 * f.shape[1]
        if size > max_mb * 1e6:
            parts.append(part)
            part, size = [], 0
    if part:
        parts.append(part)
    for n, p in enumerate(parts):
        torch.save({"key": saved["key"] if n == 0 else None, "features": p}, out / f"part-{n}.pt")
    print(f"{cache}: {len(saved['features'])} matrices in {len(parts)} part(s) under {out}")


def unpack(parts: list[Path], out: Path) -> None:
    parts = sorted(parts, key=lambda p: int(p.stem.split("-")[1]))
    key, feats = None, []
    for p in parts:
        saved = torch.load(p, weights_only=True)
        key = key if saved["key"] is None else saved["key"]
        feats += [dequantize(*q) for q in saved["features"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"key": key, "features": feats}, f"{out}.tmp")
    os.replace(f"{out}.tmp", out)
    print(f"{out}: {len(feats)} matrices from {len(parts)} part(s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("cache", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--max-mb", type=float, default=55.0, help="size of each part")
    u = sub.add_parser("unpack")
    u.add_argument("parts", type=Path, nargs="+")
    u.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.cmd == "pack":
        pack(args.cache, args.out, args.max_mb)
    else:
        unpack(args.parts, args.out)


if __name__ == "__main__":
    main()
