"""Word n-gram language models in ARPA format, built with arpabo (pure Python, MIT)."""

from __future__ import annotations

import gzip
import io
import itertools
import os
import time
from pathlib import Path
from typing import Any

from .text import normalize


def read_sentences(paths: list[str | Path], max_sentences: int | None = None) -> list[str]:
    """Normalised sentences (one per line) of plain or ``.gz`` text files, empty lines dropped."""
    sentences: list[str] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: text file not found")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in itertools.islice(f, None if max_sentences is None else max_sentences - len(sentences)):
                line = normalize(line)
                if line:
                    sentences.append(line)
        if max_sentences is not None and len(sentences) >= max_sentences:
            break
    return sentences


def build_lm(texts: list[str | Path], out: str | Path, order: int = 3, max_sentences: int | None = None,
             top_words: int | None = None, smoothing: str = "kneser_ney") -> dict[str, Any]:
    """Write an ARPA LM of ``order`` estimated on ``texts`` to ``out`` (atomically), and ``out``.words.txt.

    ``top_words`` keeps only the most frequent words (the rest become ``<unk>``), which
    bounds the size of the model. Returns counts and the time taken.
    """
    import arpabo

    start = time.perf_counter()
    sentences = read_sentences(texts, max_sentences)
    if not sentences:
        raise ValueError("no text to build a language model from")
    lm = arpabo.ArpaBoLM(max_order=order, smoothing_method=smoothing)
    lm.read_corpus(io.StringIO("\n".join(sentences) + "\n"))
    if top_words:
        lm = lm.prune_vocabulary(method="topk", threshold=top_words)
    lm.compute()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw, tmp = out.with_name(f".{out.name}.raw"), out.with_name(f".{out.name}.tmp")
    lm.write_file(str(raw))
    _to_kenlm_arpa(raw, tmp)
    raw.unlink()
    os.replace(tmp, out)
    words = sorted({w for s in sentences for w in s.split()})
    if top_words:
        words = sorted(_unigrams(out) - {"<s>", "</s>", "<unk>"})
    Path(f"{out}.words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    return {"sentences": len(sentences), "words": sum(len(s.split()) for s in sentences), "vocabulary": len(words),
            "seconds": round(time.perf_counter() - start, 1), "bytes": out.stat().st_size}


def _to_kenlm_arpa(src_path: Path, dst_path: Path) -> None:
    r"""arpabo's ARPA -> the strict form KenLM reads: nothing before "\data\", tabs between fields."""
    order = 0
    with open(src_path, encoding="utf-8") as src, open(dst_path, "w", encoding="utf-8") as dst:
        for line in src:
            if line.startswith("\\data\\"):
                dst.write(line)
                break
        for line in src:
            if line.startswith("\\") and line.strip().endswith("-grams:"):
                order = int(line[1:].split("-")[0])
            elif line.startswith("\\end"):
                order = 0
            elif order and line.strip():
                fields = line.split()
                line = "\t".join([fields[0], " ".join(fields[1:1 + order])] + fields[1 + order:]) + "\n"
            dst.write(line)


def _unigrams(arpa: Path) -> set[str]:
    words, inside = set(), False
    with open(arpa, encoding="utf-8") as f:
        for line in f:
            if line.startswith("\\1-grams:"):
                inside = True
            elif line.startswith("\\"):
                if inside:
                    break
            elif inside and line.strip():
                words.add(line.split("\t")[1])
    return words
