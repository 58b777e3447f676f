"""G2P (asr.g2p, asr.train_g2p): the numpy model equals the torch one, batches equal single
words, a short real training run learns, added-word entries are checked."""

import numpy as np
import pytest
import torch

from asr.cli import main
from asr.g2p import G2P, G2PConfig, G2PError, encode, parse_words, pronounce_words
from asr.text import Lexicon
from asr.train_g2p import G2PNet, G2PTraining, export, phone_error_rate, split, train_g2p

WORDS = ["a", "ox", "the", "zorblax", "anthropology", "x", "o'brien"]


def test_numpy_model_equals_torch_and_batches_equal_single_words():
    torch.manual_seed(0)
    c = G2PConfig(embedding=8, hidden=16, layers=2, repeat=3)
    net = G2PNet(c).eval()
    g2p = export(net, c)
    x, lengths = encode(WORDS, c.repeat)
    batched = g2p.log_probs(x, lengths)  # padded batch
    for b, w in enumerate(WORDS):
        xi, _ = encode([w], c.repeat)
        with torch.no_grad():
            expected = net(torch.from_numpy(xi))[0].numpy()
        np.testing.assert_allclose(batched[b, :lengths[b]], expected, atol=1e-5)
        np.testing.assert_allclose(g2p.log_probs(xi, np.array([len(w) * 3]))[0], expected, atol=1e-5)
    assert g2p.pronounce(WORDS) == [g2p(w) for w in WORDS]


def test_save_load_and_bad_files(tmp_path):
    c = G2PConfig(embedding=4, hidden=8, layers=1, repeat=2)
    g2p = export(G2PNet(c), c)
    g2p.save(tmp_path / "g.npz")
    again = G2P.load(tmp_path / "g.npz")
    assert again.config == c and again.pronounce(WORDS) == g2p.pronounce(WORDS)
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(G2PError, match="bad.npz: not a G2P model"):
        G2P.load(tmp_path / "bad.npz")
    with pytest.raises(G2PError, match="letters a-z"):
        g2p("R2D2")


def test_a_short_training_run_learns(tmp_path, capsys):
    # 3000 words of the shipped lexicon, 4 epochs (seconds): far better than chance on words it never saw
    lexicon = Lexicon.load("asr/assets/lexicon.txt.gz")
    small = tmp_path / "small.txt"
    small.write_text("".join(f"{w}\t{' '.join(ps[0])}\n" for w, ps in list(lexicon.prons.items())[:3000]))
    training = G2PTraining(model=G2PConfig(embedding=16, hidden=64, layers=1), epochs=4, batch_words=64, lr=1e-2)
    per = train_g2p(small, tmp_path / "g2p.npz", training, log=lambda m: None)
    _, held = split(Lexicon.load(small), training.held_out)
    g2p = G2P.load(tmp_path / "g2p.npz")
    assert per == pytest.approx(phone_error_rate(g2p, held)) and per < 0.55
    untrained = export(G2PNet(training.model), training.model)
    assert phone_error_rate(untrained, held) > 0.9
    assert main(["g2p", "say", "--model", str(tmp_path / "g2p.npz"), "Zorblax"]) == 0
    word, phones = capsys.readouterr().out.strip().split("\t")
    assert word == "zorblax" and phones


def test_added_word_entries():
    assert parse_words(["Acme", "zorb Z AO1 R B", "x\tEH K S"]) == [
        ("acme", None), ("zorb", ("Z", "AO", "R", "B")), ("x", ("EH", "K", "S"))]
    with pytest.raises(G2PError, match="entry 2 .*'QQ' is not one of the 39 phones"):
        parse_words(["ok", "zorb Z QQ"])
    with pytest.raises(G2PError, match="entry 1: '3M'"):
        parse_words(["3M"])
    with pytest.raises(G2PError, match="'acme' has no pronunciation and the bundle has no G2P model"):
        pronounce_words(["zorb Z AO R B", "acme"], None)
    assert pronounce_words(["zorb Z AO R B", "zorb Z AA R B"], None) == {"zorb": [("Z", "AO", "R", "B"),
                                                                               ("Z", "AA", "R", "B")]}
