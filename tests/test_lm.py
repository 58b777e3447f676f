import json
import pytest
import torch

from asr.decode import BeamDecoder, DecodingConfig
from asr.lm import LMError, build_lm, check_arpa
from test_decode import AMBIGUOUS, LEX, C, frames  # the beam-search fixtures

def test_build_lm_writes_arpa(tmp_path):
    (tmp_path / "t.txt").write_text("RED BED\nA RED BED\nRED BED IS RED\n")
    stats = build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    arpa = (tmp_path / "lm.arpa").read_text()
    assert arpa.startswith("\\data\\\n")  # KenLM-strict: nothing before the header
    assert "ngram 2=" in arpa and "\\2-grams:" in arpa and arpa.rstrip().endswith("\\end\\")
    assert stats["sentences"] == 3 and stats["words"] == 9
    assert (tmp_path / "lm.arpa.words.txt").read_text().split() == ["a", "bed", "is", "red"]


def test_build_lm_prunes_by_count_and_vocabulary_reads_manifests_and_gzips(tmp_path):
    import gzip
    import json

    (tmp_path / "t.txt").write_text("RED BED\nA RED BED\nRED BED IS RED\nA ZEBRA\n")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "u", "text": "a red bed"}) + "\n")
    stats = build_lm([tmp_path / "t.txt", tmp_path / "m.jsonl"], tmp_path / "lm.arpa.gz", order=3,
                     min_counts=(1, 2, 2), vocabulary={"a", "red", "bed", "is"})
    arpa = gzip.open(tmp_path / "lm.arpa.gz", "rt").read()
    assert stats["sentences"] == 5 and stats["words"] == 14
    assert (tmp_path / "lm.arpa.gz.words.txt").read_text().split() == ["a", "bed", "is", "red"]  # no zebra
    # bigrams seen twice or more: <s> red, <s> a, a red, red bed, bed </s>; trigrams: <s> a red, a red bed,
    # <s> red bed, red bed </s>
    assert stats["ngrams"] == [6, 5, 4] and "ngram 2=5" in arpa and "ngram 3=4" in arpa
    assert "\tis red\t" not in arpa and "zebra" not in arpa
    check_arpa(tmp_path / "lm.arpa.gz")
    dec = BeamDecoder("char", LEX, DecodingConfig("beam", lm=str(tmp_path / "lm.arpa.gz"), beam_size=20))  # KenLM reads .gz
    assert [w.word for w in dec(frames(AMBIGUOUS, C), torch.tensor([7]), 0.03)[0][0]] == ["red", "bed"]


def test_build_lm_leaves_foreign_sentences_and_words_out(tmp_path):
    from asr.lm import english_share, read_word_list

    (tmp_path / "cmu.dict").write_text(";;; comment\nthe DH AH0\nthe(2) DH IY0\nred R EH1 D\nbed B EH1 D\n"
                                       "il IH1 L  # a name in CMUdict\n")
    english = read_word_list(tmp_path / "cmu.dict")
    assert english == {"the", "red", "bed", "il"}
    assert english_share("the red avait", english) == pytest.approx(2 / 3)
    (tmp_path / "t.txt").write_text("THE RED BED\nIL AVAIT DES YEUX DOUX\nIL AVAIT\nTHE BED\nTHE RED BED AVAIT\n"
                                    "THE HOLBORN BED\n")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "u", "text": "the zorg bed"}) + "\n")
    stats = build_lm([tmp_path / "t.txt", tmp_path / "m.jsonl"], tmp_path / "lm.arpa", english=english,
                     min_english=0.6)
    assert stats["sentences"] == 5 and stats["foreign_sentences"] == 2  # the French lines (1 of 5, 1 of 2 words)
    # "avait" is in a 3/4-English sentence once but in foreign ones twice: out; "holborn" (2/3 English:
    # kept) is seen only in English; "zorg" is in a transcript
    assert (tmp_path / "lm.arpa.words.txt").read_text().split() == ["bed", "holborn", "red", "the", "zorg"]
    # "il" is English by the word list and seen in an English sentence ("IL AVAIT" is 1 of 2): an excluded word
    (tmp_path / "t.txt").write_text("THE RED BED\nTHE RED BED IL\nTHE BED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm2.arpa", english=english, min_english=0.6)
    assert "il" in (tmp_path / "lm2.arpa.words.txt").read_text().split()
    build_lm([tmp_path / "t.txt"], tmp_path / "lm2.arpa", english=english, min_english=0.6, exclude={"il"})
    assert (tmp_path / "lm2.arpa.words.txt").read_text().split() == ["bed", "red", "the"]
    assert "\til" not in (tmp_path / "lm2.arpa").read_text() and " il" not in (tmp_path / "lm2.arpa").read_text()


@pytest.mark.parametrize("content, problem", [
    ("garbage\n", r"bad.arpa:1: expected '\\data\\' first"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\t<s>\t0\nbad line here\n\\end\\\n", r"bad.arpa:6: not a number"),
    ("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\n-1.0\t</s>\n", "no '\\\\end\\\\' line"),
    ("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\n-1.0\t</s>\n\\end\\\n", "announces 3 1-grams, the file has 2"),
])
def test_bad_lm_file_names_file_and_line(tmp_path, content, problem):
    (tmp_path / "bad.arpa").write_text(content)
    with pytest.raises(LMError, match=problem):
        BeamDecoder("char", LEX, DecodingConfig("beam", lm=str(tmp_path / "bad.arpa")))



def test_kenlm_binary_is_told_from_arpa(tmp_path):
    from asr.bundle import load_bundle
    from asr.lm import is_kenlm_binary

    assert is_kenlm_binary(load_bundle().decoding.lm)  # the shipped LM is binary: it loads in 0.01 s
    build_lm_text = tmp_path / "t.txt"
    build_lm_text.write_text("RED BED\n")
    build_lm([build_lm_text], tmp_path / "lm.arpa", order=2)
    assert not is_kenlm_binary(tmp_path / "lm.arpa") and not is_kenlm_binary(tmp_path / "missing")


def test_binarize_without_build_binary_says_how_to_get_it(tmp_path, monkeypatch):
    import asr.lm

    (tmp_path / "t.txt").write_text("RED BED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    monkeypatch.setattr(asr.lm, "find_build_binary", lambda: None)
    with pytest.raises(LMError, match="install_kenlm.sh"):
        asr.lm.binarize(tmp_path / "lm.arpa", tmp_path / "lm.bin")
    assert not (tmp_path / "lm.bin").exists()


@pytest.fixture(scope="session")
def build_binary(tmp_path_factory):
    """KenLM's build_binary: the one asr finds, else built by recipes/tools/install_kenlm.sh
    (which the test then also checks); skipped where neither works (no compiler, no PyPI)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from asr.lm import find_build_binary

    found = find_build_binary()
    if found:
        return found
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("no build_binary and no C++ compiler to build it (recipes/tools/install_kenlm.sh)")
    dest = tmp_path_factory.mktemp("kenlm")
    script = Path(__file__).resolve().parents[1] / "recipes" / "tools" / "install_kenlm.sh"
    r = subprocess.run(["bash", str(script), str(dest)], capture_output=True, text=True,
                       env={**os.environ, "PYTHON": sys.executable})
    if r.returncode != 0 and "pip download" in r.stderr:
        pytest.skip(f"install_kenlm.sh could not fetch kenlm from PyPI: {r.stderr.strip()[-200:]}")
    assert r.returncode == 0, r.stderr
    return str(dest / "build_binary")


def test_binarize_exact_and_quantized_score_as_the_arpa_and_decode_alike(tmp_path, monkeypatch, build_binary):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    from asr.lm import binarize, is_kenlm_binary

    monkeypatch.setenv("KENLM_BUILD_BINARY", build_binary)
    (tmp_path / "t.txt").write_text("RED BED\nA RED BED\nRED BED IS RED\nA BED IS A BED\nIS IT RED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa.gz", order=3)
    exact = binarize(tmp_path / "lm.arpa.gz", tmp_path / "exact.bin", quantize=None)
    small = binarize(tmp_path / "lm.arpa.gz", tmp_path / "q8.bin", quantize=8)
    assert exact["quantize"] is None and small["quantize"] == 8
    # (the quantized file is the smaller one only for real LMs: here its 2^8-value tables dominate)
    assert is_kenlm_binary(tmp_path / "exact.bin") and is_kenlm_binary(tmp_path / "q8.bin")
    assert (tmp_path / "q8.bin.words.txt").read_text() == (tmp_path / "lm.arpa.gz.words.txt").read_text()

    words = (tmp_path / "lm.arpa.gz.words.txt").read_text().split()
    d = Dictionary()
    for w in ["<unk>", *words]:
        d.add_entry(w)

    def score(path: str, sentence: list[str]) -> float:
        lm = KenLM(path, d)
        state, total = lm.start(False), 0.0
        for w in sentence:
            state, s = lm.score(state, d.get_index(w))
            total += s
        return total + lm.finish(state)[1]

    for sentence in (["red", "bed"], ["a", "bed", "is", "red"], ["is", "a", "red", "bed"]):
        arpa = score(str(tmp_path / "lm.arpa.gz"), sentence)
        assert score(str(tmp_path / "exact.bin"), sentence) == pytest.approx(arpa, abs=1e-5)
        assert score(str(tmp_path / "q8.bin"), sentence) == pytest.approx(arpa, abs=0.05 * len(sentence))
    for lm in ("lm.arpa.gz", "exact.bin"):  # the search reads either
        dec = BeamDecoder("char", LEX, DecodingConfig("beam", lm=str(tmp_path / lm), beam_size=20))
        assert [w.word for w in dec(frames(AMBIGUOUS, C), torch.tensor([7]), 0.03)[0][0]] == ["red", "bed"]


def test_binarize_refuses_what_is_not_arpa(tmp_path, monkeypatch, build_binary):
    from asr.lm import binarize

    monkeypatch.setenv("KENLM_BUILD_BINARY", build_binary)
    (tmp_path / "bad.arpa").write_text("not an lm\n")
    with pytest.raises(LMError, match="bad.arpa:1"):
        binarize(tmp_path / "bad.arpa", tmp_path / "lm.bin")
    assert not (tmp_path / "lm.bin").exists()


def test_number_text_for_the_lm_is_sayable_and_reproducible(tmp_path):
    """recipes/librispeech/local/number_text.py: digit strings, years, times, amounts, every word in
    the shipped lexicon (so the phone head can say them), the same bytes every run."""
    import gzip
    import subprocess
    import sys
    from pathlib import Path

    from asr.text import load_lexicon

    pytest.importorskip("num2words", reason="num2words: pip install -e '.[test]'")
    script = Path(__file__).resolve().parents[1] / "recipes" / "librispeech" / "local" / "number_text.py"
    for name in ("a.txt.gz", "b.txt.gz"):
        r = subprocess.run([sys.executable, str(script), "--sentences", "2000", "--out", str(tmp_path / name)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.txt.gz").read_bytes() == (tmp_path / "b.txt.gz").read_bytes()
    lines = gzip.open(tmp_path / "a.txt.gz", "rt").read().splitlines()
    assert len(lines) == 2000 and all(lines)
    words = {w for line in lines for w in line.split()}
    assert words <= set(load_lexicon().prons), sorted(words - set(load_lexicon().prons))
    text = "\n".join(lines)
    assert " oh " in text and "nineteen" in text and "half past" in text and "hundred" in text
