"""Beam-search pruning side by side: WER and search speed of the shipped decoding at other
beam thresholds and blank-skip settings, on the same model outputs, in one run.

    python benchmarks/beam_pruning.py --manifest data/librispeech/dev.jsonl --every 3 \
        --settings 1000:25:none 1000:12:0.95 [--preload /usr/lib/x86_64-linux-gnu/libjemalloc.so.2]

A setting is BEAM_SIZE:BEAM_THRESHOLD:BLANK_SKIP ("none": every frame searched); the other
decoding weights are the shipped ones. The model runs once and its outputs are saved; each
setting is then searched on one core in a fresh process (search RTF = search seconds /
audio seconds). Fresh processes, because flashlight's search spends much of its time in
malloc and free, so its speed depends on the state of the heap: in one process, a decoder
built while another one's hypotheses were still in memory searched much faster than the
same decoder built first. ``--main-thread`` also times each setting searching on the
main thread (``BeamDecoder.search_in_thread = False``), ``--preload LIB`` with that
allocator preloaded (LD_PRELOAD), e.g. jemalloc.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

from asr.bundle import load_bundle
from asr.decode import make_beam_decoder, text_of
from asr.features import compute_features, load_audio
from asr.manifest import read_manifest
from asr.metrics import wer
from asr.rnn import RNNModel
from asr.search import skip_blank_frames
from asr.text import load_lexicon


def _save(path: str, indices, outputs, frame_seconds: float) -> None:
    arrays = {f"{k}/{name}": a for k, out in enumerate(outputs) for name, a in out.items()}
    meta = json.dumps({"indices": [list(map(int, i)) for i in indices], "frame_seconds": frame_seconds})
    np.savez(path, __meta__=np.array(meta), **arrays)


def _load(path: str) -> dict:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["__meta__"]))
        outputs = [{name: z[f"{k}/{name}"] for name in ("char", "phone", "lengths")} for k in range(len(meta["indices"]))]
    return {**meta, "outputs": outputs}


def search(outputs_path: str, setting: str, main_thread: bool) -> dict:
    """Search the saved model outputs with one setting; its hypotheses, seconds and frame counts."""
    threadpool_limits(1)
    saved = _load(outputs_path)
    bundle = load_bundle()
    head, shipped = bundle.head, bundle.decoding
    beam_size, threshold, skip = setting.split(":")
    config = dataclasses.replace(shipped, beam_size=int(beam_size), beam_threshold=float(threshold),
                                 blank_skip=None if skip == "none" else float(skip))
    beam = make_beam_decoder(head, load_lexicon(None), config)
    beam.search_in_thread = not main_thread
    hyps: dict[int, str] = {}
    start = time.perf_counter()
    for idx, out in zip(saved["indices"], saved["outputs"]):
        for i, nbest in zip(idx, beam.search(out[head], out["lengths"], saved["frame_seconds"])):
            hyps[i] = text_of(nbest[0][0]) if nbest else ""
    seconds = time.perf_counter() - start
    frames = searched = 0
    for out in saved["outputs"]:
        for b, n in enumerate(out["lengths"].tolist()):
            frames += n
            searched += len(skip_blank_frames(out[head][b, :n], config.blank_skip))
    return {"hyps": [hyps[i] for i in range(len(hyps))], "seconds": seconds, "frames": frames, "searched": searched}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--every", type=int, default=1, help="every N-th utterance only")
    ap.add_argument("--settings", nargs="+", default=["1000:25:none", "1000:12:0.95"])
    ap.add_argument("--main-thread", action="store_true", help="also time each setting searching on the main thread")
    ap.add_argument("--preload", help="also time each setting with this allocator library preloaded")
    ap.add_argument("--search", nargs=3, metavar=("OUTPUTS", "SETTING", "THREAD"), help=argparse.SUPPRESS)  # a child's job
    args = ap.parse_args()
    if args.search:
        outputs, setting, thread = args.search
        print(json.dumps(search(outputs, setting, main_thread=thread == "main")))
        return
    threadpool_limits(1)
    utts = read_manifest(args.manifest)[:: args.every]
    audio = sum(u.duration for u in utts)
    bundle = load_bundle()
    head, shipped = bundle.head, bundle.decoding
    model = RNNModel.load(bundle.runtime)
    indices, outputs = zip(*model.forward_batches([compute_features(load_audio(u.audio), model.config.features)
                                                   for u in utts]))
    print(f"{len(utts)} utterances, {audio / 60:.0f} min; shipped: head={head} {shipped}")
    # (label, LD_PRELOAD, thread): the shipped way first
    variants = [("glibc, own thread", None, "own")] + ([("glibc, main thread", None, "main")] if args.main_thread else [])
    if args.preload:
        variants.append((f"{os.path.basename(args.preload)}, own thread", args.preload, "own"))
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "outputs.npz")
        _save(saved, indices, outputs, model.config.frame_seconds)
        for setting in args.settings:
            for label, library, thread in variants:
                env = {**os.environ, "OMP_NUM_THREADS": "1", **({"LD_PRELOAD": library} if library else {})}
                child = subprocess.run([sys.executable, __file__, "--manifest", args.manifest, "--search", saved,
                                        setting, thread],
                                       env=env, check=True, capture_output=True, text=True)
                r = json.loads(child.stdout.splitlines()[-1])
                beam_size, threshold, skip = setting.split(":")
                print(f"beam {beam_size:>5s} threshold {threshold:>4s} blank-skip {skip:>4s} {label:>27s}: WER "
                      f"{wer([u.text for u in utts], r['hyps']):.2%}, search RTF {r['seconds'] / audio:.4f}, "
                      f"frames searched {r['searched'] / r['frames']:.0%}", flush=True)


if __name__ == "__main__":
    main()
