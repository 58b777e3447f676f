"""Word n-gram language models in ARPA format, built with arpabo (pure Python, MIT)."""

from __future__ import annotations

import gzip
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UserError
from .io import atomic_write_text
from .text import normalize


def iter_sentences(paths: Iterable[str | Path], max_sentences: int | None = None) -> Iterator[str]:
    """Normalised sentences of text files (one per line, plain or ``.gz``) and of JSONL
    manifests (their ``text`` fields: training transcripts), empty ones dropped."""
    count = 0
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: text file not found")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if max_sentences is not None and count >= max_sentences:
                    return
                if path.name.endswith((".jsonl", ".jsonl.gz")) and line.strip():
                    try:
                        line = json.loads(line)["text"]
                    except (ValueError, KeyError, TypeError):
                        raise LMError(f"{path}:{lineno}: not a manifest line with a 'text' field") from None
                line = normalize(line)
                if line:
                    count += 1
                    yield line


def read_word_list(path: str | Path) -> set[str]:
    """Lower-cased words of a word list or a CMUdict-format dictionary: the first field of each
    line, alternate-pronunciation markers (``word(2)``) and comments (``;;;``, ``#``) removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: word list not found")
    words = set()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith(";;;"):
                words.add(line.split()[0].split("(", 1)[0].lower())
    return words


def english_share(sentence: str, english: set[str]) -> float:
    """Fraction of the words of ``sentence`` found in ``english``: low for foreign-language text."""
    words = sentence.split()
    return sum(w in english for w in words) / len(words) if words else 0.0


def build_lm(texts: list[str | Path], out: str | Path, order: int = 3, max_sentences: int | None = None,
             top_words: int | None = None, min_counts: tuple[int, ...] = (), vocabulary: set[str] | None = None,
             smoothing: str = "kneser_ney", english: set[str] | None = None, min_english: float = 0.0,
             exclude: set[str] = frozenset()) -> dict[str, Any]:
    """Write an ARPA LM of ``order`` estimated on ``texts`` to ``out`` (atomically), and ``out``.words.txt.

    The size is bounded two ways before estimation, as KenLM's ``lmplz --prune`` and SRILM's
    ``-gtNmin`` do: the vocabulary is cut to the ``top_words`` most frequent words (only words
    in ``vocabulary``, e.g. those with a pronunciation, when given) and n-grams that use any
    other word are dropped; an n-gram of order k+1 seen fewer than ``min_counts[k]`` times is
    dropped (``min_counts=(1, 2, 3)``: every word, bigrams seen twice, trigrams three times).
    ``out`` ending in ``.gz`` is written gzip-compressed (KenLM reads it as it is).
    With ``english`` (e.g. CMUdict's words), sentences with less than ``min_english`` of their
    words in it are left out as foreign, and a word that is neither in ``english`` nor in the
    JSONL manifests' transcripts stays in the vocabulary only if it is seen at least as often
    in the sentences kept as in those left out: book text holds foreign-language passages whose
    words would otherwise enter the vocabulary and come out in English transcripts, while
    English words CMUdict lacks ("deprecation", "holborn") are seen in English sentences.
    Words in ``exclude`` never enter the vocabulary: foreign function words that CMUdict lists
    (as names), such as "aber", "nicht" and "qui", pass both tests above through the foreign
    phrases that English sentences quote, and came out of the search in English transcripts.
    Returns counts, the time taken and the file size.
    """
    import arpabo

    start = time.perf_counter()
    lm = arpabo.ArpaBoLM(max_order=order, smoothing_method=smoothing)
    sentences = words = foreign = 0
    foreign_counts: Counter[str] = Counter()
    transcript_words: set[str] = set()  # words of the training transcripts: English whatever CMUdict says
    for path in texts:
        manifest = Path(path).name.endswith((".jsonl", ".jsonl.gz"))
        left = None if max_sentences is None else max_sentences - sentences - foreign
        for sentence in iter_sentences([path], left):
            if manifest:
                transcript_words.update(sentence.split())
            elif english is not None and english_share(sentence, english) < min_english:
                foreign += 1
                foreign_counts.update(sentence.split())
                continue
            lm.read_corpus_line(sentence)
            sentences += 1
            words += sentence.count(" ") + 1
    if english is not None:
        allowed = {w for w, c in lm.grams[0].items()
                   if w in english or w in transcript_words or c >= foreign_counts[w]}
        vocabulary = allowed if vocabulary is None else vocabulary & allowed
    if not sentences:
        raise LMError("no text to build a language model from")
    lm.sent_count = sentences
    markers = {"<s>", "</s>"}
    unigrams = Counter({w: c for w, c in lm.grams[0].items()
                        if w not in markers and w not in exclude and (vocabulary is None or w in vocabulary)})
    keep = {w for w, _ in unigrams.most_common(top_words)} | markers
    cutoffs = tuple(min_counts) + (1,) * order
    lm.grams[0] = {w: c for w, c in lm.grams[0].items() if w in keep and c >= cutoffs[0]}
    for k in range(1, order):
        lm.grams[k] = _prune(lm.grams[k], k, keep, cutoffs[k])
    lm.compute()

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw, tmp = out.with_name(f".{out.name}.raw"), out.with_name(f".{out.name}.tmp")
    lm.write_file(str(raw))
    _to_kenlm_arpa(raw, tmp, compress=out.suffix == ".gz")
    raw.unlink()
    os.replace(tmp, out)
    vocab = sorted(set(lm.grams[0]) - {"<s>", "</s>"})
    atomic_write_text(f"{out}.words.txt", "\n".join(vocab) + "\n")
    return {"sentences": sentences, "words": words, "foreign_sentences": foreign, "vocabulary": len(vocab),
            "ngrams": [len(lm.grams[0])] + [_count(lm.grams[k], k) for k in range(1, order)],
            "seconds": round(time.perf_counter() - start, 1), "bytes": out.stat().st_size}


def _prune(grams: dict, depth: int, keep: set[str], min_count: int) -> dict:
    """arpabo's nested counts ``{w1: {w2: ... {wn: count}}}`` without n-grams using a word outside
    ``keep`` or seen fewer than ``min_count`` times; empty branches go too."""
    if depth == 0:
        return {w: c for w, c in grams.items() if w in keep and c >= min_count}
    pruned = {}
    for w in list(grams):
        branch = grams.pop(w)  # free the unpruned counts as we go: the full ones take gigabytes
        if w in keep:
            branch = _prune(branch, depth - 1, keep, min_count)
            if branch:
                pruned[w] = branch
    return pruned


def _count(grams: dict, depth: int) -> int:
    return len(grams) if depth == 0 else sum(_count(g, depth - 1) for g in grams.values())


def _to_kenlm_arpa(src_path: Path, dst_path: Path, compress: bool = False) -> None:
    r"""arpabo's ARPA -> the strict form KenLM reads: nothing before "\data\", tabs between fields."""
    order = 0
    opener = (lambda p: gzip.open(p, "wt", encoding="utf-8", compresslevel=9)) if compress else \
        (lambda p: open(p, "w", encoding="utf-8"))
    with open(src_path, encoding="utf-8") as src, opener(dst_path) as dst:
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


class LMError(UserError):
    pass


def check_arpa(path: str | Path) -> None:
    """Raise :class:`LMError` naming ``path`` and the line if it is not a well-formed ARPA file
    (plain or ``.gz``): the ``\\data\\`` header and its counts, then each ``\\N-grams:``
    section with that many lines of ``logprob w1 .. wN [backoff]``, then ``\\end\\``."""
    path = Path(path)
    if not path.is_file():
        raise LMError(f"{path}: language model not found")
    opener = gzip.open if path.suffix == ".gz" else open
    counts: dict[int, int] = {}
    seen: dict[int, int] = {}
    order, state, lineno = 0, "start", 0
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, raw in enumerate(f, 1):
                line = raw.strip()
                if state == "start":
                    if line:
                        if line != "\\data\\":
                            raise LMError(f"{path}:{lineno}: expected '\\data\\' first, got {line[:60]!r}")
                        state = "header"
                elif state == "header" and line.startswith("ngram "):
                    n, _, c = line[6:].partition("=")
                    if not (n.strip().isdigit() and c.strip().isdigit()):
                        raise LMError(f"{path}:{lineno}: expected 'ngram N=COUNT', got {line[:60]!r}")
                    counts[int(n)] = int(c)
                elif line.startswith("\\") and line.endswith("-grams:"):
                    order = int(line[1:].split("-")[0]) if line[1:].split("-")[0].isdigit() else -1
                    if order not in counts:
                        raise LMError(f"{path}:{lineno}: section {line} not announced in the \\data\\ header")
                    state, seen[order] = "grams", 0
                elif line == "\\end\\":
                    state = "end"
                    break
                elif state == "grams" and line:
                    fields = line.split()
                    try:
                        [float(x) for x in [fields[0]] + fields[1 + order:]]
                    except ValueError:
                        raise LMError(f"{path}:{lineno}: not a number in {line[:60]!r}") from None
                    if not order + 1 <= len(fields) <= order + 2:
                        raise LMError(f"{path}:{lineno}: expected 'logprob' then {order} word(s) "
                                      f"[then backoff], got {line[:60]!r}")
                    seen[order] += 1
                elif line and state != "header":
                    raise LMError(f"{path}:{lineno}: unexpected line {line[:60]!r}")
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise LMError(f"{path}:{lineno + 1}: cannot read as ARPA text ({e})") from None
    if state != "end":
        raise LMError(f"{path}: no '\\end\\' line: truncated or not an ARPA file")
    for n, c in counts.items():
        if seen.get(n) != c:
            raise LMError(f"{path}: header announces {c} {n}-grams, the file has {seen.get(n, 0)}")


KENLM_MAGIC = b"mmap lm http://kheafield.com/code"  # how every KenLM binary file starts


def is_kenlm_binary(path: str | Path) -> bool:
    """Whether ``path`` is a KenLM binary LM (``build_binary``'s output) rather than ARPA text."""
    try:
        with open(path, "rb") as f:
            return f.read(len(KENLM_MAGIC)) == KENLM_MAGIC
    except OSError:
        return False


def find_build_binary() -> str | None:
    """KenLM's ``build_binary``: ``$KENLM_BUILD_BINARY``, else beside this Python (a venv's
    ``bin/``, where ``recipes/tools/install_kenlm.sh`` puts it), else on ``PATH``."""
    import shutil
    import sys

    for candidate in (os.environ.get("KENLM_BUILD_BINARY"), str(Path(sys.executable).parent / "build_binary")):
        if candidate and os.access(candidate, os.X_OK) and Path(candidate).is_file():
            return candidate
    return shutil.which("build_binary")


def binarize(arpa: str | Path, out: str | Path, quantize: int | None = 8) -> dict[str, Any]:
    """Write ``arpa`` as a KenLM binary trie at ``out`` (with the ARPA's ``.words.txt`` beside it).

    KenLM memory-maps a binary LM instead of parsing text: the shipped 4-gram loads in 0.01 s
    against 3-4 s, and its pages are shared by every process that maps it.
    ``quantize`` bits (``build_binary -q/-b``) store each log-probability and backoff as one of
    2^bits values, which halves the file; ``None`` keeps them exact. Returns sizes and time.
    """
    import subprocess

    arpa, out = Path(arpa), Path(out)
    check_arpa(arpa)
    tool = find_build_binary()
    if tool is None:
        raise LMError("KenLM's build_binary was not found (set KENLM_BUILD_BINARY, or build it with "
                      "`bash recipes/tools/install_kenlm.sh`, which compiles it from the kenlm package on PyPI)")
    if quantize is not None and not 1 <= quantize <= 25:
        raise LMError(f"--quantize must be between 1 and 25 bits, not {quantize}")
    options = ["-q", str(quantize), "-b", str(quantize)] if quantize else []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    start = time.time()
    # -a: pointers compressed by an offset array of up to 2^22 entries (a few % smaller, as fast)
    run = subprocess.run([tool, *options, "-a", "22", "trie", str(arpa), str(tmp)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise LMError(f"{arpa}: build_binary failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
    os.replace(tmp, out)
    words = Path(f"{arpa}.words.txt")
    if words.is_file():
        atomic_write_text(f"{out}.words.txt", words.read_text(encoding="utf-8"))
    return {"arpa_bytes": arpa.stat().st_size, "bytes": out.stat().st_size,
            "seconds": round(time.time() - start, 1), "quantize": quantize}


def ngram_perplexity(lm: str | Path, sentences: list[list[str]]) -> tuple[float, int]:
    """Perplexity of an ARPA or KenLM binary LM over the words and sentence ends of ``sentences`` that
    it knows, how many were scored, and how many words were left out as out of vocabulary (KenLM
    gives them -100; they stay in the context)."""
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    d = Dictionary()
    for w in dict.fromkeys(["<unk>", *(w for s in sentences for w in s)]):
        d.add_entry(w)
    model = KenLM(str(lm), d)
    total, count, unknown = 0.0, 0, 0
    for s in sentences:
        state = model.start(False)
        for w in s:
            state, score = model.score(state, d.get_index(w))
            if score <= -99:  # KenLM's out-of-vocabulary score
                unknown += 1
            else:
                total += score
                count += 1
        _, score = model.finish(state)
        total += score
        count += 1
    return 10 ** (-total / max(count, 1)), count, unknown
