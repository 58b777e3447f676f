"""The README's first command in a fresh virtual environment: its size, and what it can do.

    python benchmarks/install_size.py [--keep DIR] [--repo CHECKOUT]

Creates a new venv in a temporary folder, runs ``pip install -e REPO`` in it (the README's
set-up, the runtime only), then prints the venv's size on disk (``du``), its largest
packages, whether ``import torch`` fails there (it should: training's extra brings torch),
and the last line of ``asr demo`` run from it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def du_mb(path: Path) -> float:
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", help="make the venv here and keep it (default: a temporary folder)")
    ap.add_argument("--repo", help="another checkout of asr to install (default: this one)")
    args = ap.parse_args()
    repo = Path(args.repo).resolve() if args.repo else Path(__file__).resolve().parent.parent
    tmp = None if args.keep else tempfile.mkdtemp(prefix="asr-venv-")
    venv = Path(args.keep or tmp) / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-e", str(repo)], capture_output=True, text=True)
        if pip.returncode:
            sys.exit(pip.stdout + pip.stderr)
        print(f"pip install -e {repo.name} in a fresh venv: {du_mb(venv):.0f} MB")
        site = next((venv / "lib").glob("python*/site-packages"))
        sizes = sorted(((du_mb(p), p.name) for p in site.iterdir() if p.is_dir() and not p.name.endswith("-info")),
                       reverse=True)
        print("largest: " + ", ".join(f"{name} {mb:.0f} MB" for mb, name in sizes[:8]))
        torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True, text=True)
        print("import torch: " + ("fails (" + torch.stderr.strip().splitlines()[-1] + ")" if torch.returncode
                                  else "works"))
        demo = subprocess.run([str(venv / "bin" / "asr"), "demo"], capture_output=True, text=True, cwd=tmp or repo)
        print(f"asr demo: exit {demo.returncode}: " + (demo.stdout.strip().splitlines() or [demo.stderr.strip()])[-1])
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
