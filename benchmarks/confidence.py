"""Word confidences of the shipped decoding: how well they tell right from wrong words, what
non-speech gets, how they fare in noise, and what they cost.

    python benchmarks/confidence.py --manifest data/librispeech/dev.jsonl [--snr-files 60] [--rtf-files 150]

1. **Dev, honest**: ``asr.calibrate.calibrate`` on the manifest: ROC AUC and ECE (10 bins) of the
   calibrated confidence under 2-fold cross-validation by speaker (each half scored by a
   calibrator fitted on the other half), against the raw confidence (lowest token posterior),
   and each evidence input alone.
2. **Dev, shipped**: AUC / ECE of the shipped calibrator over the whole manifest (it was fitted
   on dev, so this is in-sample; (1) is the figure to trust).
3. **Non-speech**: 30 s of white noise, pink noise, a 440 Hz tone and digital silence (none of
   them among the kinds the calibrator is fitted on): words out, and words with confidence >= 0.5.
4. **Speech in noise**: the first --snr-files utterances mixed with white noise at 20, 10 and
   0 dB SNR: WER, words out and mean confidence against the clean audio.
5. **Cost**: the shipped decoding with and without the evidence and calibration (the words are
   the same: checked), one thread, same files, side by side: real-time factors and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

import asr.decode
from asr.calibrate import calibrate, synthetic_audio
from asr.manifest import read_manifest
from asr.bundle import load_bundle
from asr.features import compute_features, load_audio
from asr.metrics import expected_calibration_error, roc_auc, wer, words_right
from asr.transcribe import Transcriber


def words_of(transcriber: Transcriber, wavs: list[np.ndarray]):
    """The shipped head's words for each waveform (features computed here, in this process)."""
    feats = [compute_features(w, transcriber.model.config.features) for w in wavs]
    hyps = asr.decode.recognize(transcriber.model, feats, transcriber.lexicon, beam=transcriber.beam)
    return [h.words(transcriber.head) for h in hyps]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True, help="dev manifest (the calibrator's own data)")
    ap.add_argument("--snr-files", type=int, default=60)
    ap.add_argument("--rtf-files", type=int, default=150)
    ap.add_argument("--skip-cv", action="store_true", help="leave out (1), the slowest part")
    ap.add_argument("--rtf-only", action="store_true", help="(5) alone")
    args = ap.parse_args()
    threadpool_limits(1)
    utts = read_manifest(args.manifest)
    bundle = load_bundle()
    head, shipped = bundle.head, bundle.decoding
    print(f"shipped decoding: head={head} {shipped}")

    if not args.skip_cv and not args.rtf_only:
        with tempfile.TemporaryDirectory() as tmp:
            s = calibrate(args.manifest, tmp, bundle, log=lambda line: print(f"  {line}"))
        print(f"(1) dev, 2-fold CV by speaker: {s['words']} words, {s['right']} right; "
              f"calibrated AUC {s['auc']:.4f} ECE {s['ece']:.4f}; raw (lowest token posterior) AUC {s['auc_raw']:.4f} "
              f"ECE {s['ece_raw']:.4f}")
        print("    each input alone, AUC: " + ", ".join(f"{k} {v:.3f}" for k, v in s["auc_by_feature"].items()))

    if not args.rtf_only:
        transcriber = Transcriber(bundle)
        results = {t.path: t for t in transcriber.transcribe_files([u.audio for u in utts], workers=2)}
        conf, right = [], []
        for u in utts:
            ws = results[u.audio].words
            conf += [w.confidence for w in ws]
            right += words_right(u.text, [w.word for w in ws])
        print(f"(2) dev, shipped calibrator (in-sample): {len(conf)} words, AUC {roc_auc(conf, right):.4f} "
              f"ECE {expected_calibration_error(conf, right):.4f}, mean confidence {sum(conf) / len(conf):.3f}, "
              f"share right {sum(right) / len(right):.3f}; WER {wer([u.text for u in utts], [results[u.audio].text for u in utts]):.4f}")

        kinds = ("white", "pink", "tone", "silence")
        for kind, words in zip(kinds, words_of(transcriber, [synthetic_audio(k, 30.0, seed=100 + i) for i, k in enumerate(kinds)])):
            sure = [w for w in words if w.confidence >= 0.5]
            top = max((w.confidence for w in words), default=0.0)
            print(f"(3) 30 s {kind:8s}: {len(words):3d} words, {len(sure)} with confidence >= 0.5 (highest {top:.3f})"
                  + (f": {' '.join(w.word for w in sure)}" if sure else ""))

        chosen = utts[: args.snr_files]
        clean = [load_audio(u.audio) for u in chosen]
        import torch  # the noise of the logged runs: torch's generator

        g = torch.Generator().manual_seed(0)
        refs = [u.text for u in chosen]
        for snr in (None, 20, 10, 0):
            wavs = clean
            if snr is not None:
                wavs = []
                for x in clean:
                    noise = torch.randn(x.shape[0], generator=g).numpy()
                    wavs.append(x + noise * np.sqrt((x ** 2).mean() / (noise ** 2).mean() / 10 ** (snr / 10)))
            words = words_of(transcriber, wavs)
            n = sum(len(ws) for ws in words)
            c = [w.confidence for ws in words for w in ws]
            r = [ok for ref, ws in zip(refs, words) for ok in words_right(ref, [w.word for w in ws])]
            print(f"(4) {'clean' if snr is None else f'{snr:2d} dB SNR':9s} ({len(chosen)} files): WER {wer(refs, [' '.join(w.word for w in ws) for ws in words]):.4f}, "
                  f"{n} words ({sum(len(r.split()) for r in refs)} in the references), mean confidence "
                  f"{sum(c) / max(len(c), 1):.3f}, share right {sum(r) / max(len(r), 1):.3f}, AUC {roc_auc(c, r):.3f}")

    paths = [u.audio for u in utts[: args.rtf_files]]
    audio = sum(u.duration for u in utts[: args.rtf_files])
    plain_evidence, plain_lm = asr.decode.word_evidence, asr.decode.BeamDecoder.lm_evidence
    timings, texts = {}, {}
    for rep in range(2):  # alternate, twice: the machine's drift hits both alike
        for name in ("with confidences", "without"):
            if name == "without":  # no evidence, no calibration: the words as the search gave them
                asr.decode.word_evidence = lambda words, *a, **k: words
                asr.decode.BeamDecoder.lm_evidence = lambda self, words: words
                tr = Transcriber(bundle.with_options(calibration="none"))
            else:
                asr.decode.word_evidence, asr.decode.BeamDecoder.lm_evidence = plain_evidence, plain_lm
                tr = Transcriber(bundle)
            start = time.perf_counter()
            out = {t.path: t.text for t in tr.transcribe_files(paths, workers=0)}
            timings.setdefault(name, []).append((time.perf_counter() - start) / audio)
            texts[name] = [out[p] for p in paths]
    asr.decode.word_evidence, asr.decode.BeamDecoder.lm_evidence = plain_evidence, plain_lm
    best = {k: min(v) for k, v in timings.items()}
    print(f"(5) {len(paths)} files, {audio / 60:.1f} min, 1 thread, best of 2: RTF with confidences "
          f"{best['with confidences']:.4f}, without {best['without']:.4f}: "
          f"{best['with confidences'] / best['without']:.3f}x; same words: {texts['with confidences'] == texts['without']}")


if __name__ == "__main__":
    main()
