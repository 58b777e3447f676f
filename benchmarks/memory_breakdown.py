"""Where the memory of `asr transcribe` goes: resident set after each loading step, and what the
beam search of one 30 s window adds, in this process (one core).

    python benchmarks/memory_breakdown.py [--bundle DIR] [--audio FILE]

Prints the resident set size (VmRSS) after importing numpy, loading the bundle (sha256 checks),
the exported model and the beam decoder (LM + trie from the bundle's saved spellings; the
lexicon is read only where they do not fit), and the growth while the
shipped search runs over the first 30 s of ``--audio`` (default: the shipped sample clips
joined and repeated to 30 s), before and after handing free heap back (malloc_trim).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import time


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", help="bundle folder (default: the shipped one)")
    ap.add_argument("--audio", help="audio file whose first 30 s are searched")
    args = ap.parse_args()
    steps = [("python", rss_mb())]
    import numpy as np
    from threadpoolctl import threadpool_limits

    steps.append(("import numpy", rss_mb()))
    from asr.bundle import load_bundle
    from asr.rnn import RNNModel
    from asr.search import make_beam_decoder
    from asr.text import LazyLexicon

    threadpool_limits(1)
    bundle = load_bundle(args.bundle)
    steps.append(("bundle.json + sha256 of its files", rss_mb()))
    model = RNNModel.load(bundle.runtime)
    steps.append(("model", rss_mb()))
    lexicon = LazyLexicon(bundle.lexicon)  # as asr.transcribe.Transcriber: read where a decoding needs it
    beam = make_beam_decoder(bundle.head, lexicon, bundle.decoding, bundle.spellings)
    steps.append(("beam decoder: LM + trie (saved spellings)", rss_mb()))
    if lexicon._lexicon is not None:
        steps.append(("(the lexicon was read: no saved spellings fit)", rss_mb()))
    previous = 0.0
    for name, mb in steps:
        print(f"{name:48s} {mb:7.0f} MB RSS  (+{mb - previous:.0f})")
        previous = mb

    from asr.features import SAMPLE_RATE, compute_features, load_audio

    if args.audio:
        wav = load_audio(args.audio, stop=30.0)
    else:
        from importlib import resources

        clips = sorted((resources.files("asr") / "assets" / "samples").glob("*.opus"))  # type: ignore[attr-defined]
        wav = np.concatenate([load_audio(str(p)) for p in clips])
        wav = np.tile(wav, int(30 * SAMPLE_RATE // wav.shape[0]) + 1)[: 30 * SAMPLE_RATE]
    feats = compute_features(wav, model.config.features)
    ((_, out),) = list(model.forward_batches([feats]))
    if beam is None:
        print("greedy decoding: no search")
        return
    before = rss_mb()
    start = time.perf_counter()
    beam.search(out[bundle.head], out["lengths"], model.config.frame_seconds)
    seconds = time.perf_counter() - start
    after = rss_mb()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(f"beam search of {wav.shape[0] / SAMPLE_RATE:.0f} s (beam {bundle.decoding.beam_size}): "
          f"+{after - before:.0f} MB RSS in {seconds:.2f} s; +{rss_mb() - before:.0f} MB after malloc_trim")


if __name__ == "__main__":
    main()
