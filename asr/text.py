"""Text side of the recognizer: normalisation, vocabularies and the pronunciation lexicon.

Two token inventories share one convention: index 0 is the CTC blank and index 1
is the word boundary ``|`` placed *between* words (never at the ends), so that both
CTC heads can be cut into words the same way.

- characters: ``a``-``z`` and the apostrophe (28 symbols + blank)
- phones: the 39 ARPAbet phones of CMUdict with lexical stress removed (40 + blank)

Pronunciations come from CMUdict (BSD licence), shipped with the package as
``assets/lexicon.txt.gz`` and read offline. Words are stored in descending corpus
frequency so that, among homophones, the first listed word is the most frequent one.

Words missing from the lexicon: such a word has no phone sequence, so
:meth:`Lexicon.phones_for_words` returns ``None`` for an utterance that contains one.
Training then drops the phone loss of that utterance (its character loss is kept) and
evaluation leaves it out of the PER, reporting how many utterances were scored.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import UserError

BLANK = "<b>"
BOUNDARY = "|"

CHARS = tuple("abcdefghijklmnopqrstuvwxyz'")
# The 39 phones of CMUdict (ARPAbet without stress markers).
PHONES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG "
    "OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()
assert len(PHONES) == 39

_NOT_ALLOWED = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-case, keep letters and apostrophes, squeeze whitespace.

    LibriSpeech transcripts are already upper-case letters, apostrophes and spaces;
    this makes any other reference text comparable to them.
    """
    text = text.lower().replace("-", " ")
    text = _NOT_ALLOWED.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class Vocab:
    """A CTC token inventory: ``tokens[0]`` is blank, ``tokens[1]`` the word boundary."""

    tokens: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def blank(self) -> int:
        return 0

    @property
    def boundary(self) -> int:
        return 1

    @lru_cache(maxsize=None)
    def _index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def encode(self, symbols: list[str]) -> list[int]:
        index = self._index()
        try:
            return [index[s] for s in symbols]
        except KeyError as e:
            raise ValueError(f"symbol {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: list[int]) -> list[str]:
        return [self.tokens[i] for i in ids]


CHAR_VOCAB = Vocab((BLANK, BOUNDARY) + CHARS)
PHONE_VOCAB = Vocab((BLANK, BOUNDARY) + tuple(PHONES))


def text_to_chars(text: str) -> list[str]:
    """``"hi there"`` -> ``['h', 'i', '|', 't', 'h', 'e', 'r', 'e']``."""
    return list(normalize(text).replace(" ", BOUNDARY))


def chars_to_ids(text: str) -> list[int]:
    return CHAR_VOCAB.encode(text_to_chars(text))


def strip_stress(phone: str) -> str:
    """``"AH0"`` -> ``"AH"``."""
    return phone.rstrip("012")


class LexiconError(UserError):
    pass


class Lexicon:
    """Word -> pronunciations (several per word), and pronunciation -> word.

    Words keep the order of the file; the file lists words by descending frequency, so
    :meth:`word_for` resolves homophones to the most frequent spelling.
    """

    def __init__(self, entries: list[tuple[str, tuple[str, ...]]]):
        self.prons: dict[str, list[tuple[str, ...]]] = {}
        self.words_by_pron: dict[tuple[str, ...], str] = {}  # in file order: `word_for` ranks by it
        first_word = self.words_by_pron.setdefault
        for word, pron in entries:
            known = self.prons.get(word)
            if known is None:
                self.prons[word] = [pron]
            elif pron not in known:
                known.append(pron)
            first_word(pron, word)
        self._buckets: dict[int, tuple[list[str], list[tuple[int, str]]]] | None = None
        self._closest: dict[tuple[str, ...], str] = {}
        self.path: Path | None = None  # the file it was read from (Lexicon.load)

    def __contains__(self, word: str) -> bool:
        return word in self.prons

    def __len__(self) -> int:
        return len(self.prons)

    @classmethod
    def load(cls, path: str | Path) -> "Lexicon":
        """Read ``WORD<TAB>PH ON ES`` lines (plain text or ``.gz``); stress digits are dropped."""
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        # one string object per phone, shared by all pronunciations: split() makes a new one for
        # each, 26 MB more over the shipped lexicon's 143k pronunciations (bench-memory-breakdown.log)
        shared = {p: p for p in PHONES}
        phone = shared.__getitem__
        entries = []
        try:
            with opener(path, "rt", encoding="utf-8") as f:
                text = f.read()  # one read, then a tight loop: this is on every start's path
            for lineno, line in enumerate(text.splitlines(), 1):
                line = line.strip()
                if not line or line[0] == "#":
                    continue
                word, tab, phones = line.partition("\t")
                if not tab:
                    word, _, phones = line.partition(" ")
                try:
                    pron = tuple(map(phone, phones.split()))
                except KeyError:  # stress digits, or a bad phone (the common case is fast)
                    pron = tuple(strip_stress(p) for p in phones.split())
                    bad = [p for p in pron if p not in shared]
                    if bad:
                        raise LexiconError(f"{path}:{lineno}: unknown phone(s) {' '.join(bad)} for {word!r}") from None
                    pron = tuple(map(phone, pron))
                if not word or not pron or "\t" in phones:
                    raise LexiconError(f"{path}:{lineno}: expected 'WORD<TAB>PHONES', got {line!r}")
                entries.append((word.lower(), pron))
        except FileNotFoundError:
            raise LexiconError(f"{path}: lexicon file not found") from None
        except (UnicodeDecodeError, OSError, EOFError) as e:
            raise LexiconError(f"{path}: cannot read lexicon ({e})") from None
        if not entries:
            raise LexiconError(f"{path}: lexicon is empty")
        lexicon = cls(entries)
        lexicon.path = path
        return lexicon

    def with_words(self, prons: dict[str, list[tuple[str, ...]]]) -> "Lexicon":
        """A copy with ``prons`` added (a word already there gains the pronunciations it lacked);
        its ``path`` stays this lexicon's (the words a search keeps from it are keyed by it)."""
        other = Lexicon([])
        other.prons = {w: list(ps) for w, ps in self.prons.items()}
        other.words_by_pron = dict(self.words_by_pron)
        other.path = self.path
        for w, ps in prons.items():
            known = other.prons.setdefault(w, [])
            for p in ps:
                if p not in known:
                    known.append(p)
                other.words_by_pron.setdefault(p, w)
        return other

    def phones_for_words(self, words: list[str]) -> list[str] | None:
        """First pronunciation of each word, joined by boundaries; ``None`` if any word is missing."""
        out: list[str] = []
        for i, word in enumerate(words):
            prons = self.prons.get(word)
            if prons is None:
                return None
            if i:
                out.append(BOUNDARY)
            out.extend(prons[0])
        return out

    def clear_memo(self) -> None:
        """Forget the closest-pronunciation look-ups :meth:`word_for` memoised (a benchmark
        times each run from the same cold start)."""
        self._closest.clear()

    def word_for(self, pron: tuple[str, ...]) -> str:
        """The most frequent word pronounced ``pron``, else the word of the closest pronunciation.

        Closest means the fewest phone insertions, deletions and substitutions (Levenshtein
        distance computed by rapidfuzz, each phone mapped to one character); ties go to
        the more frequent word. Pronunciations are bucketed by length: a bucket whose length
        differs by more than the best distance found so far cannot hold a closer one.
        """
        pron = tuple(pron)
        word = self.words_by_pron.get(pron) or self._closest.get(pron)
        if word is not None:
            return word
        if not pron:
            return ""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        if self._buckets is None:
            self._buckets = {}
            for rank, (p, w) in enumerate(self.words_by_pron.items()):
                keys, words = self._buckets.setdefault(len(p), ([], []))
                keys.append(_phone_key(p))
                words.append((rank, w))
        key, n = _phone_key(pron), len(pron)
        best = (n + 1, 0, "")  # (distance, frequency rank, word)
        for gap in range(0, max(self._buckets) + n + 1):
            if gap >= best[0]:
                break
            for length in {n - gap, n + gap}:
                if length not in self._buckets:
                    continue
                keys, words = self._buckets[length]
                match = process.extractOne(key, keys, scorer=Levenshtein.distance, score_cutoff=best[0])
                if match is not None:
                    rank, w = words[match[2]]
                    best = min(best, (int(match[1]), rank, w))
        if len(self._closest) < 1_000_000:  # bounded memo: recognizers repeat the same near-misses
            self._closest[pron] = best[2]
        return best[2]


_PHONE_CHAR = {p: chr(0x41 + i) for i, p in enumerate(PHONES)}


def _phone_key(pron: tuple[str, ...]) -> str:
    return "".join(_PHONE_CHAR[p] for p in pron)


class LazyLexicon:
    """A lexicon file read on first use, standing in for the :class:`Lexicon`.

    The shipped decoding (the phone head's beam search, its words from the bundle's saved
    spellings, joint rescoring by the character head) never looks a word up, and parsing the
    file's 143k lines is a large share of a short command's start; greedy phone words, other
    heads and forced alignment read it when they first ask.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise LexiconError(f"{self.path}: lexicon file not found")
        self._lexicon: Lexicon | None = None

    def load(self) -> Lexicon:
        if self._lexicon is None:
            self._lexicon = load_lexicon(str(self.path))
        return self._lexicon

    def __getattr__(self, name: str):  # only for what is not set above: the Lexicon's own attributes
        return getattr(self.load(), name)

    def __contains__(self, word: str) -> bool:
        return word in self.load()

    def __len__(self) -> int:
        return len(self.load())


DEFAULT_LEXICON = "lexicon.txt.gz"


@lru_cache(maxsize=4)
def load_lexicon(path: str | None = None) -> Lexicon:
    """The lexicon at ``path``, or the CMUdict lexicon shipped with the package."""
    if path is None:
        path = str(resources.files("asr") / "assets" / DEFAULT_LEXICON)
    return Lexicon.load(path)
