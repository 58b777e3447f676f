"""Recognition held to a grammar, asr beside PocketSphinx with the same JSGF grammar, on real
recordings outside LibriSpeech: spoken digits (FSDD) one at a time, and strings of them.

    python benchmarks/grammar_vs_pocketsphinx.py [--fsdd ../shared/data/fsdd] [--bundle DIR ...]
        [--pad SECONDS] [--sets digit digits cards goforward] [--recordings FIRST STOP] [--speakers NAME ...]
        [--systems grammar lm ...]

Sets, each with its grammar: from FSDD's 8 kHz recordings (6 speakers),
- ``digit``: the FSDD test split of recipes/fsdd (recordings 0-4 of each digit and speaker,
  300 files), grammar ``recipes/grammars/digit.gram`` (one digit);
- ``digits``: 100 strings of 3-6 recordings of one speaker (from the same test split) joined
  with 0.2-0.5 s of quiet noise between them, grammar ``recipes/grammars/digits.gram`` (``<digit>+``);

and from PocketSphinx's own test data (its source release on PyPI, ``test/data/``; BSD licence),
recordings with the grammars it tests them with:
- ``cards``: 5 recordings of playing-card names (``cards/*.wav``, 1-3 cards each), ``cards/cards.gram``;
- ``goforward``: a robot command, "go forward ten meters" (``goforward.raw``), ``goforward.gram``.
PocketSphinx's release is fetched once with pip (``pip download pocketsphinx==5.1.1 --no-binary
:all:``) into ``--pocketsphinx-tests`` (default ``exp/pocketsphinx-tests``), and only those files are
unpacked. Its test data is what PocketSphinx's authors check it against: its home ground.

Systems: each bundle (default: the shipped one) with ``--grammar`` (also without its
out-of-grammar rejection and confidence floor: what the grammar alone does), the same bundle's default
decoding (its LM) for the speed and the errors without a grammar, and PocketSphinx 5.1.1 with
its en-us model and the same grammar file (``Decoder(jsgf=...)``). All read the audio
resampled to 16 kHz; asr hears each clip as the recording it came from (FSDD's and the strings of
them: 8 kHz, PocketSphinx's: 16 kHz), so a bundle with a narrow-band model hears FSDD with that
model, as `asr transcribe` would hear the files (``--narrowband-off``: also each such bundle with
it off, ``--narrowband none``, side by side). Prints WER, sentence errors and RTF (decoding time / audio, one process,
one thread, loading and a first untimed clip excluded) per set and system.

``--speakers``: only these FSDD speakers' recordings (e.g. one a model never heard:
``recipes/librispeech/local/fsdd.py``'s ``--leave-out``). ``--pad S``: S seconds of digital silence added at each end of every clip, for every system
(FSDD's recordings are cut tight around the word; LibriSpeech's utterances, which the shipped
model learnt from, start and end with a pause). ``--sets``: which sets to run.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import asr
from batch_transcribe import pocketsphinx_transcribe
from asr.features import load_audio, resample
from asr.metrics import wer

GRAMMARS = Path(__file__).resolve().parent.parent / "recipes" / "grammars"
NAMES = "zero one two three four five six seven eight nine".split()
# The rate each set's recordings were made at (asr hears them as those recordings)
RECORDED_AT = {"digit": 8000, "digits": 8000, "cards": 16000, "goforward": 16000}


def fsdd_sets(fsdd: Path, pad: float = 0.0, recordings: tuple[int, int] = (0, 5), speakers: list[str] | None = None
              ) -> dict[str, list[tuple[np.ndarray, str]]]:
    first, stop = recordings
    test = sorted(p for p in (fsdd / "recordings").glob("*.wav") if first <= int(p.stem.rsplit("_", 1)[1]) < stop
                  and (not speakers or p.stem.split("_")[1] in speakers))
    digit = [(load_audio(p), NAMES[int(p.stem[0])]) for p in test]
    if pad:
        digit = [(np.pad(wav, int(16000 * pad)), ref) for wav, ref in digit]
    return {"digit": digit, "digits": join_strings(digit, [p.stem.split("_")[1] for p in test], 100, (3, 7),
                                                   RECORDED_AT["digits"])}


def join_strings(clips: list[tuple[np.ndarray, str]], speakers: list[str], count: int, sizes: tuple[int, int],
                 rate: int = 16000) -> list[tuple[np.ndarray, str]]:
    """``count`` strings of clips, each of ``sizes[0]`` to ``sizes[1] - 1`` clips of one speaker
    (``speakers[i]`` said ``clips[i]``; the speakers in turn), joined with 0.2-0.5 s of quiet noise
    and ended with 0.2 s of it: ``(16 kHz samples, the clips' references joined)``; seeded.

    ``rate``: the rate the clips were recorded at. The noise is recorded at it too: a string of
    8 kHz recordings is an 8 kHz recording, with nothing above 4 kHz in its pauses either (full-band
    noise there is a sound no such recording holds, and a model of 8 kHz audio hears it as one)."""
    rng = np.random.default_rng(0)

    def quiet(samples: int) -> np.ndarray:  # `samples` at 16 kHz of noise recorded at `rate`
        noise = (rng.standard_normal(samples) * 1e-3).astype(np.float32)
        if rate == 16000:
            return noise
        return np.resize(resample(resample(noise, 16000, rate), rate, 16000), samples)  # only its band survives

    by_speaker: dict[str, list[int]] = {}
    for i, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(i)
    order = sorted(by_speaker)
    strings = []
    for k in range(count):
        picks = rng.choice(by_speaker[order[k % len(order)]], size=int(rng.integers(*sizes)), replace=False)
        parts, words = [], []
        for j in picks:
            parts += [quiet(int(16000 * rng.uniform(0.2, 0.5))), clips[j][0]]
            words.append(clips[j][1])
        parts.append(quiet(3200))
        strings.append((np.concatenate(parts), " ".join(words)))
    return strings


PS_VERSION = "5.1.1"
PS_FILES = ["cards/001.wav", "cards/002.wav", "cards/003.wav", "cards/004.wav", "cards/005.wav",
            "cards/cards.gram", "cards/cards.transcription", "goforward.raw", "goforward.gram"]


def pocketsphinx_test_data(folder: Path) -> Path:
    """PocketSphinx's ``test/data`` files of :data:`PS_FILES`, under ``folder`` (fetched and unpacked once)."""
    import subprocess
    import tarfile

    data = folder / "data"
    if all((data / f).is_file() for f in PS_FILES):
        return data
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"pocketsphinx-{PS_VERSION}.tar.gz"
    if not archive.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", f"pocketsphinx=={PS_VERSION}", "--no-binary", ":all:",
                        "--no-deps", "-q", "-d", str(folder)], check=True)
    with tarfile.open(archive) as tar:
        for f in PS_FILES:
            member = tar.extractfile(f"pocketsphinx-{PS_VERSION}/test/data/{f}")
            (data / f).parent.mkdir(parents=True, exist_ok=True)
            (data / f).write_bytes(member.read())
    return data


def pocketsphinx_sets(data: Path) -> dict[str, tuple[list[tuple[np.ndarray, str]], str]]:
    """The ``cards`` and ``goforward`` sets: ``(audio, reference)`` clips at 16 kHz and the grammar file."""
    cards = []
    for line in (data / "cards" / "cards.transcription").read_text().splitlines():  # "<s> ten of clubs </s> (001)"
        words, name = line.rsplit("(", 1)
        cards.append((load_audio(data / "cards" / f"{name.strip(' )')}.wav"),
                      " ".join(w for w in words.split() if w not in ("<s>", "</s>"))))
    forward = np.fromfile(data / "goforward.raw", dtype="<i2").astype(np.float32) / 32768  # 16 kHz, 16 bits, no header
    return {"cards": (cards, str(data / "cards" / "cards.gram")),
            "goforward": ([(forward, "go forward ten meters")], str(data / "goforward.gram"))}


def heard(recognizer, wav: np.ndarray, rate: int) -> str:
    """The text of 16 kHz samples of a recording made at ``rate`` Hz: what transcribing that
    recording gives (its rate chooses the model; it is resampled to these samples)."""
    ((_, transcript, _),) = recognizer.recognize([wav], rates=[rate])
    return transcript.text


def run_asr(recognizer, clips, rate: int) -> tuple[list[str], float]:
    # loading excluded: the lexicon, which loads on the first word that needs it (the joint rescoring
    # of a character-head bundle, on whichever clip first has two hypotheses), and a first call's one-off costs
    len(recognizer.lexicon)  # a lazy lexicon loads for it; a loaded one just answers
    heard(recognizer, clips[0][0], rate)
    start = time.perf_counter()
    hyps = [heard(recognizer, wav, rate) for wav, _ in clips]
    return hyps, time.perf_counter() - start


def run_pocketsphinx(grammar: str, clips) -> tuple[list[str], float]:
    pocketsphinx_transcribe([clips[0][0]], jsgf=grammar)  # warmed up as asr is
    return pocketsphinx_transcribe([wav for wav, _ in clips], jsgf=grammar)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fsdd", default="../shared/data/fsdd")
    ap.add_argument("--bundle", action="append", help="bundle folder(s) (default: the shipped one)")
    ap.add_argument("--pad", type=float, default=0.0, help="seconds of silence added at each end of every clip")
    ap.add_argument("--recordings", type=int, nargs=2, default=[0, 5], metavar=("FIRST", "STOP"),
                    help="which recordings of each digit and speaker (default 0 5: the FSDD recipe's test split; "
                         "5 10 is a part of its training split, to choose on without looking at the test)")
    ap.add_argument("--speakers", nargs="+", metavar="NAME", help="only these FSDD speakers (default: all six)")
    ap.add_argument("--systems", nargs="+", choices=["grammar", "bare-grammar", "lm", "pocketsphinx"],
                    default=["grammar", "bare-grammar", "lm", "pocketsphinx"])
    ap.add_argument("--sets", nargs="+", choices=["digit", "digits", "cards", "goforward"],
                    default=["digit", "digits", "cards", "goforward"])
    ap.add_argument("--narrowband-off", action="store_true",
                    help="also each bundle that has a narrow-band model with it off (--narrowband none)")
    ap.add_argument("--pocketsphinx-tests", default="exp/pocketsphinx-tests", metavar="DIR",
                    help="where PocketSphinx's release is fetched and its test recordings unpacked")
    args = ap.parse_args()
    threadpool_limits(1)
    sets = {}
    if {"digit", "digits"} & set(args.sets):
        sets |= {k: (v, str(GRAMMARS / f"{k}.gram"))
                 for k, v in fsdd_sets(Path(args.fsdd), args.pad, tuple(args.recordings), args.speakers).items()}
    if {"cards", "goforward"} & set(args.sets):
        sets |= pocketsphinx_sets(pocketsphinx_test_data(Path(args.pocketsphinx_tests)))
    sets = {k: v for k, v in sets.items() if k in args.sets}
    who = f"by {', '.join(args.speakers)}" if args.speakers else "and speaker"
    fsdd = f"FSDD recordings {args.recordings[0]}-{args.recordings[1] - 1} of each digit {who}; " \
        if {"digit", "digits"} & set(sets) else ""
    print(f"{os.cpu_count()} cores, one thread; {fsdd}sets: " + ", ".join(
        f"{k} ({len(v)} clips, {sum(len(w) for w, _ in v) / 16000 / 60:.1f} min)" for k, (v, _) in sets.items()),
          flush=True)
    print("\n| set | system | WER | sentences wrong | RTF |\n|---|---|---|---|---|")
    for name, (clips, grammar) in sets.items():
        refs = [ref for _, ref in clips]
        audio = sum(len(w) for w, _ in clips) / 16000
        gram = Path(grammar).name
        rate = RECORDED_AT[name]
        systems = []
        for bundle in args.bundle or [None]:
            ways = [({}, "")]
            if args.narrowband_off and asr.load_bundle(bundle).narrowband:
                ways.append(({"narrowband": "none"}, " --narrowband none"))
            for off, said in ways:
                label = "asr" + (f" {bundle}" if bundle else " (shipped bundle)") + said
                systems.append(("grammar", f"{label}, --grammar {gram}",
                                lambda b=bundle, o=off: run_asr(asr.load(b, grammar=grammar, **o), clips, rate)))
                systems.append(("bare-grammar", f"{label}, --grammar {gram}, no out-of-grammar rejection, no confidence floor",
                                lambda b=bundle, o=off: run_asr(asr.load(b, grammar=grammar, grammar_reject=1e9,
                                                                         confidence_floor=0.0, **o), clips, rate)))
                systems.append(("lm", f"{label}, its LM (no grammar)",
                                lambda b=bundle, o=off: run_asr(asr.load(b, **o), clips, rate)))
        systems.append(("pocketsphinx", f"PocketSphinx 5.1.1 en-us, jsgf={gram}",
                        lambda: run_pocketsphinx(grammar, clips)))
        systems = [(label, run) for kind, label, run in systems if kind in args.systems]
        for label, run in systems:
            hyps, seconds = run()
            wrong = sum(h != r for h, r in zip(hyps, refs))
            print(f"| {name} | {label} | {100 * wer(refs, hyps):.2f} % | {wrong}/{len(refs)} | {seconds / audio:.4f} |",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
