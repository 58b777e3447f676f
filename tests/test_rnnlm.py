"""The RNN LM: training (torch), its numpy runtime against the torch model, n-best rescoring, the CLI."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from asr.cli import main
from asr.ctc import Word
from asr.rnnlm import RNNLM, RNNLMError
from asr.search import DecodingConfig, best_words, rescore_nbest
from asr.train_rnnlm import RNNLMModel, RNNLMTrainConfig, train_rnnlm

SENTENCES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the man took the papers",
             "it is a very stupid story", "the cat took the log"] * 40
SMALL = RNNLMTrainConfig(vocab=30, embed=16, hidden=24, cutoffs=(8, 16), words_per_batch=64, lr=1e-2,
                         max_minutes=10.0, max_steps=1500, valid_sentences=6, dropout=0.0)  # steps: a machine's load
# changes nothing


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("rnnlm")
    text = d / "text.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    figures = train_rnnlm([str(text)], d / "rnnlm.npz", SMALL, log=lambda *_: None)
    return d / "rnnlm.npz", figures


def _torch_model(lm: RNNLM) -> RNNLMModel:
    """The exported weights back in the torch model, to hold the numpy runtime to it."""
    c = RNNLMTrainConfig(**{k: (tuple(v) if k == "cutoffs" else v) for k, v in lm.config.items()
                            if k in RNNLMTrainConfig.__dataclass_fields__})
    model = RNNLMModel(c, len(lm.words)).eval()
    with np.load(lm.path) as f:
        state = {"emb.weight": f["emb"], "proj.weight": f["proj"], "softmax.head.weight": f["head"],
                 "rnn.weight_ih_l0": f["w_ih0"], "rnn.weight_hh_l0": f["w_hh0"], "rnn.bias_ih_l0": f["b_ih0"],
                 "rnn.bias_hh_l0": f["b_hh0"]}
        for i in range(len(c.cutoffs)):
            state[f"softmax.tail.{i}.0.weight"] = f[f"tail{i}_a"]
            state[f"softmax.tail.{i}.1.weight"] = f[f"tail{i}_b"]
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return model


def test_the_numpy_runtime_gives_the_torch_models_log_probabilities(trained):
    lm = RNNLM(trained[0])
    model = _torch_model(lm)
    sentences = [["the", "cat", "sat"], ["a", "dog", "zebra"], []]  # zebra: <unk>; [] is </s> alone
    got = lm.score(sentences)
    for s, g in zip(sentences, got):
        ids = [0] + lm.ids(s)
        targets = lm.ids(s) + [0]
        with torch.no_grad():
            out, _ = model(torch.tensor([ids]), None)
            want = model.softmax.log_prob(out[0])[torch.arange(len(targets)), torch.tensor(targets)].sum()
        assert g == pytest.approx(float(want), abs=1e-4)


def test_a_backward_lm_reads_sentences_from_their_end(tmp_path):
    """reverse=true trains on each sentence right to left; the runtime reads a hypothesis the same
    way and samples come out in reading order."""
    text = tmp_path / "text.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    train_rnnlm([str(text)], tmp_path / "back.npz", dataclasses.replace(SMALL, reverse=True, max_steps=800),
                log=lambda *_: None)
    lm = RNNLM(tmp_path / "back.npz")
    assert lm.reverse
    likely, unlikely = lm.score([["the", "cat", "sat", "on", "the", "mat"], ["mat", "the", "on", "sat", "cat", "the"]])
    assert likely > unlikely + 5
    # P(w_t | the words after it): "the" is all this text has before "man", never "a"
    first = lm.score([["the", "man", "took", "the", "papers"], ["a", "man", "took", "the", "papers"]])
    assert first[0] > first[1] + 2
    samples = lm.sample(5, np.random.default_rng(0))
    assert sum(line in SENTENCES for line in samples) >= 3, samples


def test_sentences_scored_together_score_as_they_do_alone(trained):
    lm = RNNLM(trained[0])
    nbest = [["the", "cat", "sat", "on", "the", "mat"], ["the", "cat", "sat", "on", "a", "mat"], ["the", "cat"],
             ["a", "man"], ["the", "cat", "sat", "on", "the", "mat"]]
    together = lm.score(nbest)
    alone = [lm.score([s])[0] for s in nbest]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert together[0] == together[4]


def test_training_learns_the_text(trained):
    lm = RNNLM(trained[0])
    ppl, count, unknown = lm.perplexity([s.split() for s in SENTENCES[:6]] + [["a", "zebra"]])
    assert (count, unknown) == (sum(len(s.split()) + 1 for s in SENTENCES[:6]) + 2, 1)  # zebra left out
    assert ppl < 8, "a model of six sentences repeated should find them likely (30 words in its vocabulary)"
    assert trained[1]["valid_perplexity"] < 8
    likely, unlikely = lm.score([["the", "cat", "sat", "on", "the", "mat"], ["mat", "the", "on", "sat", "cat", "the"]])
    assert likely > unlikely + 5


def test_rescoring_reorders_the_nbest_by_the_rnn_lm(trained):
    lm = RNNLM(trained[0])

    def hyp(text: str, score: float):
        return [Word(w, i, i + 0.5) for i, w in enumerate(text.split())], score

    nbest = [hyp("mat the on sat cat the", 0.0), hyp("the cat sat on the mat", -1.0), hyp("mat the on sat cat the", -2.0)]
    other = np.zeros((10, 30), np.float32)
    assert [w.word for w in best_words(nbest, other, "char", None, DecodingConfig(), lm)] == "mat the on sat cat the".split()
    assert ([w.word for w in best_words(nbest, other, "char", None, DecodingConfig(rescore_weight=1.0), lm)]
            == "the cat sat on the mat".split())
    rescored = rescore_nbest(nbest, other, "char", None, DecodingConfig(rescore_weight=0.5), lm)
    assert len(rescored) == 2  # the same words twice: kept once, with the better score
    assert rescored[1][1] == pytest.approx(0.0 + 0.5 * lm.score([["mat", "the", "on", "sat", "cat", "the"]])[0])


def test_sampling_makes_sentences_of_its_words(trained):
    lm = RNNLM(trained[0])
    lines = lm.sample(5, np.random.default_rng(0))
    assert len(lines) == 5 and all(set(line.split()) <= set(lm.words[2:]) for line in lines)
    assert lines == lm.sample(5, np.random.default_rng(0))


def test_a_file_that_is_not_an_rnn_lm_is_refused(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(RNNLMError, match="x.npz: not an RNN LM file"):
        RNNLM(bad)
    (tmp_path / "y.npz").write_text("text")
    with pytest.raises(RNNLMError, match="y.npz: not an RNN LM file"):
        RNNLM(tmp_path / "y.npz")


def test_cli_trains_samples_and_measures_perplexity(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    out = tmp_path / "lm.npz"
    assert main(["lm", "rnn", str(text), "--out", str(out), "--set", "max_steps=20", "--set", "vocab=30",
                 "--set", "embed=16", "--set", "hidden=8", "--set", "cutoffs=[8, 16]", "--set", "valid_sentences=6"]) == 0
    assert main(["lm", "sample", str(out), "-n", "3"]) == 0
    assert main(["lm", "perplexity", str(out), str(text)]) == 0
    printed = capsys.readouterr().out
    assert f"{out}: perplexity" in printed and f"over {sum(len(s.split()) + 1 for s in SENTENCES)} words" in printed
    assert "0 of the" in printed
    assert main(["lm", "rnn", str(text), "--out", str(out), "--set", "hiden=8"]) == 2
    assert "unknown RNN LM option(s) ['hiden']" in capsys.readouterr().err
    assert not math.isnan(RNNLM(out).score([["the"]])[0])


def test_a_bundle_carries_its_rnn_lm_and_transcribes_with_it(trained, tmp_path):
    import asr

    shipped = asr.load_bundle()
    decoding = shipped.with_options(rescore=str(trained[0]), rescore_weight=0.3).decoding
    written = asr.write_bundle(tmp_path / "b", shipped.model, shipped.head, decoding, shipped.lexicon)
    again = asr.load_bundle(tmp_path / "b")
    assert again.decoding.rescore == str(tmp_path / "b" / "rnnlm.npz") and again.decoding.rescore_weight == 0.3
    rec = asr.load(written.path)
    assert rec.beam.rnnlm is not None
    t = rec.transcribe("asr/assets/samples/672-122797-0060.opus")
    assert t.text and rec.with_decoding(rescore="none").beam.rnnlm is None


def test_the_learning_rate_warms_up_then_falls_along_a_cosine_to_zero_at_the_budgets_end():
    from asr.errors import ConfigError
    from asr.train_rnnlm import learning_rate

    by_steps = RNNLMTrainConfig(lr=1.0, max_steps=1000)
    assert learning_rate(by_steps, 0, 0.0) == pytest.approx(1 / 200)  # warm-up: update 1 of 200
    assert learning_rate(by_steps, 500, 0.0) == pytest.approx(0.5)  # half the steps: cos(pi/2)
    assert learning_rate(by_steps, 1000, 0.0) == pytest.approx(0.0)
    by_time = RNNLMTrainConfig(lr=1.0, max_minutes=40.0)  # no max_steps: the clock's share of the budget
    assert learning_rate(by_time, 5000, 10.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert learning_rate(by_time, 5000, 50.0) == 0.0  # past the budget (the last step's overrun)
    constant = RNNLMTrainConfig(lr=1.0, lr_schedule="constant", max_steps=1000)
    assert [learning_rate(constant, s, 0.0) for s in (99, 500, 1000)] == pytest.approx([0.5, 1.0, 1.0])
    with pytest.raises(ConfigError, match="lr_schedule"):
        train_rnnlm(["never-read.txt"], "never-written.npz", RNNLMTrainConfig(lr_schedule="step"))
    assert main(["lm", "rnn", "never-read.txt", "--out", "never-written.npz", "--set", "lr_schedule=step"]) == 2


def test_no_training_time_gives_an_untrained_model_not_a_traceback(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    figures = train_rnnlm([str(text)], tmp_path / "lm.npz", dataclasses.replace(SMALL, max_minutes=0.0, max_steps=None),
                          log=lambda *_: None)
    assert figures["steps"] == 0 and (tmp_path / "lm.npz").exists()
