"""Finding phrases (asr.find): hits in a transcript built by hand, and `asr find` end to end."""

import csv
import json
from pathlib import Path

import pytest

from asr.cli import main
from asr.decode import Word
from asr.errors import ConfigError
from asr.find import Hit, hits_in, phrase_words
from asr.transcribe import Transcript

SAMPLES = Path("asr/assets/samples")


def test_hits_in_a_transcript():
    words = [Word(w, i * 1.0, i * 1.0 + 0.5, (), c) for i, (w, c) in
             enumerate([("new", 0.9), ("york", 0.6), ("is", 0.99), ("new", 0.8), ("new", 0.7), ("york", 0.95)])]
    t = Transcript("a.wav", "new york is new new york", words)
    assert hits_in(t, phrase_words(["New York", "is"])) == [
        Hit("a.wav", "new york", 0.0, 1.5, 0.6), Hit("a.wav", "is", 2.0, 2.5, 0.99),
        Hit("a.wav", "new york", 4.0, 5.5, 0.7)]
    assert hits_in(t, phrase_words(["york new"])) == []
    with pytest.raises(ConfigError):
        phrase_words(["  "])


def test_find_cli_writes_hits_and_resumes(tmp_path, capsys):
    out = tmp_path / "hits"
    args = ["find", "the central table", "stupid story", "nothing at all", str(SAMPLES), "--out", str(out), "--quiet"]
    assert main(args) == 0
    hits = [json.loads(line) for line in (out / "hits.jsonl").read_text().splitlines()]
    assert sorted(h["phrase"] for h in hits) == ["stupid story", "the central table"]
    for h in hits:
        record = next(json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()
                      if json.loads(x)["path"] == h["path"])
        words = [w for w in record["words"]]
        first = next(i for i, w in enumerate(words) if w["word"] == h["phrase"].split()[0]
                     and [x["word"] for x in words[i:i + len(h["phrase"].split())]] == h["phrase"].split())
        assert h["start"] == words[first]["start"] and h["confidence"] >= 0.5
    rows = list(csv.DictReader((out / "hits.csv").open()))
    assert [r["phrase"] for r in rows] == [h["phrase"] for h in hits]
    assert "3 searched now" in capsys.readouterr().err
    assert main(args) == 0 and "0 searched now" in capsys.readouterr().err  # resumed: nothing to do again
    assert main(["find", "other words", str(SAMPLES), "--out", str(out), "--quiet"]) == 2  # other options
    assert "made with other options" in capsys.readouterr().err
    assert main(["find", str(SAMPLES), "--out", str(tmp_path / "x")]) == 2
    assert "give the phrases to find" in capsys.readouterr().err
    assert main(["find", "hello", "missing.wav", "--out", str(tmp_path / "y")]) == 2
    assert "missing.wav: file not found" in capsys.readouterr().err
