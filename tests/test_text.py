import pytest

from asr.text import CHAR_VOCAB, PHONE_VOCAB, PHONES, Lexicon, LexiconError, chars_to_ids, load_lexicon, normalize, text_to_chars


def test_vocabularies():
    assert CHAR_VOCAB.tokens[:2] == ("<b>", "|") and len(CHAR_VOCAB) == 2 + 26 + 1
    assert PHONE_VOCAB.tokens[:2] == ("<b>", "|") and len(PHONE_VOCAB) == 2 + 39
    assert len(set(PHONES)) == 39 and not any(p[-1].isdigit() for p in PHONES)


def test_normalize_and_chars():
    assert normalize("  Hello,  WORLD-wide!  it's ") == "hello world wide it's"
    assert text_to_chars("it's ok") == ["i", "t", "'", "s", "|", "o", "k"]
    assert CHAR_VOCAB.decode(chars_to_ids("ab c")) == ["a", "b", "|", "c"]


def test_encode_unknown_symbol():
    with pytest.raises(ValueError, match="not in the vocabulary"):
        CHAR_VOCAB.encode(["%"])


def test_shipped_lexicon_offline():
    lex = load_lexicon()
    assert len(lex) > 100_000
    assert lex.prons["cat"][0] == ("K", "AE", "T")
    # Several pronunciations per word are kept.
    assert len(lex.prons["read"]) >= 2
    # Most frequent spelling wins among homophones.
    assert lex.word_for(("T", "UW")) == "to"


def test_missing_word_has_no_phones(tmp_path):
    lex = Lexicon([("a", ("AH",)), ("cat", ("K", "AE", "T"))])
    assert lex.phones_for_words(["a", "cat"]) == ["AH", "|", "K", "AE", "T"]
    assert lex.phones_for_words(["a", "zyzzyva"]) is None


def test_word_for_closest_pronunciation():
    lex = Lexicon([("cat", ("K", "AE", "T")), ("dog", ("D", "AO", "G"))])
    assert lex.word_for(("K", "AE", "T")) == "cat"
    assert lex.word_for(("K", "AE", "D")) == "cat"  # one phone off
    assert lex.word_for(("D", "AO")) == "dog"


def test_word_for_prefers_the_more_frequent_word_on_ties(tmp_path):
    """The file lists frequent words first: a homophone resolves to the first, and so does a tie in
    distance between pronunciations of different words, from a file as from entries."""
    entries = [("the", ("DH", "AH")), ("thee", ("DH", "IY")), ("duh", ("D", "AH")), ("a", ("AH",)),
               ("de", ("D", "AH")), ("dee", ("D", "IY"))]
    (tmp_path / "lex.txt").write_text("".join(f"{w}\t{' '.join(p)}\n" for w, p in entries))
    for lex in (Lexicon(entries), Lexicon.load(tmp_path / "lex.txt")):
        assert lex.word_for(("D", "AH")) == "duh"  # homophones: duh before de
        assert lex.word_for(("DH", "EH")) == "the"  # one substitution from "the" and from "thee"
        assert lex.word_for(("Z", "IY")) == "thee"  # one from "thee" and from "dee"
        assert list(lex.words_by_pron.values()) == ["the", "thee", "duh", "a", "dee"]


def test_bad_lexicon_names_file_and_line(tmp_path):
    p = tmp_path / "lex.txt"
    p.write_text("cat\tK AE T\ndog\tD XX G\n")
    with pytest.raises(LexiconError, match=r"lex.txt:2: unknown phone\(s\) XX"):
        Lexicon.load(p)
    p.write_text("cat\n")
    with pytest.raises(LexiconError, match="lex.txt:1"):
        Lexicon.load(p)
    p.write_text("cat\tK AE T\ndog\tD AO\tG\n")  # a second tab: not WORD<TAB>PHONES
    with pytest.raises(LexiconError, match="lex.txt:2: expected 'WORD<TAB>PHONES'"):
        Lexicon.load(p)
    with pytest.raises(LexiconError, match="not found"):
        Lexicon.load(tmp_path / "nope.txt")


def test_lexicon_pronunciations_share_one_string_per_phone(tmp_path):
    # 143k pronunciations: a string object per phone occurrence cost 26 MB more
    (tmp_path / "lex.txt").write_text("cat\tK AE1 T\nbat\tB AE T\nhat\tHH AE T\n")
    lex = Lexicon.load(tmp_path / "lex.txt")
    (cat,), (bat,), (hat,) = lex.prons["cat"], lex.prons["bat"], lex.prons["hat"]
    assert cat == ("K", "AE", "T") and cat[1] is bat[1] is hat[1] and bat[2] is hat[2]
