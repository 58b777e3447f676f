"""Grammar decoding on dev: where its settings are chosen, apart from the test sets of
``grammar_vs_pocketsphinx.py`` (FSDD, PocketSphinx's card names and robot command).

    python benchmarks/grammar_dev.py --manifest data/librispeech/dev.jsonl [--bundle DIR]
        [--beam-thresholds 12 1e9] [--rejects 1 2 3 1e9] [--floors 0.05 0] [--conditions clean narrowband pink-10 fsdd]
        [--crops exp/short-clips/dev] [--strings 150] [--fsdd ../shared/data/fsdd] [--pocketsphinx]

A grammar that looks like a command list, made from dev alone: the word crops of
``short_clips.py`` (one span of 1-3 words from each dev utterance, :mod:`asr.crops`), every
other crop's text one of its sentences (~300 "commands"). Three sets:
- ``in``: those crops, each alone; the grammar: any one of the texts;
- ``strings``: ``--strings`` strings of 2-3 of them (one speaker) joined with 0.2-0.5 s of quiet
  noise; the grammar: one or more of the texts (``<command>+``, as card names and digit strings);
- ``out``: the other crops, whose texts the grammar does not have: speech that is no command, to
  be left empty (``grammar_reject``), with the first grammar.

``--pocketsphinx``: also a row for PocketSphinx 5.1.1 (en-us) with the same grammars in each
condition: it has no out-of-grammar answer, so what it gives ``out`` clips is its nearest sentence.
It cannot load a grammar with a word its dictionary lacks (the command lists hold dev's names).

``--noise-seeds``: also 30 s of each kind of generated non-speech (:func:`asr.calibrate.synthetic_audio`,
at full and at a low level, once per seed) through the ``<command>+`` grammar and
``recipes/grammars/digits.gram`` (any number of digits, a grammar that some string matches in any
noise): how many clips were given a sentence, and how many words, at each setting.

``--conditions``: the crops as they are (``clean``), as 8 kHz recordings (``narrowband``, as FSDD's
digits and phone-line corpora are: :func:`asr.augment.narrowband`, heard as 8 kHz recordings, so
by a bundle's narrow-band model where it has one, and joined into strings with pauses of 8 kHz
noise), or under pink noise at a signal-to-noise ratio (``pink-10``: 10 dB), each crop corrupted
before strings are joined. ``fsdd``: a digit recognizer, on FSDD's dev split (recordings 5-9 of
each digit and speaker: the test split of ``grammar_vs_pocketsphinx.py`` is 0-4) heard as the 8 kHz
recordings they are: ``in``, the 300 digits with ``recipes/grammars/digit.gram``; ``strings``,
100 strings of 3-6 of them with ``digits.gram``; ``out``, the 8 kHz crops (above) that are not
digits, through ``digit.gram``.

For each condition, beam threshold (the search drops hypotheses scoring this far below its best; 1e9 drops
none), out-of-grammar threshold (``grammar_reject``; 1e9 rejects nothing) and confidence floor
(words the calibrator gives less chance than this are left out; 0 keeps all), the bundle's
decoding otherwise: WER and sentences wrong of ``in`` and ``strings``, how many of each came out
empty, how many ``out`` clips were given a sentence, and the real-time factor (one process, one
thread, loading and a first untimed clip excluded). The last column, errors of ``in`` plus
``out`` clips given a sentence, is what a command recognizer gets wrong either way.
"""

import argparse
import itertools
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import asr
from asr.crops import CropConfig, make_crops
from asr.features import load_audio
from asr.manifest import read_manifest
from asr.metrics import wer
from grammar_vs_pocketsphinx import GRAMMARS, NAMES, fsdd_sets, join_strings, run_asr, run_pocketsphinx

DIGITS = GRAMMARS / "digits.gram"
NARROW = 8000  # Hz: the rate the narrowband condition's crops and FSDD's digits were recorded at


def recorded_at(condition: str) -> int:
    """The rate a condition's clips count as recorded at (which chooses the model that hears them)."""
    return NARROW if condition in ("narrowband", "fsdd") else 16000


def corrupted(condition: str, wav: np.ndarray, index: int) -> np.ndarray:
    """``wav`` (16 kHz samples) under ``condition`` (``clean``, ``narrowband``, ``pink-SNR``); seeded by ``index``."""
    if condition == "clean":
        return wav
    import torch  # the corruptions are the training's (asr.augment)

    from asr.augment import add_noise, coloured_noise, narrowband

    x = torch.from_numpy(wav)
    if condition == "narrowband":
        return narrowband(x).numpy()
    kind, _, snr = condition.partition("-")
    if kind != "pink" or not snr:
        raise SystemExit(f"unknown condition {condition!r}: clean, narrowband, pink-SNR or fsdd")
    return add_noise(x, coloured_noise("pink", x.numel(), index), float(snr)).numpy()


def grammar_sets(crops, folder: Path, strings: int, condition: str = "clean", fsdd: Path | None = None
                 ) -> tuple[dict[str, list[tuple[np.ndarray, str]]], Path, Path]:
    """``({set: clips}, one-command grammar, commands grammar)``: each clip ``(16 kHz samples, reference)``."""
    if condition == "fsdd":
        digits = fsdd_sets(fsdd, recordings=(5, 10))
        speech = grammar_sets(crops, folder, 0, "narrowband")[0]
        out = [clip for clip in speech["in"] + speech["out"] if not set(clip[1].split()) <= {*NAMES, "oh"}]
        return {"in": digits["digit"], "strings": digits["digits"], "out": out}, GRAMMARS / "digit.gram", DIGITS
    clips = [(corrupted(condition, load_audio(c.audio), i), c.text) for i, c in enumerate(crops)]
    commands = sorted({text for _, text in clips[0::2]})
    inside = clips[0::2]
    outside = [clip for clip in clips[1::2] if clip[1] not in commands]
    folder.mkdir(parents=True, exist_ok=True)
    alternatives = "\n    | ".join(commands)
    one, more = folder / "command.gram", folder / "commands.gram"
    one.write_text(f"#JSGF V1.0;\ngrammar command;\npublic <command> = {alternatives};\n")
    more.write_text(f"#JSGF V1.0;\ngrammar commands;\npublic <commands> = <command>+;\n<command> = {alternatives};\n")
    joined = join_strings(inside, [c.speaker for c in crops[0::2]], strings, (2, 4), recorded_at(condition))
    return {"in": inside, "strings": joined, "out": outside}, one, more


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--bundle", help="bundle folder (default: the shipped one)")
    ap.add_argument("--beam-thresholds", type=float, nargs="+", default=[12.0, 1e9])
    ap.add_argument("--rejects", type=float, nargs="+", default=[1.0, 2.0, 3.0, 1e9])
    ap.add_argument("--floors", type=float, nargs="+", default=[None],
                    help="confidence floors (default: the bundle's)")
    ap.add_argument("--conditions", nargs="+", default=["clean"])
    ap.add_argument("--crops", default="exp/short-clips/dev", help="folder of the clips (made once, then reused)")
    ap.add_argument("--strings", type=int, default=150)
    ap.add_argument("--noise-seeds", type=int, nargs="*", default=[], help="seeds of generated non-speech (none: not run)")
    ap.add_argument("--fsdd", type=Path, default=Path("../shared/data/fsdd"), help="FSDD, for the fsdd condition")
    ap.add_argument("--pocketsphinx", action="store_true", help="also PocketSphinx with the same grammars")
    args = ap.parse_args()
    crops = make_crops(asr.load(), read_manifest(args.manifest), args.crops, CropConfig(per_utterance=1, seed=1),
                       log=lambda m: None)
    print("| condition | beam threshold | grammar_reject | confidence floor | in: WER, wrong, empty | "
          "strings: WER, wrong, empty | out: given a sentence | RTF (in, strings) | in wrong + out given |")
    print("|---|---|---|---|---|---|---|---|---|")
    for condition in args.conditions:
        sets, one, more = grammar_sets(crops, Path(args.crops) / "grammars", args.strings, condition, args.fsdd)
        rate = recorded_at(condition)
        if condition in (args.conditions[0], "fsdd"):
            for name, clips in sets.items():
                print(f"<!-- {condition} {name}: {len(clips)} clips, {sum(len(r.split()) for _, r in clips)} words, "
                      f"{sum(len(w) for w, _ in clips) / 16000:.0f} s -->")
        with threadpool_limits(1):
            for threshold, reject, floor in itertools.product(args.beam_thresholds, args.rejects, args.floors):
                options = decoding_options(threshold, reject, floor)
                cells = []
                for name, grammar in (("in", one), ("strings", more)):
                    rec = asr.load(args.bundle, grammar=str(grammar), **options)
                    cells.append(cell(sets[name], *run_asr(rec, sets[name], rate)))
                rec = asr.load(args.bundle, grammar=str(one), **options)
                given = sum(bool(h) for h in run_asr(rec, sets["out"], rate)[0])
                print(f"| {condition} | {threshold:g} | {reject:g} | {rec.decoding.confidence_floor:g} | {cells[0][0]} | "
                      f"{cells[1][0]} | {given}/{len(sets['out'])} | {cells[0][1]:.4f}, {cells[1][1]:.4f} | "
                      f"{cells[0][2] + given} |", flush=True)
            if args.pocketsphinx:
                print_pocketsphinx(condition, sets, one, more)
        if args.noise_seeds and condition == args.conditions[0]:
            print_noise(args, more, list(itertools.product(args.beam_thresholds, args.rejects, args.floors)))


def cell(clips, hyps: list[str], took: float) -> tuple[str, float, int]:
    """One set's table cell for ``hyps`` of ``clips`` decoded in ``took`` seconds:
    ``("WER, wrong, empty", RTF, sentences wrong)``."""
    refs = [r for _, r in clips]
    wrong = sum(h != r for h, r in zip(hyps, refs))
    return (f"{100 * wer(refs, hyps):.2f} %, {wrong}, {sum(not h for h in hyps)}",
            took / (sum(len(w) for w, _ in clips) / 16000), wrong)


def print_pocketsphinx(condition: str, sets, one: Path, more: Path) -> None:
    """The table's row for PocketSphinx with the same grammars (its RTF: decoding time / audio)."""
    cells = []
    for name, grammar in (("in", one), ("strings", more)):
        try:
            cells.append(cell(sets[name], *run_pocketsphinx(str(grammar), sets[name])))
        except RuntimeError as e:  # a grammar word its dictionary lacks (dev's names): it loads no grammar
            print(f"| {condition} | PocketSphinx 5.1.1 en-us: {e} ({grammar.name}) | | | | | | | |", flush=True)
            return
    given = sum(bool(h) for h in run_pocketsphinx(str(one), sets["out"])[0])
    print(f"| {condition} | PocketSphinx 5.1.1 en-us | | | {cells[0][0]} | {cells[1][0]} | {given}/{len(sets['out'])} | "
          f"{cells[0][1]:.4f}, {cells[1][1]:.4f} | {cells[0][2] + given} |", flush=True)


def decoding_options(threshold: float, reject: float, floor: float | None) -> dict:
    """``asr.load`` options of one setting (``floor`` None: the bundle's)."""
    options = {"beam_threshold": threshold, "grammar_reject": reject}
    if floor is not None:
        options["confidence_floor"] = floor
    return options


def print_noise(args, commands: Path, settings) -> None:
    """Generated non-speech through two grammars of any number of sentences: clips given a sentence, words."""
    from asr.calibrate import synthetic_audio
    from confidence_floor import NON_SPEECH

    clips = [synthetic_audio(kind, 30.0, seed=seed) * level for kind, level in NON_SPEECH for seed in args.noise_seeds]
    print(f"\nnon-speech: {len(NON_SPEECH)} kinds and levels x seeds {args.noise_seeds}, 30 s each ({len(clips)} clips)\n")
    print("| grammar | beam threshold | grammar_reject | confidence floor | clips given a sentence | words |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for grammar in (commands, DIGITS):
            for threshold, reject, floor in settings:
                rec = asr.load(args.bundle, grammar=str(grammar), **decoding_options(threshold, reject, floor))
                words = [len(rec.transcribe(wav, sample_rate=16000).words) for wav in clips]
                print(f"| {grammar.name} | {threshold:g} | {reject:g} | {rec.decoding.confidence_floor:g} | "
                      f"{sum(n > 0 for n in words)}/{len(clips)} | {sum(words)} |", flush=True)


if __name__ == "__main__":
    main()
