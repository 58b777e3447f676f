"""The figures published in RESULTS.md come back when the shipped model is evaluated again."""

import json

import pytest

from asr.bundle import default_bundle_path, from_checkpoint, load_bundle
from asr.manifest import prepare_librispeech
from asr.evaluate import evaluate
from conftest import LIBRISPEECH, REPO, TEST_DATA, needs_librispeech

PUBLISHED = REPO / "recipes" / "librispeech" / "results"


def test_evaluate_small_manifest_both_heads(tmp_path):
    for head in ("char", "phone"):
        s = evaluate(TEST_DATA / "manifest.jsonl", tmp_path / head, load_bundle().with_options(head=head, decoder="greedy"),
                     posteriors=1)
        assert s["utterances"] == 3 and s["wer"] == s[f"wer_{head}"]
        assert s["oov_rate"] == (0.0 if head == "phone" else None)  # greedy characters spell any word
        assert s["substitutions"] + s["deletions"] + s["insertions"] == round(s["wer"] * s["reference_words"])
        assert len(list((tmp_path / head).glob("posteriors-*.png"))) == 1


def test_oov_rate_counts_reference_words_the_lm_cannot_output(tmp_path):
    from asr.lm import build_lm

    (tmp_path / "t.txt").write_text("NORTHANGER ABBEY\nWHO WAS IN BED\n")  # 6 of the 12 reference words
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    bundle = from_checkpoint(default_bundle_path() / "model.pt")
    s = evaluate(TEST_DATA / "manifest.jsonl", tmp_path / "ev",
                 bundle.with_options(head="phone", decoder="beam", lm=str(tmp_path / "lm.arpa"), beam_size=10),
                 posteriors=0)
    assert s["oov_rate"] == 0.5


@pytest.mark.slow
@needs_librispeech
def test_shipped_model_reproduces_published_dev_figures(tmp_path):
    prepare_librispeech(LIBRISPEECH, "test-clean", tmp_path / "dev.jsonl")
    # one pass scores both heads
    s = evaluate(tmp_path / "dev.jsonl", tmp_path / "ev", load_bundle().with_options(decoder="greedy"), posteriors=0)
    for head in ("char", "phone"):
        published = json.loads((PUBLISHED / f"dev-{head}-greedy" / "summary.json").read_text())
        assert s["utterances"] == published["utterances"] == 719
        # (published before issue 43, when "cer" was the character head's greedy CER, now "cer_char")
        for key, old in (("cer_char", "cer"), ("per", "per"), ("wer_char", "wer_char"), ("wer_phone", "wer_phone")):
            assert s[key] == pytest.approx(published[old], abs=2e-3), (head, key)
        assert published["wer"] == published[f"wer_{head}"]


@pytest.mark.slow
@needs_librispeech
def test_shipped_decoding_reproduces_published_dev_hypotheses(tmp_path):
    """The shipped bundle (model, lexicon, LM, RNN LM, tuned decoding) gives the published dev
    transcripts again: exactly for a sample of utterances, and the published WER is the WER
    of the published transcripts. (Published by the runtime, asr.rnn; the torch path in fp32
    gave the same 719 transcripts: results/runtime-parity/same-words.log.)"""
    from asr.manifest import read_manifest, write_manifest
    from asr.io import read_jsonl
    from asr.metrics import wer

    shipped = load_bundle()
    head, decoding = shipped.head, shipped.decoding
    assert decoding.decoder == "beam" and decoding.lm is not None
    folder = PUBLISHED / (f"dev-{head}-beam-lm{'-joint' if decoding.joint_weight else ''}"
                          f"{'-rnnlm' if decoding.rescore else ''}")
    summary = json.loads((folder / "summary.json").read_text())
    records = {r["id"]: r for _, r in read_jsonl(folder / "results.jsonl", ("id", "ref", "hyp"), ValueError, "")}
    assert len(records) == summary["utterances"] == 719
    assert wer([r["ref"] for r in records.values()], [r["hyp"] for r in records.values()]) == \
        pytest.approx(summary["wer"], abs=1e-4)
    for key in ("beam_size", "beam_size_token", "beam_threshold", "blank_skip", "lm_weight", "word_score",
                "joint_weight", "history_steps", "nbest", "rescore_weight", "blank_penalty", "token_score",
                "confidence_floor"):
        assert summary.get(key) == getattr(decoding, key), (folder, key)
    prepare_librispeech(LIBRISPEECH, "test-clean", tmp_path / "dev.jsonl")
    sample = read_manifest(tmp_path / "dev.jsonl")[::24]  # 30 utterances over all 10 speakers
    write_manifest(sample, tmp_path / "sample.jsonl")
    s = evaluate(tmp_path / "sample.jsonl", tmp_path / "ev", shipped, posteriors=0)
    again = [r for _, r in read_jsonl(tmp_path / "ev" / "results.jsonl", ("id", "hyp"), ValueError, "")]
    same = sum(r["hyp"] == records[r["id"]]["hyp"] for r in again)
    assert same == len(again), f"{same} of {len(again)} transcripts as published"
    assert s["wer"] == pytest.approx(wer([records[u.id]["ref"] for u in sample],
                                         [records[u.id]["hyp"] for u in sample]), abs=1e-9)


def test_tune_grid_search_writes_grid_and_best(tmp_path):
    """Every setting of the grid is one row, and the WER tune gives a setting (the n-best searched
    once, its rescoring cached) is what evaluate makes with that decoding."""
    import dataclasses
    import json

    from asr.lm import build_lm

    from asr.decode import DecodingConfig
    from asr.evaluate import tune_decoding
    from conftest import TEST_DATA

    (tmp_path / "t.txt").write_text("NORTHANGER ABBEY\nKNIT TWO TOGETHER TWICE\nWHO WAS ALREADY ASLEEP IN BED\n")
    build_lm([tmp_path / "t.txt"], tmp_path / "lm.arpa", order=2)
    bundle = from_checkpoint(default_bundle_path() / "model.pt")
    base = DecodingConfig("beam", str(tmp_path / "lm.arpa"), beam_size=20)
    best = tune_decoding(TEST_DATA / "manifest.jsonl", tmp_path / "tune", bundle, base,
                         lm_weights=(0.5, 2.0), word_scores=(0.0,), joint_weights=(0.0, 0.5), log=lambda _: None,
                         token_scores=(0.0, 10.0), blank_penalties=(0.0, 8.0))
    header, *lines = (tmp_path / "tune" / "grid.tsv").read_text().splitlines()
    rows = [dict(zip(header.split("\t"), line.split("\t"))) for line in lines]
    assert len(rows) == 2 + 2 * 2 * 2 * 2 * 2  # greedy per head; head x lm weight x joint x token score x penalty
    beam = [r for r in rows if r["decoder"] == "beam"]
    assert best["wer"] == min(float(r["wer"]) for r in beam)
    assert json.loads((tmp_path / "tune" / "best.json").read_text()) == best
    assert best["decoding"]["decoder"] == "beam" and best["decoding"]["lm"] == str(tmp_path / "lm.arpa")
    assert len({r["wer"] for r in beam}) > 2  # the grid's settings decode differently
    for r in beam[::5]:
        decoding = dataclasses.replace(base, **{k: float(r[k]) for k in ("lm_weight", "word_score", "joint_weight",
                                                                         "token_score", "blank_penalty")})
        s = evaluate(TEST_DATA / "manifest.jsonl", tmp_path / f"ev{len(list(tmp_path.iterdir()))}",
                     bundle.with_options(head=r["head"], **dataclasses.asdict(decoding)), posteriors=0)
        assert s["wer"] == pytest.approx(float(r["wer"]), abs=1e-4), r


@pytest.mark.slow
def test_a_long_file_scores_what_transcribe_gives(tmp_path):
    """evaluate and transcribe take one path from audio to words: on a 40 s recording (recognised
    in 30 s windows) the words evaluate scores are those transcribe writes, with the shipped search."""
    import numpy as np
    import soundfile as sf

    from asr.features import load_audio
    from asr.transcribe import Transcriber

    clips = [load_audio(p) for p in sorted(TEST_DATA.glob("*.opus"))]
    gap = np.zeros(8000, np.float32)
    audio = np.concatenate([x for _ in range(6) for c in clips for x in (c, gap)])
    assert 35 < len(audio) / 16000 < 60
    sf.write(tmp_path / "long.flac", audio, 16000)
    refs = [r["text"] for r in map(json.loads, (TEST_DATA / "manifest.jsonl").read_text().splitlines())]
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "long", "audio": str(tmp_path / "long.flac"),
                                                  "text": " ".join(refs * 6)}) + "\n")
    shipped = load_bundle()
    s = evaluate(tmp_path / "m.jsonl", tmp_path / "ev", shipped, posteriors=0)
    (record,) = [json.loads(line) for line in (tmp_path / "ev" / "results.jsonl").read_text().splitlines()]
    t = Transcriber(shipped).transcribe(tmp_path / "long.flac")
    assert record["hyp"] == t.text and record["confidences"] == [w.confidence for w in t.words]
    assert s["wer"] < 0.5 and s["boundary_words"] == 0  # a windowed file has no forced alignment of its whole reference


@pytest.mark.slow
def test_calibrate_fits_on_corrupted_copies_too(tmp_path):
    from asr.augment import AugmentConfig
    from asr.calibrate import CALIBRATION_L2, calibrate

    bundle = load_bundle(default_bundle_path())
    noisy = AugmentConfig(copies=1, noise=1.0, noise_kinds=("white",), snr=(5.0, 5.0))
    summary = calibrate(TEST_DATA / "manifest.jsonl", tmp_path, bundle, workers=0, non_speech=("hum",),
                        non_speech_seconds=5.0, augment=noisy, log=lambda line: None)
    assert summary["corrupted_copies"] == 1 and summary["corrupted_words"] > 0
    assert set(summary["corrupted"]) == {"auc", "ece"}
    assert summary["l2"] in CALIBRATION_L2 and len(summary["cross_validated_log_loss"]) == len(CALIBRATION_L2)
    clean = calibrate(TEST_DATA / "manifest.jsonl", tmp_path / "clean", bundle, workers=0, non_speech=("hum",),
                      non_speech_seconds=5.0, log=lambda line: None)
    assert clean["corrupted_words"] == 0 and "corrupted" not in clean
    assert clean["words"] == summary["words"]  # the same clean words; the copies came on top
    assert clean["calibrator"] != summary["calibrator"]
