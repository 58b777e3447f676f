"""Score a model on a manifest: WER/CER/PER, per-utterance results, and a report of where the errors are."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from .data import atomic_write_text, load_features, read_manifest
from .decode import DecodingConfig, decode_outputs, make_beam_decoder, recognize
from .metrics import score_heads
from .model import load_model
from .report import posterior_png, write_report
from .text import CHAR_VOCAB, PHONE_VOCAB, load_lexicon


def evaluate(manifest: str | Path, out_dir: str | Path, model_path: str | Path | None = None, head: str = "char",
             lexicon: str | None = None, workers: int = 1, progress: bool = False, posteriors: int = 3,
             decoding: DecodingConfig = DecodingConfig()) -> dict[str, Any]:
    """Transcribe every utterance of ``manifest``; write ``results.jsonl`` and the report under ``out_dir``.

    The report (see :mod:`asr.report`) is ``summary.json``, ``errs.txt``, ``report.md`` and
    ``report.html``, with pictures of the CTC posteriors of ``posteriors`` utterances.

    ``summary["wer"]`` is the WER of ``head``; both heads' WERs are reported as ``wer_char``
    and ``wer_phone``, ``cer`` is the character head's, ``per`` the phone head's (greedy).
    ``decoding`` chooses greedy or beam search for ``head``; the other head stays greedy.
    """
    if head not in ("char", "phone"):
        raise ValueError(f"head must be 'char' or 'phone', not {head!r}")
    start = time.perf_counter()
    utts = read_manifest(manifest)
    model = load_model(model_path)
    lex = load_lexicon(lexicon)
    feats = load_features(utts, model.config.features, workers=workers, progress=progress)
    hyps = recognize(model, feats, lex, beam=make_beam_decoder(head, lex, decoding))
    refs = [u.text for u in utts]
    ref_phones = [lex.phones_for_words(r.split()) for r in refs]
    ref_phones = [None if p is None else [x for x in p if x != "|"] for p in ref_phones]
    scores = score_heads(refs, [h.text("char") for h in hyps], [h.text("phone") for h in hyps], ref_phones,
                         [h.phones for h in hyps])
    summary = {
        "manifest": str(manifest),
        "model": str(model_path or "shipped"),
        "head": head,
        **{k: v for k, v in dataclasses.asdict(decoding).items() if decoding.decoder == "beam" or k == "decoder"},
        "wer": scores["wer_char" if head == "char" else "wer_phone"],
        **scores,
        "utterances": len(utts),
        "audio_seconds": round(sum(u.duration for u in utts), 2),
        "seconds": round(time.perf_counter() - start, 2),
    }
    out_dir = Path(out_dir)
    records = [{"id": u.id, "ref": u.text, "hyp": h.text(head), "hyp_char": h.text("char"), "hyp_phone": h.text("phone"),
                "speaker": u.speaker, "duration": u.duration} for u, h in zip(utts, hyps)]
    atomic_write_text(out_dir / "results.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    pictures = _posterior_pictures(model, utts, feats, lex, head, posteriors)
    return write_report(out_dir, {f"asr-{head}": records}, extra=summary, pictures=pictures)


def _posterior_pictures(model, utts, feats, lexicon, head: str, count: int) -> dict[str, bytes]:
    """PNG pictures of the CTC posteriors of the first ``count`` utterances of at most 15 s."""
    pictures = {}
    chosen = [i for i, u in enumerate(utts) if u.duration <= 15][:count]
    vocab = CHAR_VOCAB if head == "char" else PHONE_VOCAB
    with torch.no_grad():
        for i in chosen:
            f = feats[i].float()[None]
            out = model(f, torch.tensor([f.shape[1]]))
            hyp = decode_outputs(out, lexicon, model.config.frame_seconds, head == "phone")[0]
            words = [(w.word, w.start, w.end) for w in hyp.words(head)]
            pictures[f"posteriors-{utts[i].id}.png"] = posterior_png(
                out[head][0], list(vocab.tokens), words, model.config.frame_seconds,
                f"{utts[i].id} ({head} head)\nref: {utts[i].text}")
    return pictures
