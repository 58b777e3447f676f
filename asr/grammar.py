"""Grammars: what may be said, as JSGF (the format of PocketSphinx and the speech APIs) or a
phrase list (Vosk's), compiled to a deterministic automaton over words that the beam search
reads as its language model (:class:`GrammarLM`): a word the grammar allows where the
hypothesis stands costs nothing, any other word ends the hypothesis, and a sentence must
end in a final state.

JSGF as read here (`JSGF 1.0 <https://www.w3.org/TR/jsgf/>`_)::

    #JSGF V1.0;                      // optional header
    grammar lights;                  // optional name
    public <command> = <action> [the] <thing> [please];
    <action> = turn on | turn off | dim;
    <thing> = (kitchen | bedroom) light | fan;
    public <digits> = (oh | zero | one | two | three | four | five | six | seven | eight | nine)+;

Rules, alternatives ``|``, groups ``( )``, optional ``[ ]``, ``*`` and ``+``, rule references
``<name>`` (and the special ``<NULL>``, ``<VOID>``), public rules (the sentences are those of
any public rule), ``//`` and ``/* */`` comments, quoted tokens (``"new york"``: two words),
weights ``/2/`` and tags ``{...}`` (accepted, not used). Words are written as transcripts are
(lower case ``a-z`` and ``'``; the case of a grammar's words is folded). Not supported, each
refused in one line naming its place: ``import``, and a rule that refers to itself (directly or
through others), which no finite automaton can hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

MAX_STATES = 100_000  # a grammar whose automaton is larger is refused (the subset construction can blow up)
WORD = re.compile(r"[a-z']+")


class GrammarError(UserError):
    """A grammar that cannot be used; the message names the file, line and column."""


@dataclass(frozen=True)
class Grammar:
    """A deterministic automaton over words: state 0 is the start; ``arcs[s]`` maps each word
    allowed in state ``s`` to the next state; ``finals`` are where a sentence may end."""

    arcs: tuple[dict[str, int], ...]
    finals: frozenset[int]
    source: str = "grammar"  # where it came from, for messages

    @property
    def words(self) -> list[str]:
        """Every word of the grammar, sorted."""
        return sorted({w for arcs in self.arcs for w in arcs})

    def accepts(self, words: list[str]) -> bool:
        """Whether ``words`` is a sentence of the grammar."""
        state = 0
        for w in words:
            state = self.arcs[state].get(w)
            if state is None:
                return False
        return state in self.finals


# -- JSGF: tokens -------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<header>\#JSGF[^;]*;)
  | (?P<rule><[^<>\s]+>)
  | (?P<weight>/[0-9.eE+-]+/)
  | (?P<tag>\{[^}]*\})
  | (?P<quoted>"[^"]*")
  | (?P<punct>[=;|()\[\]*+])
  | (?P<word>[^\s<>=;|()\[\]*+"{}/]+)
""", re.VERBOSE | re.DOTALL)


def _tokens(text: str, name: str) -> list[tuple[str, str, int]]:
    """(kind, text, offset) of each token, comments and spaces dropped."""
    out, at = [], 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if m is None:
            if text.startswith("/*", at):
                raise GrammarError(f"{_where(name, text, at)}: a /* comment that never ends")
            raise GrammarError(f"{_where(name, text, at)}: unexpected {text[at]!r}")
        kind = m.lastgroup
        if kind not in ("space", "comment"):
            out.append((kind, m.group(), at))
        at = m.end()
    return out


def _where(name: str, text: str, at: int) -> str:
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return f"{name}:{line}:{column}"


# -- JSGF: parsing into expressions -------------------------------------------------------------
# An expression is ("word", w), ("seq", [..]), ("alt", [..]), ("opt", e), ("star", e), ("plus", e),
# ("ref", name, offset), ("null",) or ("void",).


class _Parser:
    def __init__(self, text: str, name: str):
        self.text, self.name = text, name
        self.tokens = _tokens(text, name)
        self.k = 0

    def error(self, message: str, at: int | None = None) -> GrammarError:
        if at is None:
            at = self.tokens[self.k][2] if self.k < len(self.tokens) else len(self.text)
        return GrammarError(f"{_where(self.name, self.text, at)}: {message}")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.k] if self.k < len(self.tokens) else None

    def take(self, text: str | None = None, kind: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if token is None or (text is not None and token[1] != text) or (kind is not None and token[0] != kind):
            found = "the end of the grammar" if token is None else repr(token[1])
            raise self.error(f"expected {text or kind!r}, found {found}")
        self.k += 1
        return token

    def grammar(self) -> tuple[dict[str, tuple], dict[str, int], list[str]]:
        """Rules (name -> expression), where each is defined, and the public rules' names."""
        if (t := self.peek()) and t[0] == "header":
            # "V" in either case: PocketSphinx accepts "#JSGF v1.0;", and its own test grammars use it
            if not re.fullmatch(r"#JSGF\s+[Vv]1\.0\b[^;]*;", t[1]):
                raise self.error("the header must read #JSGF V1.0; (optionally with an encoding and locale)")
            self.k += 1
        if (t := self.peek()) and t[1] == "grammar":
            self.k += 1
            self.take(kind="word")
            self.take(";")
        rules, defined, public = {}, {}, []
        while (t := self.peek()) is not None:
            if t[1] == "import":
                raise self.error("import is not supported: put the rules in this grammar")
            is_public = t[1] == "public"
            if is_public:
                self.k += 1
            _, rule, at = self.take(kind="rule")
            name = rule[1:-1]
            if name in ("NULL", "VOID"):
                raise self.error(f"<{name}> is a special rule and cannot be defined", at)
            if name in rules:
                raise self.error(f"rule <{name}> is defined twice (first at "
                                 f"{_where(self.name, self.text, defined[name]).split(':', 1)[1]})", at)
            self.take("=")
            rules[name], defined[name] = self.alternatives(), at
            self.take(";")
            if is_public:
                public.append(name)
        return rules, defined, public

    def alternatives(self) -> tuple:
        options = [self.sequence()]
        while (t := self.peek()) and t[1] == "|":
            self.k += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else ("alt", options)

    def sequence(self) -> tuple:
        if (t := self.peek()) and t[0] == "weight":
            self.k += 1  # weights: accepted, not used
        items = []
        while (t := self.peek()) and (t[0] in ("word", "quoted", "rule") or t[1] in ("(", "[")):
            items.append(self.item())
        if not items:
            raise self.error("expected a word, a <rule>, ( or [" + (f", found {t[1]!r}" if t else ""))
        return items[0] if len(items) == 1 else ("seq", items)

    def item(self) -> tuple:
        kind, text, at = self.take()
        if kind == "word":
            e = self.word(text, at)
        elif kind == "quoted":
            words = [self.word(w, at) for w in text[1:-1].split()]
            if not words:
                raise self.error('an empty quoted token ""', at)
            e = words[0] if len(words) == 1 else ("seq", words)
        elif kind == "rule":
            name = text[1:-1]
            e = ("null",) if name == "NULL" else ("void",) if name == "VOID" else ("ref", name, at)
        elif text == "(":
            e = self.alternatives()
            self.take(")")
        else:  # "["
            e = ("opt", self.alternatives())
            self.take("]")
        while (t := self.peek()) and (t[1] in ("*", "+") or t[0] == "tag"):
            self.k += 1
            if t[1] == "*":
                e = ("star", e)
            elif t[1] == "+":
                e = ("plus", e)
        return e

    def word(self, text: str, at: int) -> tuple:
        w = text.lower()
        if not WORD.fullmatch(w):
            raise self.error(f"the word {text!r} is not written as transcripts are (a-z and ', e.g. "
                             f"'one' for 1)", at)
        return ("word", w)


# -- expressions -> automaton ---------------------------------------------------------------------


class _NFA:
    """Thompson's construction: states with word arcs and empty arcs."""

    def __init__(self):
        self.words: list[list[tuple[str, int]]] = []
        self.empty: list[list[int]] = []

    def state(self) -> int:
        self.words.append([])
        self.empty.append([])
        return len(self.words) - 1

    def build(self, e: tuple, rules: dict, name: str, text: str, stack: tuple = ()) -> tuple[int, int]:
        """States (start, end) of a fragment accepting expression ``e``."""
        kind = e[0]
        s, t = self.state(), self.state()
        if kind == "word":
            self.words[s].append((e[1], t))
        elif kind == "null":
            self.empty[s].append(t)
        elif kind == "void":
            pass
        elif kind == "seq":
            at = s
            for part in e[1]:
                a, b = self.build(part, rules, name, text, stack)
                self.empty[at].append(a)
                at = b
            self.empty[at].append(t)
        elif kind == "alt":
            for part in e[1]:
                a, b = self.build(part, rules, name, text, stack)
                self.empty[s].append(a)
                self.empty[b].append(t)
        elif kind in ("opt", "star", "plus"):
            a, b = self.build(e[1], rules, name, text, stack)
            self.empty[s].append(a)
            self.empty[b].append(t)
            if kind != "plus":
                self.empty[s].append(t)
            if kind != "opt":
                self.empty[b].append(a)
        else:  # ref
            rule, at = e[1], e[2]
            if rule not in rules:
                raise GrammarError(f"{_where(name, text, at)}: rule <{rule}> is used but never defined")
            if rule in stack:
                path = " -> ".join(f"<{r}>" for r in (*stack[stack.index(rule):], rule))
                raise GrammarError(f"{_where(name, text, at)}: rule <{rule}> refers to itself ({path}): "
                                   f"recursion is not supported (write repetition with * or +)")
            a, b = self.build(rules[rule], rules, name, text, (*stack, rule))
            self.empty[s].append(a)
            self.empty[b].append(t)
        return s, t

    def closure(self, states) -> frozenset[int]:
        seen, todo = set(states), list(states)
        while todo:
            for n in self.empty[todo.pop()]:
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return frozenset(seen)


def _determinize(nfa: _NFA, start: int, end: int, source: str) -> Grammar:
    """The subset construction: a deterministic automaton over words."""
    first = nfa.closure([start])
    index, subsets, arcs = {first: 0}, [first], []
    while len(arcs) < len(subsets):
        subset = subsets[len(arcs)]
        moves: dict[str, set[int]] = {}
        for n in subset:
            for w, m in nfa.words[n]:
                moves.setdefault(w, set()).add(m)
        out = {}
        for w in sorted(moves):
            target = nfa.closure(moves[w])
            if target not in index:
                if len(subsets) >= MAX_STATES:
                    raise GrammarError(f"{source}: the grammar's automaton has over {MAX_STATES} states; "
                                       f"simplify it")
                index[target] = len(subsets)
                subsets.append(target)
            out[w] = index[target]
        arcs.append(out)
    finals = frozenset(i for i, s in enumerate(subsets) if end in s)
    return _trim(Grammar(tuple(arcs), finals, source))


def _trim(g: Grammar) -> Grammar:
    """Drop the states from which no final state can be reached (dead ends of <VOID>)."""
    alive = set(g.finals)
    changed = True
    while changed:
        changed = False
        for s, arcs in enumerate(g.arcs):
            if s not in alive and any(t in alive for t in arcs.values()):
                alive.add(s)
                changed = True
    if 0 not in alive:
        raise GrammarError(f"{g.source}: the grammar has no sentence (every path meets <VOID>)")
    arcs = tuple({w: t for w, t in a.items() if t in alive} if s in alive else {} for s, a in enumerate(g.arcs))
    return Grammar(arcs, g.finals, g.source)


def parse_jsgf(text: str, name: str = "grammar") -> Grammar:
    """A JSGF grammar's text -> its automaton; :class:`GrammarError` with ``name:line:column``."""
    rules, _, public = _Parser(text, name).grammar()
    if not rules:
        raise GrammarError(f"{name}: the grammar is empty: no rule (write e.g. public <yes> = yes | no;)")
    if not public:
        raise GrammarError(f"{name}: no public rule: mark the rule whose sentences are said, e.g. "
                           f"public <{next(iter(rules))}> = ...")
    nfa = _NFA()
    start, end = nfa.state(), nfa.state()
    for rule in public:
        a, b = nfa.build(rules[rule], rules, name, text, (rule,))
        nfa.empty[start].append(a)
        nfa.empty[b].append(end)
    g = _determinize(nfa, start, end, name)
    if not g.words:
        raise GrammarError(f"{name}: the grammar has no word (only <NULL>)")
    return g


def load_grammar(path: str | Path) -> Grammar:
    """A JSGF file -> its automaton (errors name the file, line and column)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GrammarError(f"{path}: grammar file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GrammarError(f"{path}: cannot be read as a UTF-8 grammar ({e})") from None
    return parse_jsgf(text, str(path))


def phrase_grammar(phrases, source: str = "phrases") -> Grammar:
    """Vosk's phrase list: the output is any sequence of the phrases (or nothing). Each phrase is
    words as transcripts write them; ``[unk]`` (Vosk's unknown word) is accepted and left out."""
    words_of = []
    for k, phrase in enumerate(phrases, 1):
        if not isinstance(phrase, str):
            raise GrammarError(f"{source}: phrase {k} is not text: {phrase!r}")
        words = [w for w in phrase.lower().split() if w != "[unk]"]
        bad = [w for w in words if not WORD.fullmatch(w)]
        if bad:
            raise GrammarError(f"{source}: phrase {k} ({phrase!r}): the word {bad[0]!r} is not written as "
                               f"transcripts are (a-z and ', e.g. 'one' for 1)")
        if words:
            words_of.append(words)
    if not words_of:
        raise GrammarError(f"{source}: no phrase (give at least one phrase of words)")
    nfa = _NFA()
    start = nfa.state()
    for words in words_of:
        at = start
        for i, w in enumerate(words):
            nxt = start if i == len(words) - 1 else nfa.state()
            nfa.words[at].append((w, nxt))
            at = nxt
    g = _determinize(nfa, start, start, source)
    return g
