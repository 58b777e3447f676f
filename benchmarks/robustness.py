"""Robustness: WER of the shipped recognizer on dev corrupted reproducibly, PocketSphinx beside it.

    python benchmarks/robustness.py --manifest data/librispeech/dev.jsonl [--utterances 60]
        [--fsdd ../shared/data/fsdd] [--conditions clean pink-10 ...] [--bundle DIR]
        [--no-pocketsphinx] [--out exp/bench/robustness]

Every --utterances-th share of dev (spread over all speakers) is corrupted each way below with
fixed seeds (`asr.augment`), written as 16 kHz 16-bit WAV under --out, and transcribed by both
recognizers in the same run:

- ``white-N``, ``pink-N``: generated noise at N dB SNR (20, 10, 5, 0); ``babble-N``: four other
  dev utterances of other speakers mixed at N dB. Training never uses these noises or seeds.
- ``room-T``: image-method room with RT60 T s (0.3, 0.6, 0.9), talker 1-3 m from the microphone.
- ``telephone``: 300-3400 Hz, 8 kHz, 8-bit mu-law; ``opus``: Ogg/Opus at about 22 kbit/s;
  ``quiet``: -35 dBFS; ``clipping``: 12 dB over full scale, hard-clipped.
- ``digits``: 40 strings of 3-7 FSDD test recordings (speakers and recordings 0-4 that the FSDD
  recipe tests on; 8 kHz, other microphones), joined with short pauses, e.g. "four zero nine".

PocketSphinx 5.1.1 with its bundled model (`pip install -e '.[bench]'`, which also brings
pyroomacoustics for the rooms) decodes the same files in 2 processes. Prints one line per
condition (asr's word-confidence ROC AUC and ECE under it beside) and writes summary.json.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import asr
from asr.augment import add_noise, babble, clip, coloured_noise, gain_to, opus, room, telephone, within_full_scale
from asr.manifest import read_manifest
from asr.features import SAMPLE_RATE
from asr.features import load_audio as _load_audio
from asr.metrics import expected_calibration_error, roc_auc, wer, words_right

CONDITIONS = (["clean"] + [f"{kind}-{snr}" for kind in ("white", "pink", "babble") for snr in (20, 10, 5, 0)]
              + ["room-0.3", "room-0.6", "room-0.9", "telephone", "opus", "quiet", "clipping", "digits"])


def load_audio(path):
    """The audio as a torch tensor: this benchmark mixes and corrupts it with torch (asr.augment)."""
    return torch.from_numpy(_load_audio(path))


def seed_of(*parts) -> int:
    """A fixed seed per condition and utterance (never Python's salted ``hash``)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def corrupt(condition: str, speech: torch.Tensor, index: int, others: list[torch.Tensor]) -> torch.Tensor:
    kind, _, value = condition.partition("-")
    seed = seed_of(condition, index)
    if kind in ("white", "pink"):
        return add_noise(speech, coloured_noise(kind, speech.numel(), seed), float(value))
    if kind == "babble":
        rng = np.random.default_rng(seed)
        talkers = [others[i] for i in rng.choice(len(others), 4, replace=False)]
        return add_noise(speech, babble(talkers, speech.numel()), float(value))
    if kind == "room":
        distance = float(np.random.default_rng(seed).uniform(1.0, 3.0))
        return room(speech, float(value), distance, seed)
    return {"clean": lambda x: x, "telephone": telephone, "opus": opus,
            "quiet": lambda x: gain_to(x, -35.0), "clipping": lambda x: clip(x, 12.0)}[condition](speech)


def digit_strings(fsdd: Path, count: int = 40) -> list[tuple[str, torch.Tensor]]:
    """``count`` (text, samples) of 3-7 FSDD test recordings (recordings 0-4) joined by 0.2-0.4 s pauses."""
    rows = [line.split("\t") for line in (fsdd / "SOURCE_manifest.tsv").read_text().splitlines()[1:]]
    test = [(r[1], r[6]) for r in rows if int(r[0].rsplit("_", 1)[1]) < 5]  # (path, digit word)
    rng = np.random.default_rng(seed_of("digits"))
    out = []
    for _ in range(count):
        picks = [test[i] for i in rng.choice(len(test), int(rng.integers(3, 8)), replace=False)]
        pieces = []
        for path, _ in picks:
            pieces += [load_audio(fsdd / path), torch.zeros(int(rng.uniform(0.2, 0.4) * SAMPLE_RATE))]
        out.append((" ".join(word for _, word in picks), torch.cat(pieces)))
    return out


def write_wav(path: Path, x: torch.Tensor) -> None:
    # noise at 0 dB can exceed full scale: scaled down rather than clipped (except "clipping")
    sf.write(path, within_full_scale(x).numpy(), SAMPLE_RATE, subtype="PCM_16")


def pocketsphinx_files(paths: list[str], processes: int) -> list[str]:
    """PocketSphinx's words for each file, in ``processes`` forked processes given every Nth file.
    (PocketSphinx carries its cepstral mean from one utterance to the next, so how the files are
    shared out changes a few words: this sharing is the one the published runs used.)"""
    import multiprocessing

    from batch_transcribe import pocketsphinx_transcribe

    shares = [paths[k::processes] for k in range(processes)]
    # one torch thread in each forked worker, as in batch_transcribe.pocketsphinx_parallel
    with multiprocessing.get_context("fork").Pool(processes, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        done = pool.map(pocketsphinx_transcribe, shares)
    hyps = [""] * len(paths)
    for k, (share_hyps, _) in enumerate(done):
        hyps[k::processes] = share_hyps
    return hyps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--utterances", type=int, default=60, help="dev utterances per condition (default 60)")
    ap.add_argument("--fsdd", default="../shared/data/fsdd")
    ap.add_argument("--conditions", nargs="+", default=CONDITIONS, choices=CONDITIONS, metavar="CONDITION")
    ap.add_argument("--bundle")
    ap.add_argument("--no-pocketsphinx", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="exp/bench/robustness")
    args = ap.parse_args()

    dev = read_manifest(args.manifest)
    step = max(1, len(dev) // args.utterances)
    chosen = dev[::step][:args.utterances]
    chosen_ids = {u.id for u in chosen}
    babble_pool = [u for u in dev[1::7] if u.id not in chosen_ids][:40]  # babble talkers: other dev utterances
    babble_audio = {u.id: load_audio(u.audio) for u in babble_pool}
    recognizer = asr.load(args.bundle)
    sphinx = None
    if not args.no_pocketsphinx:
        import importlib.util

        if importlib.util.find_spec("pocketsphinx") is not None:  # the optional extra
            sphinx = pocketsphinx_files
        else:
            print("pocketsphinx not installed (pip install -e '.[bench]'): asr alone")
    out = Path(args.out)
    summary: dict[str, dict] = {}
    print(f"{len(chosen)} dev utterances (every {step}th) per condition; {recognizer.bundle.path}")
    print(f"{'condition':12s} {'asr WER':>8s} {'pocketsphinx':>12s}  utterances  seconds of audio  "
          f"confidence AUC, ECE (asr)")
    for condition in args.conditions:
        folder = out / "audio" / condition
        folder.mkdir(parents=True, exist_ok=True)
        if condition == "digits":
            items = [(f"digits-{i:02d}", text, x) for i, (text, x) in enumerate(digit_strings(Path(args.fsdd)))]
        else:
            items = []
            for i, u in enumerate(chosen):
                others = [babble_audio[o.id] for o in babble_pool if o.speaker != u.speaker][:12] \
                    if condition.startswith("babble") else []
                items.append((u.id, u.text, corrupt(condition, load_audio(u.audio), i, others)))
        paths = []
        for uid, _, x in items:
            path = folder / f"{uid}.wav"
            write_wav(path, x)
            paths.append(str(path))
        refs = [text for _, text, _ in items]
        start = time.perf_counter()
        transcripts = recognizer.transcribe(paths, workers=args.workers)
        hyps = [t.text for t in transcripts]
        row = {"asr": wer(refs, hyps), "asr_seconds": round(time.perf_counter() - start, 1),
               "utterances": len(items), "audio_seconds": round(sum(x.numel() for *_, x in items) / SAMPLE_RATE, 1)}
        # the word confidences under this condition: how well they tell right words from wrong
        # ones (ROC AUC) and how far they are from the share that is right (ECE, 10 bins)
        right = [r for ref, t in zip(refs, transcripts) for r in words_right(ref, [w.word for w in t.words])]
        confidences = [w.confidence for t in transcripts for w in t.words]
        if right and 0 < sum(right) < len(right):
            row["confidence_auc"] = round(roc_auc(confidences, right), 4)
        if right:
            row["confidence_ece"] = round(expected_calibration_error(confidences, right), 4)
        if sphinx is not None:
            row["pocketsphinx"] = wer(refs, sphinx(paths, args.workers))
        summary[condition] = row
        ps = f"{row['pocketsphinx']:11.1%}" if "pocketsphinx" in row else f"{'-':>11s}"
        conf = f"{row.get('confidence_auc', float('nan')):6.3f} {row.get('confidence_ece', float('nan')):6.3f}"
        print(f"{condition:12s} {row['asr']:8.1%} {ps}   {row['utterances']:10d}  {row['audio_seconds']:16.0f}  {conf}",
              flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
