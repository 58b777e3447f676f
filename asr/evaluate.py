"""Score a model on a manifest: WER/CER/PER, per-utterance results, and a report of where the errors are."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle
from .manifest import read_manifest
from .io import atomic_write_text
from .decode import DecodingConfig, Hypothesis, Word, member_outputs
from .search import lm_vocabulary
from .errors import UserError
from .features import compute_features, load_audio
from .metrics import cer, score_heads
from .report import posterior_png, write_report
from .text import CHAR_VOCAB, PHONE_VOCAB
from .transcribe import Transcriber


def evaluate(manifest: str | Path, out_dir: str | Path, bundle: Bundle | None = None, workers: int = 1,
             progress: bool = False, posteriors: int = 3) -> dict[str, Any]:
    """Transcribe every utterance of ``manifest`` with ``bundle`` (default: the shipped one) as
    ``asr transcribe`` does (same batching, windows, silence handling and search: see
    :class:`asr.transcribe.Transcriber`); write ``results.jsonl`` and the report under ``out_dir``.

    The report (see :mod:`asr.report`) is ``summary.json``, ``errs.txt``, ``report.md`` and
    ``report.html``, with pictures of the CTC posteriors of ``posteriors`` utterances.

    ``summary["wer"]`` and ``cer`` are the WER and CER of the bundle's head and decoding (``decoder``
    says which), ``wer_char``/``cer_char`` and ``wer_phone`` each head's, the other one greedy;
    ``per`` is the phone head's greedy PER. Utterances whose audio cannot be used
    are listed in ``summary["failed"]`` (and in ``results.jsonl`` with their ``error``) and left
    out of every score. ``out_dir`` is claimed first (:func:`asr.transcribe.claim_output_folder`):
    an evaluation with other options (bundle, decoding, manifest) into it is refused.
    """
    from .transcribe import claim_output_folder, recognition_options

    start = time.perf_counter()
    utts = read_manifest(manifest)
    tr = Transcriber(bundle)
    # before recognising anything: a folder of another evaluation is refused, never overwritten
    claim_output_folder(out_dir, recognition_options(tr.bundle) | {"manifest": str(Path(manifest).resolve())})
    head, decoding = tr.head, tr.decoding
    hyps: list = [None] * len(utts)
    errors_by_utt: list[str | None] = [None] * len(utts)
    for i, t, h in tr.recognize([u.audio for u in utts], workers=workers, progress=progress, both_heads=True,
                                references=[u.text for u in utts]):
        hyps[i], errors_by_utt[i] = h, t.error
    # An utterance whose audio cannot be used is recorded with its error and left out of the
    # scores (which say how many were left out); the others are scored as if it were not there.
    failed = [{"id": u.id, "audio": u.audio, "ref": u.text, "hyp": "", "error": e}
              for u, e in zip(utts, errors_by_utt) if e is not None]
    usable = [i for i, e in enumerate(errors_by_utt) if e is None]
    utts, hyps = [utts[i] for i in usable], [hyps[i] for i in usable]
    if not utts:
        raise UserError(f"{manifest}: no utterance has usable audio ({failed[0]['error']}, ...)" if failed
                        else f"{manifest}: no utterances")
    lex = tr.lexicon
    refs = [u.text for u in utts]
    errors = [e for h in hyps if h.reference_words is not None for e in boundary_errors(h.reference_words, h.words(head))]
    ref_words = [w for r in refs for w in r.split()]
    vocab = output_vocabulary(head, lex, decoding)
    ref_phones = [lex.phones_for_words(r.split()) for r in refs]
    ref_phones = [None if p is None else [x for x in p if x != "|"] for p in ref_phones]
    scores = score_heads(refs, [h.text("char") for h in hyps], [h.text("phone") for h in hyps], ref_phones,
                         [h.phones for h in hyps])
    summary = {
        "manifest": str(manifest),
        "bundle": str(tr.bundle.path or tr.bundle.model),
        "head": head,
        **{k: v for k, v in dataclasses.asdict(decoding).items() if decoding.decoder == "beam" or k == "decoder"},
        "wer": scores["wer_char" if head == "char" else "wer_phone"],
        # which decoding each head's figures below come from: the bundle's for its head, greedy for the other
        "decoder_char": decoding.decoder if head == "char" else "greedy",
        "decoder_phone": decoding.decoder if head == "phone" else "greedy",
        **{("cer_char" if k == "cer" else k): v for k, v in scores.items()},  # the character head's, as wer_char
        "cer": cer(refs, [h.text(head) for h in hyps]),  # of the very words scored as "wer"
        # Word times of `head` against CTC forced alignment of the reference on the same output:
        # mean |start - start'| and |end - end'| over the words the hypothesis got right (of the
        # utterances recognised whole, not in windows).
        "boundary_error_s": round(sum(errors) / len(errors), 4) if errors else None,
        "boundary_words": len(errors) // 2,
        # Reference words this decoding cannot output (not in the lexicon, or not in the LM's
        # vocabulary): each is at least one error. None where any spelling can come out.
        "oov_rate": round(sum(w not in vocab for w in ref_words) / max(len(ref_words), 1), 4)
        if vocab is not None else None,
        "utterances": len(utts),
        "failed": failed,  # utterances left out: their audio could not be used
        "audio_seconds": round(sum(u.duration for u in utts), 2),
        "seconds": round(time.perf_counter() - start, 2),
    }
    out_dir = Path(out_dir)
    records = [{"id": u.id, "ref": u.text, "hyp": h.text(head), "hyp_char": h.text("char"), "hyp_phone": h.text("phone"),
                "speaker": u.speaker, "duration": u.duration, "confidences": [w.confidence for w in h.words(head)]}
               for u, h in zip(utts, hyps)]
    atomic_write_text(out_dir / "results.jsonl", "".join(json.dumps(r) + "\n" for r in records + failed))
    pictures = _posterior_pictures(tr, utts, hyps, posteriors)
    return write_report(out_dir, {f"asr-{head}": records}, extra=summary, pictures=pictures)


def output_vocabulary(head: str, lexicon, decoding: DecodingConfig):
    """What words ``decoding`` of ``head`` can output (anything with ``in``), or ``None`` for any spelling:
    the LM's words that the lexicon has (beam search with an LM), the lexicon (beam search without
    one; the greedy phone head's look-up), ``None`` for the greedy or lexicon-free character head."""
    if decoding.decoder == "beam" and not decoding.lexicon_free:
        words = lm_vocabulary(decoding.lm, lexicon)
        return lexicon if words is None else set(words)
    return lexicon if head == "phone" else None


def boundary_errors(ref: list[Word], hyp: list[Word]) -> list[float]:
    """``|start - start'|`` and ``|end - end'|`` in seconds for each word the hypothesis got
    right, words paired by the same Levenshtein alignment (jiwer) that counts WER errors."""
    import jiwer

    if not ref or not hyp:
        return []
    out = jiwer.process_words(" ".join(w.word for w in ref), " ".join(w.word for w in hyp))
    errors = []
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                r, h = ref[chunk.ref_start_idx + k], hyp[chunk.hyp_start_idx + k]
                errors += [abs(r.start - h.start), abs(r.end - h.end)]
    return errors


def _posterior_pictures(tr: Transcriber, utts, hyps: list[Hypothesis], count: int) -> dict[str, bytes]:
    """PNG pictures of the decoded head's CTC posteriors of the first ``count`` utterances of at
    most 15 s, labelled with the words that were scored (``hyps``)."""
    pictures = {}
    chosen = [i for i, u in enumerate(utts) if u.duration <= 15][:count]
    vocab = CHAR_VOCAB if tr.head == "char" else PHONE_VOCAB
    for i in chosen:
        f = compute_features(load_audio(utts[i].audio), tr.model.config.features)[None]
        out = tr.model.forward(f, np.array([f.shape[1]]))
        words = [(w.word, w.start, w.end) for w in hyps[i].words(tr.head)]
        pictures[f"posteriors-{utts[i].id}.png"] = posterior_png(
            out[tr.head][0], list(vocab.tokens), words, tr.model.config.frame_seconds,
            f"{utts[i].id} ({tr.head} head)\nref: {utts[i].text}")
    return pictures


def scored_nbests(beam, outputs, lexicon, frame_seconds: float, rnnlm=None,
                  joint: bool = True) -> dict[int, tuple[list, tuple, bool]]:
    """``beam``'s n-best of every item of ``outputs`` (:func:`asr.transcribe.item_outputs`' batches),
    each with what rescoring weighs computed once: ``{item: (n-best, its`` :func:`asr.search.nbest_scores`
    ``, whether an ensemble's other models rescore it)}``, for :func:`asr.search.best_rescored` to
    re-weigh at every setting of a grid (``asr tune``, ``benchmarks/rescoring_cv.py``). ``joint``:
    whether the other head's score is wanted (any joint weight)."""
    from .search import nbest_scores

    head = beam.head
    other = "phone" if head == "char" else "char"
    scored = {}
    for idx, out in outputs:
        for b, (k, nbest) in enumerate(zip(idx, beam.search(out[head], out["lengths"], frame_seconds))):
            n = out["lengths"][b]
            members = member_outputs(out, head, b, n)
            scored[k] = nbest, nbest_scores(nbest, out[other][b, :n], other, lexicon, rnnlm, members,
                                            joint=joint), bool(members)
    return scored


def tune_decoding(manifest: str | Path, out_dir: str | Path, bundle: Bundle, base: DecodingConfig | None = None,
                  heads: tuple[str, ...] = ("char", "phone"),
                  lm_weights: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0), word_scores: tuple[float, ...] = (-1.0, 0.0, 1.0),
                  joint_weights: tuple[float, ...] = (0.0, 0.3, 0.6, 1.0), workers: int = 1,
                  log=print, rescore_weights: tuple[float, ...] | None = None,
                  token_scores: tuple[float, ...] | None = None,
                  blank_penalties: tuple[float, ...] | None = None) -> dict[str, Any]:
    """Grid-search beam decoding of ``bundle``'s model on ``manifest`` (a dev set, never a test
    set): every head, LM weight, word score and joint weight, each setting
    ``dataclasses.replace(base, ...)`` (``base``, default the bundle's decoding, gives the LM,
    beam and pruning). The audio goes the way of ``asr transcribe`` (same windows, silence
    handling and merging of windows); the model runs once.

    For each head, LM weight, word score and blank penalty (``blank_penalties``, default the base's
    alone) the beam search runs once keeping ``base.nbest``
    hypotheses, and what rescoring weighs is computed once (:func:`asr.search.nbest_scores`); every
    joint weight (0 = that head alone), RNN LM weight (``rescore_weights``, with an RNN LM
    ``base.rescore``; default the base's weight alone) and length bonus (``token_scores``, default
    the base's alone) then only re-sorts them. Without an LM (``base.lm`` None) the LM weight
    means nothing and only the first is tried. Writes ``grid.tsv`` (for every setting its WER and
    the time of its search with the n-best's scoring) and ``best.json`` (``{"head": ...,
    "decoding": DecodingConfig fields, "wer": ...}``) under ``out_dir`` and returns the best.
    """
    from .decode import decode_batch
    from .search import BeamDecoder, best_rescored, rescoring_weights
    from .metrics import wer
    from .transcribe import claim_output_folder, item_outputs, merge_hypotheses, recognition_options

    base = dataclasses.replace(base or bundle.decoding, decoder="beam", calibration=None, confidence_floor=0.0)
    rescore_weights = tuple(rescore_weights or (base.rescore_weight,)) if base.rescore else (0.0,)
    token_scores = tuple(token_scores or (base.token_score,))
    blank_penalties = tuple(blank_penalties or (base.blank_penalty,))
    rnnlm = None
    if base.rescore:
        from .rnnlm import RNNLM

        rnnlm = RNNLM(base.rescore)
    if base.lm is None:
        lm_weights = lm_weights[:1]
    for lm_weight in lm_weights:  # every setting of the grid checked before any work (DecodingConfig)
        for word_score in word_scores:
            for joint_weight in joint_weights:
                for rescore_weight in rescore_weights:
                    for token_score, blank_penalty in itertools.product(token_scores, blank_penalties):
                        dataclasses.replace(base, lm_weight=lm_weight, word_score=word_score,
                                            joint_weight=joint_weight, rescore_weight=rescore_weight,
                                            token_score=token_score, blank_penalty=blank_penalty)
    utts = read_manifest(manifest)
    tr = Transcriber(dataclasses.replace(bundle, decoding=DecodingConfig()))
    claim_output_folder(out_dir, {**recognition_options(dataclasses.replace(bundle, decoding=base)),
                                  "manifest": str(Path(manifest).resolve()),
                                  "grid": {"heads": list(heads), "lm_weights": list(lm_weights),
                                           "word_scores": list(word_scores), "joint_weights": list(joint_weights),
                                           "rescore_weights": list(rescore_weights),
                                           "token_scores": list(token_scores),
                                           "blank_penalties": list(blank_penalties)}},
                        results="best.json")
    lex, fs = tr.lexicon, tr.model.config.frame_seconds
    items, outputs = item_outputs(tr, [u.audio for u in utts], workers)
    refs = [u.text for u in utts]
    audio = sum(u.duration for u in utts)
    rows, out_dir = [], Path(out_dir)

    def per_file(hyp_of_item) -> list[Hypothesis]:
        pieces: list[list] = [[] for _ in utts]
        for k, it in enumerate(items):
            pieces[it.file].append((it, hyp_of_item(k)))
        return [merge_hypotheses(p) for p in pieces]

    greedy_items: dict[int, Hypothesis] = {}
    for idx, out in outputs:
        for k, h in zip(idx, decode_batch(out, lex, fs)):
            greedy_items[k] = h
    greedy = per_file(greedy_items.get)
    for head in heads:
        row = {"head": head, "decoder": "greedy", "lm_weight": "", "word_score": "", "joint_weight": "",
               "rescore_weight": "", "token_score": "", "blank_penalty": "",
               "wer": round(wer(refs, [h.text(head) for h in greedy]), 4), "search_rtf": ""}
        rows.append(row)
        log("\t".join(f"{k}={v}" for k, v in row.items()))
    for head in heads:
        for lm_weight, word_score, blank_penalty in itertools.product(lm_weights, word_scores, blank_penalties):
            # The search keeps the n-best whatever the rescoring weights: they only re-sort them.
            beam = BeamDecoder(head, lex, dataclasses.replace(base, lm_weight=lm_weight, word_score=word_score,
                                                              blank_penalty=blank_penalty))
            start = time.perf_counter()
            scored = scored_nbests(beam, outputs, lex, fs, rnnlm, joint=any(joint_weights))
            search_rtf = (time.perf_counter() - start) / audio
            for joint_weight, rescore_weight, token_score in itertools.product(joint_weights, rescore_weights,
                                                                                token_scores):
                options = dataclasses.replace(base, joint_weight=joint_weight, rescore_weight=rescore_weight,
                                              token_score=token_score)
                weights = rescoring_weights(options)

                def beam_item(k: int) -> Hypothesis | None:
                    if k not in scored:  # digital silence
                        return None
                    nbest, scores, members = scored[k]
                    best = best_rescored(nbest, scores, weights, members)
                    return Hypothesis(best if head == "char" else [], best if head == "phone" else [], [])
                hyps = per_file(beam_item)
                row = {"head": head, "decoder": "beam", "lm_weight": lm_weight, "word_score": word_score,
                       "joint_weight": joint_weight, "rescore_weight": rescore_weight, "token_score": token_score,
                       "blank_penalty": blank_penalty, "wer": round(wer(refs, [h.text(head) for h in hyps]), 4),
                       "search_rtf": round(search_rtf, 4)}
                rows.append(row)
                log("\t".join(f"{k}={v}" for k, v in row.items()))
    header = list(rows[0])
    atomic_write_text(out_dir / "grid.tsv", "\t".join(header) + "\n" +
                      "".join("\t".join(str(r[k]) for k in header) + "\n" for r in rows))
    best = min((r for r in rows if r["decoder"] == "beam"), key=lambda r: r["wer"])
    config = dataclasses.replace(base, lm_weight=best["lm_weight"], word_score=best["word_score"],
                                 joint_weight=best["joint_weight"], rescore_weight=best["rescore_weight"],
                                 token_score=best["token_score"], blank_penalty=best["blank_penalty"])
    result = {"head": best["head"], "decoding": dataclasses.asdict(config), "wer": best["wer"],
              "manifest": str(manifest), "model": str(bundle.model)}
    atomic_write_text(out_dir / "best.json", json.dumps(result, indent=2) + "\n")
    return result
