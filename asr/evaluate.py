"""Score a model on a manifest: WER/CER/PER, per-utterance results."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .data import atomic_write_text, load_features, read_manifest
from .decode import recognize
from .metrics import score_heads
from .model import load_model
from .text import load_lexicon


def evaluate(manifest: str | Path, out_dir: str | Path, model_path: str | Path | None = None, head: str = "char",
             lexicon: str | None = None, workers: int = 1, progress: bool = False) -> dict[str, Any]:
    """Transcribe every utterance of ``manifest``; write ``summary.json`` and ``results.jsonl`` under ``out_dir``.

    ``summary["wer"]`` is the WER of ``head``; both heads' WERs are reported as ``wer_char``
    and ``wer_phone``, ``cer`` is the character head's, ``per`` the phone head's.
    """
    if head not in ("char", "phone"):
        raise ValueError(f"head must be 'char' or 'phone', not {head!r}")
    start = time.perf_counter()
    utts = read_manifest(manifest)
    model = load_model(model_path)
    lex = load_lexicon(lexicon)
    feats = load_features(utts, model.config.features, workers=workers, progress=progress)
    hyps = recognize(model, feats, lex)
    refs = [u.text for u in utts]
    ref_phones = [lex.phones_for_words(r.split()) for r in refs]
    ref_phones = [None if p is None else [x for x in p if x != "|"] for p in ref_phones]
    scores = score_heads(refs, [h.text("char") for h in hyps], [h.text("phone") for h in hyps], ref_phones,
                         [h.phones for h in hyps])
    summary = {
        "manifest": str(manifest),
        "model": str(model_path or "shipped"),
        "head": head,
        "decoder": "greedy",
        "wer": scores["wer_char" if head == "char" else "wer_phone"],
        **scores,
        "utterances": len(utts),
        "audio_seconds": round(sum(u.duration for u in utts), 2),
        "seconds": round(time.perf_counter() - start, 2),
    }
    out_dir = Path(out_dir)
    lines = [json.dumps({"id": u.id, "ref": u.text, "hyp": h.text(head), "hyp_char": h.text("char"),
                         "hyp_phone": h.text("phone"), "speaker": u.speaker, "duration": u.duration})
             for u, h in zip(utts, hyps)]
    atomic_write_text(out_dir / "results.jsonl", "\n".join(lines) + "\n")
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
