"""The ``asr`` command, run as a user would, through subprocess."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import TEST_DATA

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
CLIP = TEST_DATA / "19-198-0000.opus"


def asr(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "asr.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)


def test_transcribe_one_file_with_shipped_model():
    r = asr("transcribe", CLIP)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].strip() and set(lines[0]) <= set("abcdefghijklmnopqrstuvwxyz' ")


def test_transcribe_several_files_and_heads():
    files = sorted(TEST_DATA.glob("*.opus"))
    for head in ("char", "phone"):
        r = asr("transcribe", "--head", head, *files)
        assert r.returncode == 0, r.stderr
        assert [line.split("\t")[0] for line in r.stdout.splitlines()] == [str(f) for f in files]


def test_accepts_other_rates_and_stereo(tmp_path):
    y, rate = sf.read(CLIP, dtype="float32")
    sf.write(tmp_path / "stereo44k.wav", np.stack([y, y], 1).repeat(2, 0)[: len(y) * 2], 32000)
    sf.write(tmp_path / "mono8k.flac", y[::2], 8000)
    r = asr("transcribe", tmp_path / "stereo44k.wav", tmp_path / "mono8k.flac")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2


@pytest.mark.parametrize("name,make,problem", [
    ("missing.wav", lambda p: None, "file not found"),
    ("empty.wav", lambda p: p.write_bytes(b""), "file is empty"),
    ("text.flac", lambda p: p.write_text("hello, I am not audio"), "not readable as audio"),
    ("zero.wav", lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "audio has zero length"),
])
def test_bad_input_one_line_error_and_goes_on(tmp_path, name, make, problem):
    bad = tmp_path / name
    make(bad)
    r = asr("transcribe", bad, CLIP)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {bad}: {problem}" + errors[0].split(problem, 1)[1]]
    assert "1 of 2 file(s) failed" in r.stderr
    assert r.stdout.startswith(f"{CLIP}\t")  # the good file is still transcribed


def test_bad_model_path(tmp_path):
    r = asr("transcribe", "--model", tmp_path / "nope.pt", CLIP)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path / 'nope.pt'}: model file not found"


def test_evaluate_writes_summary_and_results(tmp_path):
    r = asr("evaluate", "--manifest", TEST_DATA / "manifest.jsonl", "--out", tmp_path / "ev", "--head", "phone", "--quiet")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    for key in ("wer", "cer", "per", "wer_char", "wer_phone", "utterances", "audio_seconds", "seconds"):
        assert key in summary
    assert summary["utterances"] == 3 and summary["wer"] == summary["wer_phone"]
    assert 0 <= summary["cer"] <= 1.5 and abs(summary["audio_seconds"] - 6.105) < 0.01
    results = [json.loads(line) for line in (tmp_path / "ev" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in results] == ["19-198-0000", "1737-146161-0007", "2416-152139-0047"]
    assert results[0]["ref"] == "northanger abbey" and all("hyp" in r for r in results)


def test_demo_runs_on_shipped_samples(tmp_path):
    r = asr("demo", "--out", tmp_path / "demo")
    assert r.returncode == 0, r.stderr
    assert "WER" in r.stdout and (tmp_path / "demo" / "summary.json").is_file()


def test_prepare_and_bad_manifest(tmp_path):
    (tmp_path / "m.jsonl").write_text("{broken\n")
    r = asr("evaluate", "--manifest", tmp_path / "m.jsonl", "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.startswith(f"error: {tmp_path / 'm.jsonl'}:1: not valid JSON")
    r = asr("prepare", "librispeech", tmp_path, "--subset", "dev-clean", "--out", tmp_path / "x.jsonl")
    assert r.returncode == 2 and "subset folder not found" in r.stderr


def test_evaluate_minimal_manifest_of_id_audio_text(tmp_path):
    lines = [json.loads(line) for line in (TEST_DATA / "manifest.jsonl").read_text().splitlines()]
    (tmp_path / "m.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "audio": str(TEST_DATA / r["audio"]), "text": r["text"]}) + "\n" for r in lines))
    r = asr("evaluate", "--manifest", tmp_path / "m.jsonl", "--out", tmp_path / "ev", "--decoder", "greedy", "--quiet")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["utterances"] == 3 and abs(summary["audio_seconds"] - 6.105) < 0.01


def test_train_set_takes_plain_strings_and_dotted_keys(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'train_manifest = "{TEST_DATA / "manifest.jsonl"}"\ndev_manifest = ""\nout_dir = "x"\n'
                      "feature_workers = 1\n[model]\nhidden = 64\n")
    out = tmp_path / "exp dir"  # not JSON: taken as a string
    r = asr("train", config, "--quiet", "--set", f"out_dir={out}", "--set", "epochs=1", "--set", "model.hidden=8",
            "--set", "model.layers=1")
    assert r.returncode == 0, r.stderr
    saved = json.loads((out / "config.json").read_text())
    assert saved["epochs"] == 1 and saved["model"]["hidden"] == 8 and saved["out_dir"] == str(out)
    r = asr("train", config, "--set", "model.hiden=8")
    assert r.returncode == 2 and r.stderr.strip() == "error: unknown [model] option(s): hiden"
    r = asr("train", config, "--set", "epochs")
    assert r.returncode == 2 and "expected KEY=VALUE" in r.stderr


def test_user_errors_are_one_line_and_bugs_show_their_traceback(monkeypatch, capsys):
    from asr import cli
    from asr.errors import UserError

    def user_error(args):
        raise UserError("x.wav: not readable as audio")

    def bug(args):
        raise ValueError("a bug in asr")  # not a UserError: must not be hidden as a one-line "error:"

    monkeypatch.setattr(cli, "cmd_demo", user_error)
    assert cli.main(["demo"]) == 2 and capsys.readouterr().err == "error: x.wav: not readable as audio\n"
    with pytest.raises(UserError):
        cli.main(["--debug", "demo"])
    monkeypatch.setattr(cli, "cmd_demo", bug)
    with pytest.raises(ValueError, match="a bug in asr"):
        cli.main(["demo"])


def test_decoding_defaults_are_the_shipped_ones_and_options_override_them():
    import dataclasses

    from asr.cli import _decoding, build_parser
    from asr.decode import DecodingConfig, shipped_decoding

    parse = lambda *a: build_parser().parse_args(["transcribe", "x.wav", *a])  # noqa: E731
    head, shipped = shipped_decoding()
    assert _decoding(parse()) == (head, shipped)
    assert _decoding(parse("--decoder", "greedy", "--head", "phone")) == ("phone", DecodingConfig())
    head2, beam = _decoding(parse("--decoder", "beam", "--lm", "none", "--lm-weight", "3", "--joint-weight", "0"))
    assert beam == dataclasses.replace(shipped, decoder="beam", lm=None, lm_weight=3.0, joint_weight=0.0)
    assert _decoding(parse("--lm", "other.arpa"))[1].lm == "other.arpa"


def test_transcribe_jsonl_format_and_beam_with_lm(tmp_path):
    (tmp_path / "t.txt").write_text("NORTHANGER ABBEY\nKNIT TWO TOGETHER TWICE\n")
    assert asr("lm", "build", tmp_path / "t.txt", "--order", "2", "--out", tmp_path / "lm.arpa").returncode == 0
    files = sorted(TEST_DATA.glob("*.opus"))[:2]
    r = asr("transcribe", *files, "--decoder", "beam", "--lm", tmp_path / "lm.arpa", "--format", "jsonl",
            "--joint-weight", "0.1")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["path"] for rec in records] == [str(f) for f in files]
    vocab = {"northanger", "abbey", "knit", "two", "together", "twice"}
    for rec in records:
        assert set(rec["text"].split()) <= vocab and all(0 <= w["confidence"] <= 1 for w in rec["words"])


def test_calibrate_fits_a_calibrator_that_transcribe_uses(tmp_path):
    r = asr("calibrate", "--manifest", TEST_DATA / "manifest.jsonl", "--out", tmp_path / "cal", "--workers", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["words"] > 0 and summary["non_speech_words"] >= 0 and 0 <= summary["ece"] <= 1
    cal = tmp_path / "cal" / "calibration.json"
    assert json.loads(cal.read_text())["head"] == "phone"
    r = asr("transcribe", CLIP, "--format", "json", "--calibration", cal)
    assert r.returncode == 0, r.stderr
    words = json.loads(r.stdout)["words"]
    raw = json.loads(asr("transcribe", CLIP, "--format", "json", "--calibration", "none").stdout)["words"]
    assert [w["word"] for w in words] == [w["word"] for w in raw]  # the same words, other confidences
    assert [w["confidence"] for w in words] != [w["confidence"] for w in raw]


def test_min_confidence_option(tmp_path):
    r = asr("transcribe", CLIP, "--min-confidence", "2")
    assert r.returncode == 2 and "--min-confidence must lie in [0, 1]" in r.stderr
    everything = asr("transcribe", CLIP).stdout.split()
    nothing = asr("transcribe", CLIP, "--min-confidence", "1").stdout.split()
    assert everything and len(nothing) < len(everything)
