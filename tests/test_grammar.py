"""Grammars (asr.grammar): JSGF parsing, the automaton, phrase lists, errors with their place,
and recognition held to a grammar on every path (Python, CLI, stream, bundle)."""

import json
from pathlib import Path

import numpy as np
import pytest

import asr
from asr.calibrate import synthetic_audio
from asr.cli import main
from asr.features import load_audio
from asr.grammar import GrammarError, load_grammar, parse_jsgf, phrase_grammar

SAMPLES = Path("asr/assets/samples")
ROWS = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()]

LIGHTS = """#JSGF V1.0;
grammar lights;   // a comment
/* a comment
   over lines */
public <command> = <action> [the] <thing> [please];
<action> = turn on | turn off | /2/ dim {dim};
<thing> = (kitchen | bedroom) light | fan;
public <digits> = (oh | one | "two" | three)+;
"""


def test_jsgf_sentences():
    g = parse_jsgf(LIGHTS)
    for yes in ["turn on the kitchen light", "dim fan please", "turn off bedroom light please", "one", "oh two oh"]:
        assert g.accepts(yes.split()), yes
    for no in ["turn on", "the fan", "dim fan please please", "", "one turn on fan", "kitchen"]:
        assert not g.accepts(no.split()), no
    assert g.words == sorted("bedroom dim fan kitchen light oh off on one please the three turn two".split())


def test_jsgf_header_in_either_case():
    # PocketSphinx's own test grammars (cards.gram) begin "#JSGF v1.0;", which it reads
    assert parse_jsgf("#JSGF v1.0;\ngrammar cards;\npublic <a> = ace [of] spades;").accepts("ace of spades".split())


def test_jsgf_operators_null_void_and_case():
    g = parse_jsgf("public <a> = Yes* <NULL> [no] | maybe <VOID> | (so+ | <NULL>);")
    assert g.accepts([]) and g.accepts("yes yes no".split()) and g.accepts("so so".split())
    assert not g.accepts(["maybe"]) and "maybe" not in g.words  # <VOID> never matches
    assert g.accepts(["no"]) and not g.accepts("no no".split())


@pytest.mark.parametrize("text, where, what", [
    ("public <a> = yes", "1:17", "expected ';'"),
    ("public <a> = yes;\n<b> = no |;", "2:11", "expected a word"),
    ("public <a> = <b>;", "1:14", "rule <b> is used but never defined"),
    ("public <a> = yes <a>;", "1:18", "refers to itself (<a> -> <a>)"),
    ("public <a> = <b>;\n<b> = x <a>;", "2:9", "refers to itself (<a> -> <b> -> <a>)"),
    ("public <a> = 42;", "1:14", "the word '42' is not written as transcripts are"),
    ("import <x.*>;", "1:1", "import is not supported"),
    ("public <a> = yes;\n<a> = no;", "2:1", "rule <a> is defined twice"),
    ("public <a> = (yes;", "1:18", "expected ')'"),
    ("#JSGF V2.0;\npublic <a> = x;", "1:1", "the header must read #JSGF V1.0;"),
    ("public <a> = yes; /* never ends", "1:19", "a /* comment that never ends"),
])
def test_jsgf_errors_name_line_and_column(text, where, what):
    with pytest.raises(GrammarError) as e:
        parse_jsgf(text, "g.gram")
    assert str(e.value).startswith(f"g.gram:{where}: ") and what in str(e.value), str(e.value)


@pytest.mark.parametrize("text, what", [
    ("", "the grammar is empty"), ("// only a comment\n", "the grammar is empty"),
    ("<a> = yes;", "no public rule"), ("public <a> = <VOID>;", "has no sentence"),
    ("public <a> = <NULL>;", "no word"),
])
def test_grammars_without_sentences_are_refused(text, what):
    with pytest.raises(GrammarError, match=what):
        parse_jsgf(text, "g.gram")


def test_phrase_lists():
    g = phrase_grammar(["turn on", "Turn off", "light", "[unk]"])
    assert g.accepts([]) and g.accepts("turn on light turn off".split()) and not g.accepts(["turn"])
    with pytest.raises(GrammarError, match="phrase 2"):
        phrase_grammar(["yes", "no 2"])
    with pytest.raises(GrammarError, match="no phrase"):
        phrase_grammar(["[unk]", " "])
    with pytest.raises(GrammarError, match="grammar file not found"):
        load_grammar("nothing.gram")


def clip(row) -> str:
    return str(SAMPLES / row["audio"])


@pytest.fixture(scope="module")
def free():
    return asr.load()


def test_phrases_give_their_sentences_and_nothing_else(free, tmp_path):
    phrases = [r["text"] for r in ROWS] + ["the man entered the room", "it is a story"]
    r = asr.load(phrases=phrases)
    for row in ROWS:
        t = r.transcribe(clip(row))
        assert t.text == row["text"] and all(0 <= w.confidence <= 1 for w in t.words)
    # out of grammar: other speech, noise and silence give nothing rather than the nearest phrase
    commands = asr.load(phrases=["turn on the light", "turn off the light"])
    assert [commands.transcribe(clip(row)).text for row in ROWS] == ["", "", ""]
    noise = (np.random.default_rng(0).standard_normal(48000) * 0.05).astype(np.float32)
    assert commands.transcribe(noise, sample_rate=16000).text == ""
    # and a grammar of any number of digits, which some string matches in any noise: the floor leaves it out
    digits = asr.load(grammar="recipes/grammars/digits.gram")
    assert digits.transcribe(synthetic_audio("white", 10.0, seed=21), sample_rate=16000).text == ""
    assert r.transcribe(np.zeros(16000, np.float32), sample_rate=16000).text == ""


def cli_text(capsys, *args: str) -> str:
    """What `asr transcribe ARGS` prints (it must succeed)."""
    assert main(["transcribe", *args]) == 0
    return capsys.readouterr().out.strip()


def test_jsgf_through_the_cli_python_and_a_stream(tmp_path, capsys):
    gram = tmp_path / "story.gram"
    gram.write_text("#JSGF V1.0;\npublic <s> = it is a (very | rather) [stupid | good] story | the man entered;\n")
    row = ROWS[0]
    assert cli_text(capsys, clip(row), "--grammar", str(gram)) == "it is a very stupid story"
    r = asr.load(grammar=str(gram))
    assert r.transcribe(clip(row)).text == "it is a very stupid story"
    s = r.stream()
    wav = load_audio(clip(row))
    for i in range(0, len(wav), 1600):
        s.accept(wav[i:i + 1600], 16000)
    assert " ".join(seg.text for seg in s.finish()) == "it is a very stupid story"
    # a grammar error is one line naming its place, before any audio is read
    bad = tmp_path / "bad.gram"
    bad.write_text("public <s> = it is (a story;\n")
    assert main(["transcribe", clip(row), "--grammar", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad}:1:28: expected ')', found ';'"
    # a word the lexicon lacks: the bundle's G2P model says it; a bundle without one says so in one line
    odd = tmp_path / "odd.gram"
    odd.write_text("public <s> = it is a zorblax story | it is a very stupid story;\n")
    assert cli_text(capsys, clip(row), "--grammar", str(odd)) == "it is a very stupid story"
    assert main(["bundle", "asr/assets", "--g2p", "none", "--out", str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    assert main(["transcribe", clip(row), "--grammar", str(odd), "--bundle", str(tmp_path / "plain")]) == 2
    assert "the word 'zorblax' is not in the lexicon, and the bundle has no G2P model" in capsys.readouterr().err


def test_phrases_file_and_a_bundle_that_carries_its_grammar(tmp_path, capsys):
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("# commands\nit is a very stupid story\n\nthe man entered\n")
    row = ROWS[0]
    assert cli_text(capsys, clip(row), "--phrases", str(phrases)) == "it is a very stupid story"
    gram = tmp_path / "g.gram"
    gram.write_text("public <s> = it is a very stupid story | nothing at all;\n")
    assert main(["bundle", "asr/assets", "--grammar", str(gram), "--out", str(tmp_path / "b")]) == 0
    b = tmp_path / "b"
    assert json.loads((b / "bundle.json").read_text())["decoding"]["grammar"] == "grammar.gram"
    assert asr.load(str(b)).transcribe(clip(ROWS[1])).text == ""  # out of its grammar
    # ... unless nothing is rejected (`--grammar-reject 1e9`, and no floor): then the nearest sentence
    assert main(["bundle", "asr/assets", "--grammar", str(gram), "--grammar-reject", "1e9", "--confidence-floor", "0",
                 "--out", str(tmp_path / "all")]) == 0
    assert asr.load(str(tmp_path / "all")).transcribe(clip(ROWS[1])).text != ""
    assert asr.load(str(b)).transcribe(clip(row)).text == "it is a very stupid story"
