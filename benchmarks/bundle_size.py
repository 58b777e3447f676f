"""A bundle's size on disk, file by file: what a user downloads, and what recognition reads.

    python benchmarks/bundle_size.py [BUNDLE ...]     # default: the shipped one

Every file bundle.json lists, in MB (10^6 bytes), then the total, and the total without
``model.pt`` (the training checkpoint, which recognition never reads: it runs ``model.npz``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asr.bundle import BUNDLE_FILE, load_bundle  # noqa: E402

MB = 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="*", default=[None], help="bundle folders or names (default: the shipped one)")
    args = ap.parse_args()
    import json

    for name in args.bundles:
        bundle = load_bundle(name)
        files = json.loads((bundle.path / BUNDLE_FILE).read_text())["files"]
        sizes = {f: (bundle.path / f).stat().st_size for f in sorted(files)}
        sizes[BUNDLE_FILE] = (bundle.path / BUNDLE_FILE).stat().st_size
        print(f"{bundle.path}:")
        for f, n in sorted(sizes.items(), key=lambda kv: -kv[1]):
            print(f"  {f:<20} {n / MB:8.2f} MB")
        total = sum(sizes.values())
        print(f"  total {total / MB:.1f} MB; what recognition reads (all but model.pt) "
              f"{(total - sizes.get('model.pt', 0)) / MB:.1f} MB")


if __name__ == "__main__":
    main()
