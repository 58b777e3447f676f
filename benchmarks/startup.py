"""Start-up: wall time of the whole `asr transcribe FILE` command on one short file, from process
start to exit, with PocketSphinx's smallest whole program (load its bundled model, decode the
file, print) beside it, taking turns on the same 16 kHz WAV.

    python benchmarks/startup.py [--audio asr/assets/samples/672-122797-0060.opus] [--runs 5]
        [--bundle DIR] [--no-pocketsphinx] [--checkout DIR]

--checkout DIR also times another checkout of asr (e.g. `git worktree add DIR COMMIT`), run as
`python -m asr.cli` in DIR (so that DIR's asr is imported, with its shipped bundle), in the same
turns: before and after a change.

Also times an argument error (`--format nonsense`) and a missing file, which must be reported
before any model loads. One warm-up run of each command first (the page cache then holds the
bundle, as it does for a user's second command); median and fastest of --runs after it.
PocketSphinx is the optional extra `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POCKETSPHINX = """
import sys, soundfile
from pocketsphinx import Decoder
samples, rate = soundfile.read(sys.argv[1], dtype="int16")
decoder = Decoder(samprate=rate, loglevel="FATAL")
decoder.start_utt()
decoder.process_raw(samples.tobytes(), full_utt=True)
decoder.end_utt()
print(decoder.hyp().hypstr.lower() if decoder.hyp() else "")
"""


def timed(command: list[str], cwd: str | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    return time.perf_counter() - start, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", default="asr/assets/samples/672-122797-0060.opus")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bundle", help="bundle folder (default: the shipped one)")
    ap.add_argument("--no-pocketsphinx", action="store_true")
    ap.add_argument("--checkout", help="another checkout of asr to time beside this one")
    args = ap.parse_args()

    import numpy as np
    import soundfile

    from asr.features import load_audio

    tool = shutil.which("asr", path=str(Path(sys.executable).parent)) or shutil.which("asr")
    if tool is None:
        sys.exit("no `asr` command beside this Python or on PATH: pip install -e .")
    with tempfile.TemporaryDirectory(prefix="asr-startup-") as tmp:
        wav = str(Path(tmp) / "clip.wav")
        samples = load_audio(args.audio)  # 16 kHz mono float
        soundfile.write(wav, (np.clip(samples, -1, 1) * 32767).astype(np.int16), 16000, subtype="PCM_16")
        seconds = samples.size / 16000
        bundle = ["--bundle", args.bundle] if args.bundle else []
        commands = {"asr transcribe": [tool, "transcribe", *bundle, wav]}
        cwd: dict[str, str] = {}
        if args.checkout:
            name = f"asr transcribe ({args.checkout})"
            commands[name] = [sys.executable, "-m", "asr.cli", "transcribe", *bundle, wav]
            cwd[name] = args.checkout
        if not args.no_pocketsphinx:
            import importlib.util

            if importlib.util.find_spec("pocketsphinx") is not None:
                commands["pocketsphinx (load model, decode, print)"] = [sys.executable, "-c", POCKETSPHINX, wav]
            else:
                print("pocketsphinx not installed (pip install -e '.[bench]'): asr alone")
        errors = {"asr transcribe --format nonsense (argument error)": [tool, "transcribe", "--format", "nonsense", wav],
                  "asr transcribe missing.wav (input error)": [tool, "transcribe", str(Path(tmp) / "missing.wav")]}
        times: dict[str, list[float]] = {name: [] for name in {**commands, **errors}}
        outputs: dict[str, str] = {}
        for name, command in {**commands, **errors}.items():  # warm-up: page cache, .pyc files
            timed(command, cwd.get(name))
        for _ in range(args.runs):  # taking turns, so that the machine's noise falls on all alike
            for name, command in {**commands, **errors}.items():
                wall, done = timed(command, cwd.get(name))
                expected_ok = name in commands
                if (done.returncode == 0) != expected_ok:
                    sys.exit(f"{name}: exit code {done.returncode}\n{done.stderr}")
                times[name].append(wall)
                outputs[name] = (done.stdout.strip() or done.stderr.strip()).splitlines()[-1]
    print(f"{args.audio}: {seconds:.2f} s of audio, {args.runs} runs each after one warm-up, wall seconds of the whole command")
    for name, walls in times.items():
        print(f"{name:55s} median {statistics.median(walls):5.2f} s  fastest {min(walls):5.2f} s  -> {outputs[name]!r}")


if __name__ == "__main__":
    main()
