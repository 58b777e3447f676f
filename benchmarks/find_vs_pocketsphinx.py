"""`asr find` on dev beside PocketSphinx's keyword search (kws mode) on the same files.

    python benchmarks/find_vs_pocketsphinx.py --manifest data/librispeech/dev.jsonl [--files 200]

Phrases: 30 two-word phrases of dev transcripts (both words of 4 letters or more, evenly
spaced through the manifest's first ``--files`` utterances) and 15 two-word phrases that no dev
transcript holds (taken from the train-clean-5 transcripts the same way), all searched at once
in those files. A true occurrence is one in the reference transcript; a hit counts as right
when its file's reference holds the phrase (hits beyond the reference's count are false).

- **asr find** with its default threshold (0.5), and what other thresholds would give (from
  the same run's hits at threshold 0);
- **PocketSphinx 5.1.1** (en-us model) with a keyphrase list, each phrase at the detection
  threshold ``1e-20`` (its documentation's starting point for two-word phrases) and at
  ``1e-30`` and ``1e-10``; a detection of a phrase is one hit.

Prints precision, recall and RTF per system and threshold.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from asr.features import load_audio
from asr.manifest import read_manifest


def two_word_phrases(texts: list[str], count: int, exclude: set[str] = frozenset()) -> list[str]:
    found = []
    for t in texts[:: max(1, len(texts) // (3 * count))]:
        words = t.split()
        for a, b in zip(words, words[1:]):
            phrase = f"{a} {b}"
            if len(a) >= 4 and len(b) >= 4 and phrase not in found and phrase not in exclude:
                found.append(phrase)
                break
        if len(found) == count:
            break
    return found


def score(hits: dict[str, collections.Counter], refs: dict[str, str], phrases: list[str]) -> tuple[float, float, int]:
    right = false = total = 0
    for path, ref in refs.items():
        padded = f" {ref} "
        for p in phrases:
            n = padded.count(f" {p} ")
            total += n
            got = hits.get(path, collections.Counter())[p]
            right += min(n, got)
            false += max(0, got - n)
    precision = right / (right + false) if right + false else 1.0
    return precision, right / total if total else 0.0, total


def pocketsphinx_kws(paths: list[str], phrases: list[str], threshold: str) -> tuple[dict, float]:
    from pocketsphinx import Decoder

    with tempfile.NamedTemporaryFile("w", suffix=".kws", delete=False) as f:
        f.writelines(f"{p} /{threshold}/\n" for p in phrases)
    decoder = Decoder(samprate=16000, loglevel="FATAL", kws=f.name)
    hits, start = {}, time.perf_counter()
    for p in paths:
        pcm = (np.clip(load_audio(p), -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hits[p] = collections.Counter(seg.word.strip().lower() for seg in (decoder.seg() or []))
    os.unlink(f.name)
    return hits, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--train", default="data/librispeech/train-clean-5.jsonl")
    ap.add_argument("--files", type=int, default=200)
    args = ap.parse_args()
    utts = read_manifest(args.manifest)[: args.files]
    refs = {u.audio: u.text for u in utts}
    dev_text = " ".join(f" {u.text} " for u in read_manifest(args.manifest))
    present = two_word_phrases([u.text for u in utts], 30)
    train = [u.text for u in read_manifest(args.train)] if os.path.exists(args.train) else []
    absent = [p for p in two_word_phrases(train, 60, set(present)) if f" {p} " not in dev_text][:15]
    phrases = present + absent
    audio = sum(u.duration for u in utts)
    print(f"{len(utts)} dev files ({audio / 60:.1f} min); {len(present)} phrases from their transcripts, "
          f"{len(absent)} from train-clean-5 that dev never says", flush=True)
    print("\n| system | threshold | precision | recall | RTF |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "asr.cli", "find", *phrases, *refs, "--out", out, "--threshold", "0",
                        "--quiet"], check=True, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        found = [json.loads(line) for line in open(os.path.join(out, "hits.jsonl"), encoding="utf-8")]
    for threshold in (0.5, 0.0, 0.3, 0.7, 0.9):
        hits: dict[str, collections.Counter] = {}
        for h in found:
            if h["confidence"] >= threshold:
                hits.setdefault(h["path"], collections.Counter())[h["phrase"]] += 1
        precision, recall, total = score(hits, refs, phrases)
        label = f"{threshold:g}" + (" (default)" if threshold == 0.5 else "")
        print(f"| asr find (2 workers, whole command) | {label} | {100 * precision:.1f} % | {100 * recall:.1f} % of {total} | "
              f"{wall / audio:.4f} |", flush=True)
    for threshold in ("1e-20", "1e-30", "1e-10"):
        hits, seconds = pocketsphinx_kws(list(refs), phrases, threshold)
        precision, recall, total = score(hits, refs, phrases)
        print(f"| PocketSphinx kws (one process) | {threshold} | {100 * precision:.1f} % | {100 * recall:.1f} % of "
              f"{total} | {seconds / audio:.4f} |", flush=True)


if __name__ == "__main__":
    main()
