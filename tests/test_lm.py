import json
import pytest
import torch

from asr.decode import BeamDecoder, DecodingConfig, best_path, char_words
from asr.lm import LMError, build_lm, check_arpa
from asr.text import CHAR_VOCAB, PHONE_VOCAB, Lexicon

C = {t: i for i, t in enumerate(CHAR_VOCAB.tokens)}
P = {t: i for i, t in enumerate(PHONE_VOCAB.tokens)}
LEX = Lexicon([("red", ("R", "EH", "D")), ("rid", ("R", "IH", "D")), ("bed", ("B", "EH", "D")),
               ("read", ("R", "IY", "D")), ("read", ("R", "EH", "D"))])


def frames(spec, index):
    rows = []
    for d in spec:
        p = torch.full((len(index),), 1e-4)
        for k, v in d.items():
            p[index[k]] = v
        rows.append((p / p.sum()).log())
    return torch.stack(rows)[None]


# "r", then 'a' 0.5 / 'i' 0.3 / 'e' 0.2, "d", boundary, "bed": greedy spells "rad bed".
AMBIGUOUS = [{"r": 0.9}, {"a": 0.5, "i": 0.3, "e": 0.2}, {"d": 0.9}, {"|": 0.9}, {"b": 0.9}, {"e": 0.9}, {"d": 0.9}]


def test_build_lm_writes_arpa(tmp_path):
    (tmp_path / "t.txt").write_text("RED BED\nA RED BED\nRED BED IS RED\n")
    stats = build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    arpa = (tmp_path / "lm.arpa").read_text()
    assert arpa.startswith("\\data\\\n")  # KenLM-strict: nothing before the header
    assert "ngram 2=" in arpa and "\\2-grams:" in arpa and arpa.rstrip().endswith("\\end\\")
    assert stats["sentences"] == 3 and stats["words"] == 9
    assert (tmp_path / "lm.arpa.words.txt").read_text().split() == ["a", "bed", "is", "red"]


def test_beam_with_lexicon_fixes_spelling_and_lm_decides(tmp_path):
    lp = frames(AMBIGUOUS, C)
    assert [w.word for w in char_words(best_path(lp[0]), 0.03)] == ["rad", "bed"]
    plain = BeamDecoder("char", LEX, DecodingConfig("beam", beam_size=20))
    assert [w.word for w in plain(lp, torch.tensor([7]), 0.03)[0][0]] == ["rid", "bed"]  # acoustics: i > e
    (tmp_path / "t.txt").write_text("RED BED\n" * 20 + "RID\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    with_lm = BeamDecoder("char", LEX, DecodingConfig("beam", lm=str(tmp_path / "lm.arpa"), beam_size=20, lm_weight=2.0))
    words = with_lm(lp, torch.tensor([7]), 0.03)[0][0]
    assert [w.word for w in words] == ["red", "bed"]  # the LM knows "red bed"
    assert (words[1].start, words[1].end) == (0.12, 0.21) and 0 < words[0].confidence < words[1].confidence <= 1


def test_phone_head_beam_uses_all_pronunciations():
    # R EH D | B EH D: "red" and "read" (second pronunciation) tie acoustically; no LM -> either is a word
    lp = frames([{"R": 0.9}, {"EH": 0.9}, {"D": 0.9}, {"|": 0.9}, {"B": 0.9}, {"EH": 0.9}, {"D": 0.9}], P)
    words = BeamDecoder("phone", LEX, DecodingConfig("beam", beam_size=20))(lp, torch.tensor([7]), 0.03)[0][0]
    assert [w.word for w in words][1] == "bed" and words[0].word in ("red", "read")
    assert words[0].tokens == ("R", "EH", "D")


def test_batch_equals_single():
    lp = frames(AMBIGUOUS, C)
    short = torch.cat([lp[:, :3], torch.zeros(1, 4, len(CHAR_VOCAB))], 1)
    dec = BeamDecoder("char", LEX, DecodingConfig("beam", beam_size=20))
    batch = dec(torch.cat([lp, short]), torch.tensor([7, 3]), 0.03)
    assert batch[0] == dec(lp, torch.tensor([7]), 0.03)[0]
    assert batch[1] == dec(short[:, :3], torch.tensor([3]), 0.03)[0]


def test_search_in_its_own_thread_equals_the_main_thread(tmp_path):
    import threading

    (tmp_path / "t.txt").write_text("A RED BED\nREAD A BED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    lp = frames(AMBIGUOUS, C)
    dec = BeamDecoder("char", LEX, DecodingConfig("beam", lm=str(tmp_path / "lm.arpa"), beam_size=20, nbest=3))
    seen = []
    search = dec.decoder.__call__
    dec.decoder = lambda *args: seen.append(threading.current_thread()) or search(*args)
    own = dec.search(lp, torch.tensor([7]), 0.03)
    dec.search_in_thread = False
    main = dec.search(lp, torch.tensor([7]), 0.03)
    assert own == main and own[0]
    assert seen[0] is not threading.main_thread() and seen[1] is threading.main_thread()
    assert not seen[0].is_alive()  # the search's thread is gone: nothing left running at a fork


def test_blank_skip_keeps_words_times_and_doubled_letters():
    # "reed": r, three sure blanks, e, three sure blanks, e, d: dropping whole blank runs would
    # merge the two e's into "red"; skipping keeps one blank between them.
    lex = Lexicon([("red", ("R", "EH", "D")), ("reed", ("R", "IY", "D")), ("bed", ("B", "EH", "D"))])
    blank = {"<b>": 0.99}
    spec = [{"r": 0.9}, blank, blank, blank, {"e": 0.9}, blank, blank, blank, {"e": 0.9}, {"d": 0.9},
            {"|": 0.9}, blank, blank, {"b": 0.9}, {"e": 0.9}, blank, {"d": 0.9}, blank]
    lp = frames(spec, C)
    full = BeamDecoder("char", lex, DecodingConfig("beam", beam_size=20))(lp, torch.tensor([len(spec)]), 0.03)[0][0]
    skipping = BeamDecoder("char", lex, DecodingConfig("beam", beam_size=20, blank_skip=0.95))
    skipped = skipping(lp, torch.tensor([len(spec)]), 0.03)[0][0]
    assert [w.word for w in full] == [w.word for w in skipped] == ["reed", "bed"]
    assert [(w.start, w.end) for w in skipped] == [(w.start, w.end) for w in full] == [(0.0, 0.3), (0.39, 0.51)]


def test_transcriber_with_beam_and_lm(tmp_path):
    from asr.decode import DecodingConfig
    from asr.transcribe import Transcriber
    from conftest import TEST_DATA

    (tmp_path / "t.txt").write_text("NORTHANGER ABBEY\nKNIT TWO TOGETHER TWICE\nWHO WAS ALREADY ASLEEP IN BED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    vocab = set((tmp_path / "lm.arpa.words.txt").read_text().split())
    for head in ("char", "phone"):
        t = Transcriber(head=head, decoding=DecodingConfig("beam", str(tmp_path / "lm.arpa"), beam_size=20))
        (result,) = list(t.transcribe([TEST_DATA / "2416-152139-0047.opus"]))
        assert result.words and set(result.text.split()) <= vocab  # only LM words can come out
        assert [w.start for w in result.words] == sorted(w.start for w in result.words)
        assert all(0 <= w.confidence <= 1 and w.end > w.start for w in result.words)


def test_bad_decoding_options(tmp_path):
    from asr.decode import DecodingConfig, make_beam_decoder

    with pytest.raises(ValueError, match="decoder must be"):
        make_beam_decoder("char", LEX, DecodingConfig("viterbi"))
    with pytest.raises(FileNotFoundError, match="language model not found"):
        make_beam_decoder("char", LEX, DecodingConfig("beam", str(tmp_path / "none.arpa")))
    assert make_beam_decoder("char", LEX, DecodingConfig()) is None


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


def test_tune_grid_search_writes_grid_and_best(tmp_path):
    import json

    from asr.decode import DecodingConfig
    from asr.evaluate import tune_decoding
    from conftest import TEST_DATA

    (tmp_path / "t.txt").write_text("NORTHANGER ABBEY\nKNIT TWO TOGETHER TWICE\nWHO WAS ALREADY ASLEEP IN BED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    best = tune_decoding(TEST_DATA / "manifest.jsonl", tmp_path / "tune",
                         DecodingConfig("beam", str(tmp_path / "lm.arpa"), beam_size=20),
                         lm_weights=(0.5, 2.0), word_scores=(0.0,), joint_weights=(0.0, 0.5), log=lambda _: None)
    rows = (tmp_path / "tune" / "grid.tsv").read_text().splitlines()
    assert len(rows) == 1 + 2 + 2 * 2 * 2  # header, greedy per head, head x lm weight x joint weight
    beam_wers = [float(r.split("\t")[5]) for r in rows[1:] if "\tbeam\t" in r]
    assert best["wer"] == min(beam_wers)
    assert json.loads((tmp_path / "tune" / "best.json").read_text()) == best
    assert best["decoding"]["decoder"] == "beam" and best["decoding"]["lm"] == str(tmp_path / "lm.arpa")


def test_lexicon_free_char_beam_spells_open_vocabulary():
    lp = frames(AMBIGUOUS, C)
    free = BeamDecoder("char", LEX, DecodingConfig("beam", beam_size=20, lexicon_free=True))
    words = free(lp, torch.tensor([7]), 0.03)[0][0]
    assert [w.word for w in words] == ["rad", "bed"]  # not a lexicon word: spelled as heard
    assert [w.tokens for w in words] == [("r", "a", "d"), ("b", "e", "d")] and words[1].start == 0.12
    with pytest.raises(ValueError, match="lexicon-free"):
        BeamDecoder("phone", LEX, DecodingConfig("beam", lexicon_free=True))
