"""The search's vocabulary at run time (asr.search): added words, LM stand-ins, boosted words."""

import gzip
from pathlib import Path

import pytest

import asr
from asr.bundle import resolve
from asr.errors import ConfigError
from asr.search import parse_boosts, stand_ins
from asr.transcribe import Transcriber

SAMPLES = Path("asr/assets/samples")
STORY = str(SAMPLES / "672-122797-0060.opus")  # "it is a very stupid story"
SHEET = str(SAMPLES / "1580-141083-0025.opus")  # "... took the papers sheet by sheet from the central table"


@pytest.fixture(scope="module")
def without_stupid(tmp_path_factory):
    """The shipped lexicon less the word 'stupid': a word the recognizer cannot say."""
    path = tmp_path_factory.mktemp("lex") / "lexicon.txt.gz"
    with gzip.open("asr/assets/lexicon.txt.gz", "rt") as f, gzip.open(path, "wt") as out:
        out.writelines(line for line in f if not line.startswith("stupid\t"))
    return path


def test_an_added_word_is_heard_with_given_phones_or_g2ps(without_stupid):
    plain = Transcriber(resolve(lexicon=without_stupid))
    assert "stupid" not in plain.transcribe(STORY).text.split()
    # a spelling neither the lexicon nor the LM knows: the LM reads it as a rare word it knows (as
    # rare as "cupid", which it says instead: raised a little, as a user raises the names they add)
    for entry in ("stoopid S T UW P IH D", "stoopid"):  # phones given; said by the bundle's G2P model
        added = Transcriber(resolve(lexicon=without_stupid, words=(entry,)))
        assert added.transcribe(STORY).text.startswith("it is a very "), entry
        raised = Transcriber(resolve(lexicon=without_stupid, words=(entry,), boost=("stoopid:1",)))
        assert raised.transcribe(STORY).text == "it is a very stoopid story", entry


def test_stand_ins_score_an_unknown_word_as_a_rare_known_one():
    lm = "asr/assets/lm.bin"
    chosen = stand_ins(lm, ["zorblax", "qwertyuiop", "the"])
    assert set(chosen) == {"zorblax", "qwertyuiop"}  # 'the' the LM knows: read as itself
    known = set(Path(f"{lm}.words.txt").read_text().split())
    assert all(w in known for w in chosen.values())
    # ... a word whose unigram log10-probability is near STAND_IN_LOG10
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    import asr.search

    d = Dictionary()
    for w in ["<unk>", chosen["zorblax"]]:
        d.add_entry(w)
    model = KenLM(lm, d)
    assert model.score(model.start(True), 1)[1] == pytest.approx(asr.search.STAND_IN_LOG10, abs=0.1)


def test_boost_raises_a_word_and_leaves_the_rest():
    plain = asr.load().transcribe(SHEET).text
    boosted = asr.load(boost=["sheet:3"]).transcribe(SHEET).text
    assert "sheet" not in plain.split() and "sheet" in boosted.split()
    assert boosted.split()[:6] == plain.split()[:6]  # "the man entered and took the" unchanged
    assert asr.load(boost=["zorblax:1"]).transcribe(SHEET).text == plain  # added, never heard


def test_boost_entries_are_checked():
    assert parse_boosts(["Acme:3", "new york", "x:-1.5"]) == [("acme", 3.0), ("new york", 2.0), ("x", -1.5)]
    for bad in ("acme:lots", "acme:inf", ":3", "3m:1"):
        with pytest.raises((ConfigError, ValueError)):
            parse_boosts([bad])
    with pytest.raises(ConfigError):
        asr.load(boost="acme")  # a string, not a list
