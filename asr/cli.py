"""``asr`` command line: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from importlib import resources
from pathlib import Path


WORKERS = "worker processes, one core each,"  # --workers means this in every command


def _workers(args: argparse.Namespace) -> int:
    """``--workers``, checked (every command's), or one per core."""
    from .errors import ConfigError
    from .transcribe import default_workers

    if args.workers is not None and args.workers < 0:
        raise ConfigError(f"--workers must be 0 (all in this process) or more, not {args.workers}")
    return default_workers() if args.workers is None else args.workers


def _sample_manifest() -> str:
    return str(resources.files("asr") / "assets" / "samples" / "manifest.jsonl")


DECODING_OPTIONS = ("head", "decoder", "lm", "calibration", "beam_size", "beam_threshold", "blank_skip",
                    "history_steps", "lm_weight", "word_score", "joint_weight", "confidence_floor", "grammar",
                    "phrases", "words", "boost", "rescore", "rescore_weight", "token_score",
                    "blank_penalty", "grammar_reject")


def _lines(path: str | None, what: str) -> tuple[str, ...] | None:
    """``--phrases FILE``, ``--words FILE``: one entry a line (blank lines and # comments left out)."""
    if path is None:
        return None
    from .errors import UserError

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot be read as UTF-8 text ({e})") from None
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def _bundle(args: argparse.Namespace, quiet: bool = False):
    """The :class:`asr.bundle.Bundle` to decode with: ``--bundle`` (default: the shipped one) or a
    bare ``--model`` checkpoint (greedy, said on stderr unless ``quiet``), with what the decoding options override."""
    from .bundle import resolve

    return resolve(args.bundle, args.model, args.lexicon, warn=None if quiet else lambda m: print(m, file=sys.stderr),
                   lexicon_free=args.lexicon_free or None, **_decoding_options(args), **_other_models(args))


def _other_models(args: argparse.Namespace) -> dict:
    """--ensemble, --ensemble-weights, --ensemble-rule and --narrowband, as
    :meth:`asr.bundle.Bundle.with_options` takes them."""
    return {"ensemble": getattr(args, "ensemble", None), "ensemble_weights": getattr(args, "ensemble_weights", None),
            "ensemble_rule": getattr(args, "ensemble_rule", None), "narrowband": getattr(args, "narrowband", None)}


def _decoding_options(args: argparse.Namespace) -> dict:
    """The decoding options given, as :meth:`asr.bundle.Bundle.with_options` takes them (the
    --phrases and --words files read into their lines)."""
    return {k: getattr(args, k) for k in DECODING_OPTIONS} | {"phrases": _lines(args.phrases, "phrase"),
                                                               "words": _lines(args.words, "word"),
                                                               "boost": tuple(args.boost) if args.boost else None}


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--bundle", metavar="DIR", help="bundle folder: model with its lexicon, LM, tuned decoding and "
                                                   "calibrator (default: the one shipped with asr; `asr bundle` makes one)")
    g.add_argument("--model", metavar="CKPT", help="a bare checkpoint instead of a bundle: decoded greedily with its "
                                                   "char head unless decoding options say otherwise")
    _add_ensemble_options(g)
    _add_narrowband_option(g)


def _add_narrowband_option(g) -> None:
    g.add_argument("--narrowband", metavar="MODEL", help="the acoustic model (exported .npz or checkpoint .pt) that "
                                                         "hears audio recorded at 8 kHz or less instead of the "
                                                         "bundle's (default: the bundle's own, if it has one); "
                                                         "'none': the bundle's model hears all audio")


def _add_ensemble_options(g) -> None:
    g.add_argument("--ensemble", nargs="+", metavar="MODEL",
                   help="more acoustic models (exported .npz or checkpoints .pt with the same features and frame "
                        "rate) heard beside the bundle's; 'none': the bundle's model alone (docs/bundles.md)")
    g.add_argument("--ensemble-weights", nargs="+", type=float, metavar="W",
                   help="one weight per model, the bundle's first (default: equal)")
    g.add_argument("--ensemble-rule", choices=["nbest", "mean", "product"],
                   help="nbest (default): the others rescore the first model's n-best; mean, product: each "
                        "frame's posteriors combined")


def _add_decoding_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding (defaults: the bundle's, tuned on its dev set; see `asr tune`)")
    g.add_argument("--head", choices=["char", "phone"], help="which CTC head gives the words")
    g.add_argument("--decoder", choices=["greedy", "beam"], help="best path, or beam search with lexicon + LM")
    g.add_argument("--lm", help="ARPA/KenLM word LM for --decoder beam (see `asr lm build`), or 'none'")
    g.add_argument("--lexicon", help="pronunciation lexicon WORD<TAB>PHONES (default: the shipped CMUdict one)")
    g.add_argument("--beam-size", type=int, help="hypotheses kept per frame (the shipped search: 2000)")
    g.add_argument("--beam-threshold", type=float, help="drop hypotheses scoring this far below the best")
    g.add_argument("--blank-skip", type=float, metavar="P",
                   help="search only the first of consecutive frames whose blank posterior exceeds P (faster)")
    g.add_argument("--history-steps", type=int, metavar="N",
                   help="the search holds at most N steps of hypotheses, committing to the best path's words "
                        "before them (bounds its memory on long recordings; 0: no limit; default 300)")
    g.add_argument("--lm-weight", type=float, help="weight of the LM's log-probability against the acoustic score")
    g.add_argument("--word-score", type=float, help="score added per word (> 0: longer outputs)")
    g.add_argument("--lexicon-free", action="store_true",
                   help="character head: beam search over any spelling, no lexicon or LM (open vocabulary)")
    g.add_argument("--joint-weight", type=float,
                   help="rescore the beam's n-best with the other head's CTC score at this weight (0: off)")
    g.add_argument("--rescore", metavar="RNNLM",
                   help="rescore the beam's n-best with this RNN LM (rnnlm.npz from `asr lm rnn`; default: the "
                        "bundle's), or 'none'")
    g.add_argument("--rescore-weight", type=float, metavar="W", help="weight of the RNN LM's log-probability")
    g.add_argument("--blank-penalty", type=float, metavar="P",
                   help="subtracted from the blank's log-probability in every frame the beam search reads (> 0: "
                        "more words)")
    g.add_argument("--token-score", type=float, metavar="S",
                   help="score each n-best hypothesis gains per phone or letter of its words (a length bonus)")
    g.add_argument("--calibration", metavar="JSON",
                   help="word-confidence calibrator from `asr calibrate` (default: the bundle's), or 'none'")
    g.add_argument("--grammar", metavar="JSGF", help="only sentences of this JSGF grammar can come out (an empty "
                                                     "result when none was said); see docs/grammars.md")
    g.add_argument("--phrases", metavar="FILE", help="only these phrases (one a line), in any sequence, can come out "
                                                     "(Vosk's phrase list)")
    g.add_argument("--grammar-reject", type=float, metavar="G",
                   help="with a grammar or phrases: an empty result when the best sentence's log-probability per "
                        "heard frame is more than G below the best free path (out of grammar; the shipped bundle: "
                        "1.5; 1e9 rejects nothing)")
    g.add_argument("--words", metavar="FILE", help="words to add to the lexicon, one a line: WORD, or WORD<TAB>PHONES "
                                                   "(without phones the bundle's G2P model says them)")
    g.add_argument("--boost", action="append", metavar="PHRASE:WEIGHT",
                   help="raise a word or phrase in the search (repeatable; weight in the LM's log10 units, "
                        "default 2: a hundred times likelier); a word the lexicon lacks is added")
    g.add_argument("--confidence-floor", type=float, metavar="P",
                   help="leave out words whose calibrated confidence is below P: what noise alone makes the "
                        "search say (the shipped bundle: 0.15; 0 keeps every word)")


def _add_streaming_options(g) -> None:
    g.add_argument("--chunk", type=float, metavar="S", help="seconds of audio the model reads at a time")
    g.add_argument("--right-context", type=float, metavar="S", help="seconds more each chunk hears (look-ahead)")
    g.add_argument("--endpoint-silence", type=float, metavar="S", help="seconds of trailing non-speech that end "
                                                                        "an utterance")


def _streaming_options(args: argparse.Namespace) -> dict[str, float]:
    """The streaming options given (StreamingConfig fields), for `asr stream` and `asr bundle`."""
    return {k: getattr(args, k) for k in ("chunk", "right_context", "endpoint_silence") if getattr(args, k) is not None}


def cmd_prepare(args: argparse.Namespace) -> int:
    from .manifest import prepare_folder, prepare_librispeech

    if args.kind == "librispeech":
        report = prepare_librispeech(args.corpus, args.subset, args.out)
    else:
        report = prepare_folder(args.corpus, args.transcripts, args.out)
    for p in report.problems:
        print(f"warning: {p}", file=sys.stderr)
    print(f"{args.out}: {report.utterances} utterances, {report.hours:.2f} h"
          + (f", {len(report.problems)} problem(s) listed above" if report.problems else ""))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .download import download_librispeech, print_progress, read_checksums

    checksums = read_checksums(args.checksums) if args.checksums else {}
    for subset in args.subsets:
        got = download_librispeech(subset, args.out, args.base_url, args.keep_archive, print_progress(subset),
                                   checksums.get(subset))
        if got.resumed_from and sys.stderr.isatty():
            print(file=sys.stderr)
        how = ("already there" if got.resumed_from < 0 else "SHA-256 checked" if got.checked
               else f"no published checksum: SHA-256 {got.sha256}")
        print(f"{subset}: {got.folder} ({how})")
    return 0


def _train_config(args: argparse.Namespace):
    from .train import TrainConfig, parse_overrides

    return TrainConfig.load(args.config, parse_overrides(args.set or []))


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    train(_train_config(args), resume=args.resume, progress=not args.quiet)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from .train import write_training_features

    for folder in write_training_features(_train_config(args), _workers(args) or 1, not args.quiet):
        print(folder)
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .io import FORMATS, expand_inputs, select_shard

    # Everything about the options is checked before torch is imported and the model loads (seconds).
    formats = [f for f in args.format.split(",") if f]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        print(f"error: unknown format {','.join(unknown) or args.format!r}; choose from {', '.join(FORMATS)}",
              file=sys.stderr)
        return 2
    if len(formats) > 1 and not args.out:
        print(f"error: several formats ({args.format}) need --out DIR: one file per input and format", file=sys.stderr)
        return 2
    if not 0.0 <= args.min_confidence <= 1.0:
        print(f"error: --min-confidence must lie in [0, 1], not {args.min_confidence}", file=sys.stderr)
        return 2
    _workers(args)  # checked now, before the model loads
    if args.shard:
        select_shard([], args.shard)  # the spec is checked now
    paths = expand_inputs(args.inputs)
    if not paths:
        print(f"error: no audio files found in {' '.join(args.inputs)}", file=sys.stderr)
        return 2
    if args.shard:
        paths = select_shard(paths, args.shard)
    if len(paths) > 1 and not args.out and formats[0] in ("srt", "vtt"):
        print(f"error: {len(paths)} files as {formats[0]} need --out DIR (one .{formats[0]} per file); "
              f"on stdout, several files go as txt, json (one array), jsonl or ctm", file=sys.stderr)
        return 2
    missing = [p for p in paths if not os.path.lexists(p)]
    if len(missing) == len(paths):  # nothing to transcribe: say so before loading the model
        for p in missing:
            print(f"error: {p}: file not found", file=sys.stderr)
        return 2
    from .transcribe import Transcriber, format_transcript, transcribe_to_dir

    transcriber = Transcriber(_bundle(args))
    workers = _workers(args)
    if args.out:
        count, failed = transcribe_to_dir(transcriber, paths, args.out, formats, workers,
                                          not args.quiet and sys.stderr.isatty(), args.min_confidence,
                                          lambda message: print(message, file=sys.stderr, flush=True))
        print(f"{args.out}/results.jsonl: {count} file(s) transcribed now, {len(paths) - count} already done, "
              f"{failed} failed", file=sys.stderr)
        return 1 if failed else 0
    failed = written = 0
    show = not args.quiet and len(paths) > 1 and sys.stderr.isatty()  # a bar would break one-line errors in logs
    array = args.format == "json" and len(paths) > 1  # several files as json: one document, an array of them
    if array:
        sys.stdout.write("[\n")
    for t in transcriber.transcribe_files(paths, workers=workers, progress=show, in_order=True):
        if t.error:
            failed += 1
            print(f"error: {t.error}", file=sys.stderr)
        elif args.format == "txt":
            text = format_transcript(t, "txt", args.min_confidence).rstrip("\n")
            print(text if len(paths) == 1 else f"{t.path}\t{text}")
        elif array:  # each object as it is done, so that a long run shows its progress
            sys.stdout.write((",\n" if written else "") + format_transcript(t, "json", args.min_confidence).rstrip("\n"))
            written += 1
        else:
            sys.stdout.write(format_transcript(t, args.format, args.min_confidence))
        sys.stdout.flush()
    if array:
        sys.stdout.write("\n]\n")
    if failed:
        print(f"{failed} of {len(paths)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    summary = evaluate(args.manifest or _sample_manifest(), args.out, _bundle(args), workers=_workers(args),
                       progress=not args.quiet)
    keys = ("wer", "cer", "per", "wer_char", "cer_char", "wer_phone", "per_utterances", "oov_rate", "boundary_error_s", "boundary_words",
            "utterances", "audio_seconds", "seconds")
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    for f in summary["failed"]:
        print(f"error: {f['error']} (utterance {f['id']}, left out of the scores)", file=sys.stderr)
    print(f"report: {args.out}/report.html, alignments: {args.out}/errs.txt", file=sys.stderr)
    if summary["failed"]:
        print(f"{len(summary['failed'])} of {summary['utterances'] + len(summary['failed'])} utterance(s) failed",
              file=sys.stderr)
    return 1 if summary["failed"] else 0


def _with_tuned(bundle, path: str | None):
    """``bundle`` with the head and decoding of ``asr tune``'s best.json at ``path`` (if given), and its dev figures."""
    from .bundle import read_tuned

    if not path:
        return bundle, {}
    head, decoding, record = read_tuned(path)
    return dataclasses.replace(bundle, head=head, decoding=decoding), record


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .bundle import write_bundle
    from .calibrate import calibrate

    augment = None
    if args.augment:
        from .train import TrainConfig

        augment = TrainConfig.load(args.augment).augment
        if not augment.copies:
            print(f"error: {args.augment}: its [augment] makes no corrupted copies (copies = 0)", file=sys.stderr)
            return 2
    bundle, _ = _with_tuned(_bundle(args, quiet=bool(args.decoding)), args.decoding)
    summary = calibrate(args.manifest, args.out, bundle, workers=_workers(args), augment=augment,
                        log=lambda line: print(line, file=sys.stderr))
    print(json.dumps({k: v for k, v in summary.items() if k != "calibrator"}, indent=2))
    print(f"calibrator: {args.out}/calibration.json", file=sys.stderr)
    if args.bundle:  # the bundle's decoding now has this calibrator
        calibrated = dataclasses.replace(bundle.decoding, decoder="beam", calibration=str(Path(args.out) / "calibration.json"))
        record = {k: summary[k] for k in ("manifest", "words", "auc", "ece", "corrupted", "l2") if k in summary}
        if args.augment:
            record["augment"] = args.augment
        write_bundle(args.bundle, bundle.model, bundle.head, calibrated, bundle.lexicon, {"calibration": record},
                     bundle.streaming, bundle.g2p, bundle.ensemble, bundle.narrowband, bundle.narrowband_streaming)
        print(f"{args.bundle}: decodes with this calibrator now", file=sys.stderr)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .bundle import resolve, write_bundle
    from .decode import DecodingConfig
    from .evaluate import tune_decoding

    bundle = resolve(args.bundle, args.model, args.lexicon, **_other_models(args))
    shipped = bundle.decoding if bundle.decoding.decoder == "beam" else DecodingConfig("beam")
    if args.lm is None and shipped.lm is None and args.model:
        print("error: give --lm (an ARPA/KenLM word LM from `asr lm build`, or 'none') to tune a bare checkpoint",
              file=sys.stderr)
        return 2
    lm = shipped.lm if args.lm is None else None if args.lm == "none" else str(Path(args.lm).resolve())
    rescore = shipped.rescore if args.rescore is None else None if args.rescore == "none" else str(Path(args.rescore).resolve())
    base = dataclasses.replace(shipped, lm=lm, rescore=rescore, **{k: getattr(args, k) for k in
                                                  ("beam_size", "beam_size_token", "beam_threshold", "blank_skip")
                                                  if getattr(args, k) is not None})
    best = tune_decoding(args.manifest, args.out, bundle, base, tuple(args.heads), tuple(args.lm_weights),
                         tuple(args.word_scores), tuple(args.joint_weights), workers=_workers(args),
                         rescore_weights=tuple(args.rescore_weights) if args.rescore_weights else None,
                         token_scores=tuple(args.token_scores) if args.token_scores else None,
                         blank_penalties=tuple(args.blank_penalties) if args.blank_penalties else None)
    print(json.dumps(best, indent=2))
    print(f"grid: {args.out}/grid.tsv", file=sys.stderr)
    if args.bundle:  # the bundle decodes with the best setting now
        decoding = DecodingConfig(**best["decoding"])
        keep = best["head"] == bundle.head and decoding.lm == bundle.decoding.lm  # the calibrator still fits
        decoding = dataclasses.replace(decoding, calibration=bundle.decoding.calibration if keep else None,
                                       confidence_floor=bundle.decoding.confidence_floor if keep else 0.0)
        write_bundle(args.bundle, bundle.model, best["head"], decoding, bundle.lexicon,
                     {"dev": {"wer": best["wer"], "manifest": best["manifest"]}}, bundle.streaming, bundle.g2p,
                     bundle.ensemble, bundle.narrowband, bundle.narrowband_streaming)
        print(f"{args.bundle}: decodes with this setting now" + ("" if keep or not bundle.decoding.calibration else
              " (its calibrator was for another head or LM and is dropped: rerun `asr calibrate --bundle`)"),
              file=sys.stderr)
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from .bundle import BUNDLE_FILE, NAMED, bundle_summary, default_bundle_path, from_checkpoint, load_bundle, write_bundle

    if args.checkpoint in NAMED and not Path(args.checkpoint).exists():  # `asr bundle default --lm ...`
        args.checkpoint = str(default_bundle_path() / NAMED[args.checkpoint])
    if (Path(args.checkpoint) / BUNDLE_FILE).is_file():  # a bundle again, with some options changed
        base = load_bundle(args.checkpoint, upgrade=True)  # a format 1 bundle is written again, exported
        if args.lexicon:
            base = dataclasses.replace(base, lexicon=args.lexicon)
    else:
        base = from_checkpoint(args.checkpoint, args.lexicon)
    bundle, record = _with_tuned(base, args.decoding)
    bundle = bundle.with_options(lexicon_free=args.lexicon_free or None, **_decoding_options(args),
                                 **_other_models(args))
    produced = {k: v for k, v in base.produced_by.items() if k not in ("asr", "commit", "dev")}
    if base.path is not None:  # what it was made from; its dev figures were measured before these changes
        changed = {k: Path(v).name if k in ("lm", "calibration") and v else v
                   for k, v in dataclasses.asdict(bundle.decoding).items() if v != getattr(base.decoding, k)}
        if bundle.ensemble != base.ensemble:
            changed["ensemble"] = {"members": [Path(m).name for m in bundle.ensemble.members],
                                   "weights": list(bundle.ensemble.weights), "rule": bundle.ensemble.rule}
        if not changed and bundle.head == base.head and bundle.lexicon == base.lexicon:
            # the same decoding (e.g. only streaming, or a narrow-band model for 8 kHz audio, added): its figures hold
            produced = dict(base.produced_by)
        else:
            produced["derived_from"] = {"bundle": args.checkpoint, "changed": changed,  # (its own derived_from nests)
                                        **{k: base.produced_by[k] for k in ("commit", "dev", "derived_from")
                                           if k in base.produced_by}}
    if record and "wer" in record:  # measured by `asr tune` (a decoding written by hand has no figure)
        produced["dev"] = {"wer": record["wer"], "manifest": record.get("manifest")}
    streaming = base.streaming
    changes = _streaming_options(args)
    if args.narrowband_stats and not bundle.narrowband:  # before any work
        print("error: --narrowband-stats: the bundle has no narrow-band model (give --narrowband MODEL)",
              file=sys.stderr)
        return 2
    features = None  # what the statistics are of: the model's features, read once for both
    if args.stream_stats or args.narrowband_stats:
        from .transcribe import load_acoustic_model

        features = load_acoustic_model(bundle).config.features
    if args.stream_stats or changes:
        from .stream import StreamingConfig, manifest_statistics, read_streaming, write_streaming

        config, stats = read_streaming(streaming) if streaming else (StreamingConfig(), None)
        if args.stream_stats:
            stats = manifest_statistics(args.stream_stats, features)
            produced["stream_stats"] = {"manifest": args.stream_stats, "frames": stats.frames}
        Path(args.out).mkdir(parents=True, exist_ok=True)
        streaming = Path(args.out) / "stream.json"
        write_streaming(streaming, dataclasses.replace(config, **changes), stats)
    narrow_streaming = bundle.narrowband_streaming
    if args.narrowband_stats:
        from .stream import StreamingConfig, manifest_statistics, write_streaming

        narrow_stats = manifest_statistics(args.narrowband_stats, features)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        narrow_streaming = Path(args.out) / "narrowband-stream.json"
        write_streaming(narrow_streaming, StreamingConfig(), narrow_stats)
    if bundle.narrowband != base.narrowband or args.narrowband_stats or args.narrowband_int8:
        before = produced.pop("narrowband", None) or {}
        if bundle.narrowband:  # what it was made from
            if bundle.narrowband == base.narrowband:  # the same model stored again: where it came from stays
                record = dict(before, int8=bool(before.get("int8")) or args.narrowband_int8)
            else:
                record = {"model": args.narrowband or str(bundle.narrowband), "int8": args.narrowband_int8}
                if bundle.narrowband.suffix == ".pt":
                    from .model import load_checkpoint

                    ckpt = load_checkpoint(bundle.narrowband)
                    record |= {k: ckpt[k] for k in ("training", "epoch", "dev", "soup_of") if k in ckpt}
            if args.narrowband_stats:
                record["stream_stats"] = {"manifest": args.narrowband_stats, "frames": narrow_stats.frames}
            produced["narrowband"] = record
    written = write_bundle(args.out, bundle.model, bundle.head, bundle.decoding, bundle.lexicon, produced, streaming,
                           None if args.g2p == "none" else args.g2p or base.g2p, bundle.ensemble, bundle.narrowband,
                           narrow_streaming if bundle.narrowband else None, args.narrowband_int8)
    print(bundle_summary(written))
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    if args.rate <= 0:
        print(f"error: --rate must be a positive number of samples a second, not {args.rate}", file=sys.stderr)
        return 2
    if args.duration is not None and not (args.mic and args.duration > 0):
        print("error: --duration is the microphone's (--mic) recording time, a positive number of seconds",
              file=sys.stderr)
        return 2
    if args.mic and args.input != "-":
        print(f"error: --mic records from a microphone: give no FILE ({args.input})", file=sys.stderr)
        return 2
    if args.input != "-" and not os.path.lexists(args.input):
        print(f"error: {args.input}: file not found", file=sys.stderr)
        return 2
    import time

    from .stream import file_chunks, microphone_chunks, pcm16_chunks
    from .transcribe import Transcriber

    stream = Transcriber(_bundle(args)).stream(**_streaming_options(args))
    if args.mic:
        device = int(args.device) if args.device is not None and args.device.isdigit() else args.device
        rate, chunks = args.rate, microphone_chunks(args.rate, device=device, duration=args.duration)
    elif args.input == "-":
        rate, chunks = args.rate, pcm16_chunks(sys.stdin.buffer, args.rate)
    else:
        rate, chunks = file_chunks(args.input)
    live = args.format == "text" and sys.stdout.isatty()  # rewrite the partial line in place
    shown = ""

    def show(partial: str | None, finals) -> None:
        nonlocal shown
        for seg in finals:
            if args.format == "jsonl":
                print(json.dumps(seg.to_json()), flush=True)
            else:
                print(("\r\033[K" if live else "") + seg.text, flush=True)
            shown = ""
        if partial is not None and partial != shown:
            shown = partial
            if args.format == "jsonl":
                print(json.dumps({"partial": partial}), flush=True)
            elif live:
                width = os.get_terminal_size().columns - 1  # the line's end: the latest words
                print("\r\033[K" + (partial[-width:] if width > 0 else partial), end="", flush=True)  # 0 columns: unknown

    start, heard = time.monotonic(), 0
    try:
        for chunk in chunks:
            if args.realtime:  # a file at its own pace: for demos and latency measurements
                heard += len(chunk)
                time.sleep(max(0.0, heard / rate - (time.monotonic() - start)))
            partial = stream.accept(chunk, rate)
            finals = []
            while (seg := stream.result()) is not None:
                finals.append(seg)
            show(partial, finals)
    except KeyboardInterrupt:
        if not args.mic:  # a microphone is stopped by Ctrl-C: the normal end, not an interruption
            raise
    finally:  # also when the input ends badly (an odd byte): what was heard is recognised and said
        show(None, stream.finish())
        if live and shown:
            print(flush=True)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import API_KEY_ENV, ServerConfig, check_installed, serve
    from .transcribe import Transcriber

    check_installed()  # before the model loads
    config = ServerConfig(host=args.host, port=args.port, workers=_workers(args), max_upload_mb=args.max_upload_mb,
                          queue_wait=args.queue_wait, max_queue=args.max_queue, max_streams=args.max_streams,
                          idle_timeout=args.idle_timeout,
                          api_key=args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV))
    streaming = _streaming_options(args)
    serve(Transcriber(_bundle(args)), config, streaming, log=lambda m: print(m, file=sys.stderr, flush=True))
    return 0


def _looks_like_input(arg: str) -> bool:
    """Whether a positional argument of `asr find` names audio (a path, @list or manifest) rather than a phrase."""
    from .io import AUDIO_EXTENSIONS

    return (arg.startswith("@") or os.path.lexists(arg) or "/" in arg or arg.endswith(".jsonl")
            or Path(arg).suffix.lower() in AUDIO_EXTENSIONS)


def cmd_find(args: argparse.Namespace) -> int:
    from .io import expand_inputs

    first = next((i for i, a in enumerate(args.items) if _looks_like_input(a)), len(args.items))
    phrases = list(args.items[:first]) + list(_lines(args.phrase_file, "phrase") or ())
    inputs = args.items[first:]
    if not phrases:
        print("error: give the phrases to find before the files (asr find \"new york\" talks/ --out hits/), "
              "or --phrase-file FILE", file=sys.stderr)
        return 2
    if not inputs:
        print("error: no audio to search: give files, folders, @lists or manifests after the phrases", file=sys.stderr)
        return 2
    paths = expand_inputs(inputs)
    missing = [p for p in paths if not os.path.lexists(p)]
    if len(missing) == len(paths):
        for p in missing or inputs:
            print(f"error: {p}: file not found" if missing else f"error: {p}: no audio files found", file=sys.stderr)
        return 2
    from .find import find

    done, failed, hits = find(_bundle(args), phrases, paths, args.out, args.threshold, _workers(args),
                              not args.quiet, log=lambda m: print(m, file=sys.stderr))
    print(f"{args.out}: {hits} hit(s) of {len(phrases)} phrase(s) in {len(paths)} file(s) ({done} searched now"
          + (f", {failed} failed" if failed else "") + "): hits.jsonl, hits.csv", file=sys.stderr)
    return 1 if failed else 0


def cmd_g2p_train(args: argparse.Namespace) -> int:
    from .train_g2p import G2PTraining, train_g2p

    if args.epochs < 1:
        print(f"error: --epochs must be 1 or more, not {args.epochs}", file=sys.stderr)
        return 2
    lexicon = args.lexicon or str(resources.files("asr") / "assets" / "lexicon.txt.gz")
    train_g2p(lexicon, args.out, G2PTraining(epochs=args.epochs), log=lambda m: print(m, flush=True))
    return 0


def cmd_g2p(args: argparse.Namespace) -> int:
    from .bundle import resolve
    from .g2p import G2P
    from .errors import ConfigError

    if args.model:
        g2p = G2P.load(args.model)
    else:
        b = resolve(args.bundle)
        if b.g2p is None:
            raise ConfigError(f"{b.path}: this bundle has no G2P model (asr g2p train, then asr bundle --g2p)")
        g2p = G2P.load(b.g2p)
    for word, pron in zip(args.words, g2p.pronounce(args.words)):
        print(f"{word.lower()}\t{' '.join(pron)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import comparison_text, load_results, write_report

    names = args.name or [Path(p).parent.name if Path(p).name == "results.jsonl" else Path(p).stem for p in args.results]
    if len(names) != len(args.results):
        print("error: give one --name per results file", file=sys.stderr)
        return 2
    if len(set(names)) != len(names):
        names = [f"{n}-{i + 1}" for i, n in enumerate(names)]
    systems = {n: load_results(p) for n, p in zip(names, args.results)}
    first = {r["id"] for r in systems[names[0]]}
    for name, path in zip(names[1:], args.results[1:]):
        if not first & {r["id"] for r in systems[name]}:
            print(f"error: {args.results[0]} and {path} have no utterance id in common: nothing to compare "
                  f"(results of the same manifest compare)", file=sys.stderr)
            return 2
    from .io import sha256
    from .transcribe import claim_output_folder

    claim_output_folder(args.out, {"results": [{"path": str(Path(p).resolve()), "sha256": sha256(p)} for p in args.results],
                                   "names": names}, results="summary.json")
    summary = write_report(args.out, systems)
    systems = summary.get("systems", {names[0]: summary})
    for name, s in systems.items():
        print(f"{name}: WER {s['wer']:.2%} CER {s['cer']:.2%} on {s['utterances']} utterances")
    for name, c in summary.get("comparisons", {}).items():
        print(comparison_text(name, c))
    print(f"report: {args.out}/report.html")
    return 0


def cmd_lm_build(args: argparse.Namespace) -> int:
    from .lm import build_lm, read_word_list
    from .text import load_lexicon

    vocabulary = None
    if args.lexicon:
        vocabulary = set(load_lexicon(None if args.lexicon == "default" else args.lexicon).prons)
    english = read_word_list(args.english_words) if args.english_words else None
    exclude = read_word_list(args.exclude_words) if args.exclude_words else frozenset()
    stats = build_lm(args.texts, args.out, args.order, args.max_sentences, args.top_words,
                     tuple(args.min_counts), vocabulary, english=english, min_english=args.min_english,
                     exclude=exclude)
    print(f"{args.out}: {stats['sentences']} sentences ({stats['foreign_sentences']} more left out as foreign), "
          f"{stats['words']} words, vocabulary {stats['vocabulary']}, "
          f"n-grams {stats['ngrams']}, {stats['bytes'] / 1e6:.1f} MB in {stats['seconds']} s "
          f"(word list: {args.out}.words.txt)")
    return 0


def cmd_lm_rnn(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .train import parse_overrides
    from .train_rnnlm import RNNLMTrainConfig, train_rnnlm

    known = {f.name for f in dataclasses.fields(RNNLMTrainConfig)}
    overrides = parse_overrides(args.set or [])
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown RNN LM option(s) {unknown}; options: {', '.join(sorted(known))}")
    if "cutoffs" in overrides:
        overrides["cutoffs"] = tuple(overrides["cutoffs"])
    train_rnnlm(args.texts, args.out, RNNLMTrainConfig(**overrides), args.english_words)
    return 0


def cmd_lm_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from .rnnlm import RNNLM

    lm = RNNLM(args.rnnlm)
    for line in lm.sample(args.n, np.random.default_rng(args.seed), temperature=args.temperature):
        print(line)
    return 0


def cmd_lm_perplexity(args: argparse.Namespace) -> int:
    from .lm import iter_sentences
    from .rnnlm import RNNLM

    sentences = [s.split() for s in iter_sentences(args.texts)]
    if args.lm.endswith(".npz"):
        ppl, count, unknown = RNNLM(args.lm).perplexity(sentences)
    else:
        from .lm import ngram_perplexity

        ppl, count, unknown = ngram_perplexity(args.lm, sentences)
    words = sum(len(s) for s in sentences)
    print(f"{args.lm}: perplexity {ppl:.2f} over {count} words and sentence ends of {len(sentences)} sentences; "
          f"{unknown} of the {words} words ({unknown / max(words, 1):.2%}) out of its vocabulary, left out")
    return 0


def cmd_lm_binary(args: argparse.Namespace) -> int:
    from .lm import binarize

    stats = binarize(args.arpa, args.out, args.quantize or None)
    print(f"{args.out}: {stats['bytes'] / 1e6:.1f} MB ({args.arpa}: {stats['arpa_bytes'] / 1e6:.1f} MB), "
          f"{'exact' if not stats['quantize'] else str(stats['quantize']) + '-bit'} scores, in {stats['seconds']} s")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Shipped model on shipped sample audio: print each transcript beside its reference, then the scores."""
    from .evaluate import evaluate

    import tempfile

    bundle = _bundle(args)
    with tempfile.TemporaryDirectory(prefix="asr-demo-") as tmp:  # nothing is written unless --out asks
        out = Path(args.out or tmp)
        summary = evaluate(_sample_manifest(), out, bundle, posteriors=3 if args.out else 0)
        for line in (out / "results.jsonl").read_text().splitlines():
            r = json.loads(line)
            print(f"{r['id']}\n  ref: {r['ref']}\n  hyp: {r['hyp']}")
    print(f"[{bundle.describe()}] WER {summary['wer']:.1%}, "
          f"character head CER {summary['cer_char']:.1%}, phone head PER {summary['per']:.1%} on {summary['utterances']} sample utterances"
          + (f"; report in {args.out}/" if args.out else "; --out DIR keeps the report"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="asr", description="Small speech recognizer: MFCC + vanilla RNN + CTC.")
    ap.add_argument("--debug", action="store_true", help="show the traceback of every error, the user's too")
    from . import __version__

    ap.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="write a JSONL manifest for a corpus")
    p.add_argument("kind", choices=["librispeech", "folder"], help="corpus layout")
    p.add_argument("corpus", help="LibriSpeech root (holding SUBSET/) or a folder of audio")
    p.add_argument("--subset", help="LibriSpeech subset, e.g. train-clean-100 (librispeech only)")
    p.add_argument("--transcripts", help="TSV of path<TAB>text[<TAB>speaker] (folder only)")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("download", help="fetch LibriSpeech subsets from OpenSLR (resumable, checked)")
    p.add_argument("corpus", choices=["librispeech"], help="corpus")
    p.add_argument("subsets", nargs="+", metavar="SUBSET", help="e.g. train-clean-100 dev-clean (train-clean-5, "
                                                               "dev-clean-2: Mini LibriSpeech)")
    p.add_argument("--out", required=True, help="folder for LibriSpeech/SUBSET/ (the archives are fetched there too)")
    p.add_argument("--base-url", help="a mirror's folder of the archives (default: OpenSLR's)")
    p.add_argument("--keep-archive", action="store_true", help="keep SUBSET.tar.gz after unpacking")
    p.add_argument("--checksums", metavar="FILE", help="SHA-256 digests to check instead of the published ones "
                                                      "(sha256sum's format: HEX  SUBSET.tar.gz)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("train", help="train a model from a TOML config")
    p.add_argument("config", help="TOML config, e.g. recipes/librispeech/conf/train-clean-5.toml")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config entry (JSON value, else a string): epochs=10, out_dir=exp/x, model.hidden=512")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train, needs_torch=True)

    p = sub.add_parser("features", help="compute a training config's features once into shards on disk "
                                        "(its feature_shards folder), for sets beyond RAM")
    p.add_argument("config", help="TOML training config with feature_shards set")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config entry, as for train")
    p.add_argument("--workers", type=int, help=WORKERS + " computing features (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_features, needs_torch=True)

    p = sub.add_parser("transcribe", help="transcribe audio files, folders, @lists or manifests")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio file, folder (searched recursively), @list.txt (a path a line) or manifest.jsonl")
    _add_model_options(p)
    _add_decoding_options(p)
    p.add_argument("--shard", metavar="K/N", help="transcribe only the Kth of N equal shares of the inputs (K = 1..N), "
                   "e.g. one task of a Slurm array; the N shards' results.jsonl concatenated are one run's")
    p.add_argument("--out", help="folder for results.jsonl (one record per file; reruns skip what is done) "
                                 "and per-file outputs in --format")
    p.add_argument("--format", default="txt",
                   help="txt|json|jsonl|srt|vtt|ctm; with --out a comma-separated list (default: txt). On stdout, "
                        "several files go as txt (PATH<TAB>text lines), json (one JSON array of their "
                        "objects), jsonl (one object a line) or ctm")
    p.add_argument("--min-confidence", type=float, default=0.0, metavar="X",
                   help="leave words whose confidence is below X out of txt, srt, vtt and ctm outputs "
                        "(json, jsonl and results.jsonl keep every word with its confidence)")
    p.add_argument("--workers", type=int, help=WORKERS + " transcribing batches (default: one per core; "
                                                         "0: all in this process)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("evaluate", help="score a model on a manifest")
    p.add_argument("--manifest", help="JSONL manifest (default: the shipped sample clips)")
    _add_model_options(p)
    _add_decoding_options(p)
    p.add_argument("--out", required=True, help="folder for summary.json, results.jsonl and the report")
    p.add_argument("--workers", type=int, help=WORKERS + " reading audio into features (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="fit the word-confidence calibrator of a decoding on a dev manifest")
    p.add_argument("--manifest", required=True, help="dev JSONL manifest (never a test set)")
    _add_model_options(p)
    _add_decoding_options(p)
    p.add_argument("--decoding", metavar="JSON", help="head and decoding to calibrate, as `asr tune` writes them "
                                                      "(best.json); default: the shipped decoding with the options above")
    p.add_argument("--augment", metavar="TOML", help="a training config whose [augment] corrupts copies of the dev "
                                                      "set to fit on as well (e.g. conf/finetune-augment.toml): "
                                                      "confidences that hold under noise, rooms, phone lines")
    p.add_argument("--out", required=True, help="folder for calibration.json and calibration-summary.json "
                                                 "(with --bundle, the bundle decodes with the new calibrator too)")
    p.add_argument("--workers", type=int, help=WORKERS + " reading audio into features (default: one per core)")
    p.set_defaults(func=cmd_calibrate, needs_torch=True)

    p = sub.add_parser("tune", help="grid-search beam decoding weights on a dev manifest (never a test set)")
    p.add_argument("--manifest", required=True, help="dev JSONL manifest")
    _add_model_options(p)
    p.add_argument("--lm", help="ARPA/KenLM word LM, or 'none' (default: the bundle's)")
    p.add_argument("--lexicon", help="pronunciation lexicon (default: the bundle's)")
    p.add_argument("--heads", nargs="+", choices=["char", "phone"], default=["char", "phone"],
                   help="heads to search (default: both)")
    p.add_argument("--lm-weights", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0],
                   help="LM weights to try (default: 0.5 1 1.5 2; only the first without an LM)")
    p.add_argument("--word-scores", type=float, nargs="+", default=[-1.0, 0.0, 1.0],
                   help="scores added per word to try (default: -1 0 1)")
    p.add_argument("--joint-weights", type=float, nargs="+", default=[0.0, 0.3, 0.6, 1.0],
                   help="weights of the other head's rescoring to try (default: 0 0.3 0.6 1; 0 = off)")
    p.add_argument("--rescore", metavar="RNNLM", help="an RNN LM (rnnlm.npz) to rescore the n-best with, or 'none' "
                                                      "(default: the bundle's)")
    p.add_argument("--rescore-weights", type=float, nargs="+", help="weights of the RNN LM to try (default: the "
                                                                   "bundle's)")
    p.add_argument("--blank-penalties", type=float, nargs="+", help="blank penalties to try, a search each "
                                                                   "(default: the bundle's)")
    p.add_argument("--token-scores", type=float, nargs="+", help="length bonuses (a score per phone or letter) to "
                                                                "try (default: the bundle's)")
    p.add_argument("--beam-size", type=int, help="default: the bundle's (a bare checkpoint: 50)")
    p.add_argument("--beam-size-token", type=int, help="tokens tried per frame (default: the bundle's; else all)")
    p.add_argument("--beam-threshold", type=float, help="default: the bundle's (a bare checkpoint: 50)")
    p.add_argument("--blank-skip", type=float, metavar="P", help="see `asr transcribe --help` (default: the bundle's)")
    p.add_argument("--workers", type=int, help=WORKERS + " reading audio into features (default: one per core)")
    p.add_argument("--out", required=True, help="folder for grid.tsv and best.json (with --bundle, the bundle "
                                                 "decodes with the best setting too)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("bundle", help="make a bundle folder: a checkpoint with its lexicon, LM, tuned decoding and "
                                      "calibrator, for --bundle and asr.load()")
    p.add_argument("checkpoint", help="model checkpoint (e.g. exp/x/final.pt), or a bundle folder ('default': "
                                      "the shipped one) to copy with the options below changed (e.g. another LM)")
    p.add_argument("--decoding", metavar="JSON", help="head and decoding as `asr tune` writes them (best.json); "
                                                      "default: greedy char head; decoding options below change it")
    _add_decoding_options(p)
    g = p.add_argument_group("streaming (stream.json, for `asr stream` and Transcriber.stream; a bundle's own is kept)")
    g.add_argument("--stream-stats", metavar="MANIFEST", help="training manifest whose feature statistics start a "
                                                             "stream's running normalisation (500 utterances of it)")
    _add_streaming_options(g)
    p.add_argument("--g2p", metavar="NPZ", help="a G2P model (asr g2p train) for the words the lexicon lacks, or 'none'")
    _add_ensemble_options(p.add_argument_group("ensemble (more acoustic models, copied in as model-2.npz, ...)"))
    g = p.add_argument_group("narrow band (a model for audio recorded at 8 kHz or less, copied in as narrowband.npz)")
    _add_narrowband_option(g)
    g.add_argument("--narrowband-stats", metavar="MANIFEST", help="8 kHz training manifest whose feature statistics "
                                                                 "start its streams' running normalisation")
    g.add_argument("--narrowband-int8", action="store_true", help="store its weight matrices as int8, a scale a row "
                                                                  "(a quarter of the size; float32 when read)")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("stream", help="recognise live audio (a file, or raw PCM on stdin) as it comes: partial "
                                      "results, then a final line per utterance")
    p.add_argument("input", nargs="?", default="-", metavar="FILE | -",
                   help="audio file, or - (default) for raw 16-bit little-endian mono PCM on stdin, "
                        "e.g. `arecord -f S16_LE -r 16000 | asr stream -`")
    p.add_argument("--rate", type=int, default=16000, help="sample rate of the PCM on stdin or of the microphone "
                                                           "(default: 16000; a file says its own)")
    p.add_argument("--mic", action="store_true", help="record from a microphone until Ctrl-C (the optional "
                                                      "sounddevice package: pip install 'asr[mic]')")
    p.add_argument("--device", metavar="ID", help="with --mic: the input device, a number or a name as "
                                                  "`python -m sounddevice` lists them (default: the system's)")
    p.add_argument("--duration", type=float, metavar="S", help="with --mic: stop after S seconds (default: at Ctrl-C)")
    _add_model_options(p)
    _add_decoding_options(p)
    _add_streaming_options(p.add_argument_group("streaming (defaults: the bundle's stream.json)"))
    p.add_argument("--format", choices=["text", "jsonl"], default="text",
                   help="text: on a terminal the partial line is rewritten in place and each final line printed "
                        "(elsewhere only final lines); jsonl: {\"partial\": ...} and {\"text\", \"words\", "
                        "\"start\", \"end\"} objects, one a line")
    p.add_argument("--realtime", action="store_true", help="read a file at its real speed (demos, latency)")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("serve", help="serve the recognizer: OpenAI-compatible REST, Vosk-compatible WebSocket, a "
                                     "web page with live captions (pip install 'asr[serve]')")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                                                        "only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=2700, help="port (default: 2700, vosk-server's)")
    p.add_argument("--workers", type=int, help=f"recognizer {WORKERS} sharing the model (default: one per core)")
    p.add_argument("--api-key", help="require this key as 'Authorization: Bearer KEY' (the WebSocket also takes "
                                     "?api_key=KEY); default: $ASR_API_KEY, else none")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="larger uploads get 413 (default: 200)")
    p.add_argument("--queue-wait", type=float, default=30.0, metavar="S",
                   help="a request waits this long for a free recognizer, then gets 503 (default: 30)")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting at once; more get 503 (default: 64)")
    p.add_argument("--max-streams", type=int, default=32, help="live WebSocket streams at once (default: 32)")
    p.add_argument("--idle-timeout", type=float, default=60.0, metavar="S",
                   help="close a WebSocket stream that sends nothing for S seconds (default: 60)")
    _add_model_options(p)
    _add_decoding_options(p)
    _add_streaming_options(p.add_argument_group("streaming, for the WebSocket (defaults: the bundle's stream.json)"))
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("find", help="find phrases in recordings (keyword search): every occurrence with file, start, "
                                    "end and confidence")
    p.add_argument("items", nargs="+", metavar="PHRASE... INPUT...",
                   help="the phrases, then audio files, folders, @lists or manifests")
    p.add_argument("--phrase-file", metavar="FILE", help="more phrases to find, one a line")
    p.add_argument("--out", required=True, help="folder for hits.jsonl, hits.csv and the transcripts (results.jsonl; "
                                                "a rerun resumes)")
    p.add_argument("--threshold", type=float, default=0.5, metavar="P",
                   help="list hits whose confidence is at least P (default 0.5; 0: all)")
    p.add_argument("--workers", type=int, help=f"{WORKERS} (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_options(p)
    _add_decoding_options(p)
    p.set_defaults(func=cmd_find)

    p = sub.add_parser("g2p", help="pronunciations of words the lexicon lacks (grapheme-to-phoneme), or train the model")
    g2p_sub = p.add_subparsers(dest="g2p_command", required=True)
    p = g2p_sub.add_parser("say", help="print WORD<TAB>PHONES for each word, from the bundle's G2P model")
    p.add_argument("words", nargs="+", help="words, as transcripts write them (a-z and ')")
    p.add_argument("--bundle", metavar="DIR", help="bundle whose G2P model to use (default: the shipped one)")
    p.add_argument("--model", metavar="NPZ", help="a G2P model file instead (from `asr g2p train`)")
    p.set_defaults(func=cmd_g2p)
    p = g2p_sub.add_parser("train", help="train a G2P model on a lexicon (every 50th word held out: its PER is printed)")
    p.add_argument("--lexicon", help="WORD<TAB>PHONES lexicon (default: the shipped CMUdict one)")
    p.add_argument("--epochs", type=int, default=12, help="passes over the training words (default: 12)")
    p.add_argument("--out", required=True, help="model file to write (g2p.npz)")
    p.set_defaults(func=cmd_g2p_train, needs_torch=True)

    p = sub.add_parser("report", help="error report for results of any system (JSONL with id, ref, hyp)")
    p.add_argument("results", nargs="+", help="results JSONL files; the first is the baseline")
    p.add_argument("--name", action="append", help="system name, once per results file (default: folder name)")
    p.add_argument("--out", required=True, help="folder for summary.json, errs.txt, report.md and report.html")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("lm", help="language models")
    lm_sub = p.add_subparsers(dest="lm_command", required=True)
    p = lm_sub.add_parser("build", help="estimate an ARPA word n-gram LM (Kneser-Ney, arpabo) from text")
    p.add_argument("texts", nargs="+", help="text files (.gz allowed), one sentence a line, or JSONL manifests")
    p.add_argument("--order", type=int, default=3, help="n-gram order (default: 3)")
    p.add_argument("--out", required=True, help="ARPA file to write, gzip-compressed if it ends in .gz "
                   "(plus OUT.words.txt, the vocabulary)")
    p.add_argument("--max-sentences", type=int, help="use only the first N sentences")
    p.add_argument("--top-words", type=int, help="keep only the N most frequent words (n-grams with others go)")
    p.add_argument("--lexicon", help="keep only words with a pronunciation in this lexicon "
                   "(default: none; 'default' for the shipped one)")
    p.add_argument("--min-counts", type=int, nargs="+", default=[], metavar="N",
                   help="drop n-grams of order 1, 2, ... seen fewer than N times (e.g. 1 2 2)")
    p.add_argument("--english-words", metavar="FILE", help="word list or CMUdict file: with --min-english, "
                   "sentences with too few of their words in it are left out as foreign-language text")
    p.add_argument("--min-english", type=float, default=0.8, metavar="SHARE",
                   help="least share of a sentence's words found in --english-words (default 0.8)")
    p.add_argument("--exclude-words", metavar="FILE", help="word list (one a line, # comments): words kept out "
                   "of the vocabulary, e.g. foreign function words that the English word list also holds")
    p.set_defaults(func=cmd_lm_build)
    p = lm_sub.add_parser("binary", help="convert an ARPA LM to KenLM's binary trie (loads in 0.01 s, not seconds)")
    p.add_argument("arpa", help="ARPA file (.gz allowed), e.g. from `asr lm build`")
    p.add_argument("--out", required=True, help="binary file to write (plus OUT.words.txt, copied from the ARPA's)")
    p.add_argument("--quantize", type=int, default=8, metavar="BITS",
                   help="store log-probabilities and backoffs in BITS bits (default 8: half the size); 0: exact")
    p.set_defaults(func=cmd_lm_binary)

    p = lm_sub.add_parser("rnn", help="train a word-level vanilla RNN LM (torch) for rescoring: rnnlm.npz")
    p.add_argument("texts", nargs="+", help="text files (.gz allowed), one sentence a line, or JSONL manifests")
    p.add_argument("--out", required=True, help="rnnlm.npz to write")
    p.add_argument("--english-words", metavar="FILE", help="word list (e.g. the n-gram LM's words.txt): sentences "
                                                           "with under min_english of their words in it are left out")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a training option (asr.train_rnnlm.RNNLMTrainConfig), e.g. max_minutes=30 hidden=256")
    p.set_defaults(func=cmd_lm_rnn, needs_torch=True)

    p = lm_sub.add_parser("sample", help="sentences made up by an RNN LM")
    p.add_argument("rnnlm", help="rnnlm.npz (asr lm rnn)")
    p.add_argument("-n", type=int, default=5, help="how many sentences (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed, the same sentences")
    p.add_argument("--temperature", type=float, default=1.0, help="below 1: likelier words, above: more surprise")
    p.set_defaults(func=cmd_lm_sample)

    p = lm_sub.add_parser("perplexity", help="perplexity of an LM (ARPA, KenLM binary or rnnlm.npz) on text")
    p.add_argument("lm", help="the LM")
    p.add_argument("texts", nargs="+", help="text files or JSONL manifests (their text)")
    p.set_defaults(func=cmd_lm_perplexity)

    p = sub.add_parser("demo", help="transcribe and score the shipped sample clips with the shipped model")
    _add_model_options(p)
    _add_decoding_options(p)
    p.add_argument("--out", metavar="DIR", help="folder for the report (default: none kept)")
    p.set_defaults(func=cmd_demo)
    return ap


# Commands whose --out is a folder (checked before any work: a file there is refused in one line)
FOLDER_COMMANDS = ("transcribe", "evaluate", "tune", "calibrate", "report", "bundle", "demo", "find")


def _has_torch() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except ValueError:  # torch in sys.modules as None: imports of it fail
        return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import UserError
    from .io import check_output_folder

    if getattr(args, "needs_torch", False) and not _has_torch():
        print(f"error: asr {args.command} needs PyTorch, which the recognizer's install leaves out: "
              f"pip install 'asr[train]' (in a clone: pip install -e '.[train]')", file=sys.stderr)
        return 2
    try:
        if args.command in FOLDER_COMMANDS and getattr(args, "out", None):
            check_output_folder(args.out)  # before any work
        return args.func(args)
    except (UserError, FileNotFoundError) as e:
        # The user's to fix: one line naming the file or option. Anything else is a bug in asr and
        # shows its traceback (as do these with --debug), so that it can be reported.
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The ``asr`` command: :func:`main`, then exit without the interpreter's teardown.

    Everything asr writes is closed (and atomically renamed) before :func:`main` returns, and
    its worker processes have exited; what the teardown does besides is free the objects of
    torch, the model, the lexicon and the LM one by one, a large share of a short command's time
    in a profile (`benchmarks/startup.py` times the whole command). Tests and other Python code
    call :func:`main` and keep it.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # e.g. `asr transcribe ... | head`: the reader left
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
