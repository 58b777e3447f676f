"""The ``asr`` command, run as a user would, through subprocess."""

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from asr.plan import CHUNK_SECONDS

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


@pytest.mark.slow
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
    r = asr("transcribe", tmp_path / "stereo44k.wav", tmp_path / "mono8k.flac", "--decoder", "greedy")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2


BAD_INPUTS = [
    ("missing.wav", lambda p: None, "file not found"),
    ("empty.wav", lambda p: p.write_bytes(b""), "file is empty"),
    ("text.flac", lambda p: p.write_text("hello, I am not audio"), "not readable as audio"),
    ("zero.wav", lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "audio has zero length"),
]


def test_bad_input_one_line_error_and_goes_on(tmp_path):
    """Each bad file: one line naming it and the problem; the good file among them is still transcribed."""
    bad = []
    for name, make, _ in BAD_INPUTS:
        make(tmp_path / name)
        bad.append(tmp_path / name)
    r = asr("transcribe", *bad, CLIP, "--decoder", "greedy")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(BAD_INPUTS)
    for line, path, (_, _, problem) in zip(errors, bad, BAD_INPUTS):
        assert line.startswith(f"error: {path}: {problem}"), line
    assert f"{len(bad)} of {len(bad) + 1} file(s) failed" in r.stderr
    assert r.stdout.startswith(f"{CLIP}\t")  # the good file is still transcribed


def test_bad_model_path(tmp_path):
    r = asr("transcribe", "--model", tmp_path / "nope.pt", CLIP)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path / 'nope.pt'}: model file not found"


def test_evaluate_writes_summary_and_results(tmp_path):
    r = asr("evaluate", "--manifest", TEST_DATA / "manifest.jsonl", "--out", tmp_path / "ev", "--head", "phone", "--quiet")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    for key in ("wer", "cer", "per", "wer_char", "cer_char", "wer_phone", "utterances", "audio_seconds", "seconds"):
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
    (tmp_path / "here").mkdir()
    r = asr("demo", "--decoder", "greedy", cwd=tmp_path / "here")  # without --out: the transcripts and scores, no files left behind
    assert r.returncode == 0 and "WER" in r.stdout and list((tmp_path / "here").iterdir()) == [], r.stderr


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
    assert r.returncode == 2 and r.stderr.strip() == f"error: {config}: unknown [model] option 'hiden'; did you mean 'hidden'?"
    # a wrong type or a missing required option: one line naming the file, before any feature is computed
    for override, message in (("epochs=ten", "training option epochs must be a number (a whole one), not 'ten'"),
                              ("lr=fast", "training option lr must be a number, not 'fast'"),
                              ("threads=true", "training option threads must be a number (a whole one), not True")):
        r = asr("train", config, "--set", override)
        assert r.returncode == 2 and r.stderr.strip() == f"error: {config}: {message}", r.stderr
    (tmp_path / "bare.toml").write_text('dev_manifest = "d.jsonl"\n')
    r = asr("train", tmp_path / "bare.toml")
    assert r.returncode == 2 and r.stderr.strip() == (f"error: {tmp_path / 'bare.toml'}: training: missing required "
                                                      f"option(s) train_manifest, out_dir")
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

    from asr.bundle import load_bundle
    from asr.cli import _bundle, build_parser
    from asr.decode import DecodingConfig

    parse = lambda *a: build_parser().parse_args(["transcribe", "x.wav", *a])  # noqa: E731
    _decoding = lambda args: (_bundle(args).head, _bundle(args).decoding)  # noqa: E731
    default = load_bundle()
    head, shipped = default.head, default.decoding
    assert _decoding(parse()) == (head, shipped)
    assert _decoding(parse("--decoder", "greedy", "--head", "phone")) == ("phone", DecodingConfig())
    head2, beam = _decoding(parse("--decoder", "beam", "--lm", "none", "--lm-weight", "3", "--joint-weight", "0"))
    # without the shipped LM, the shipped confidence calibrator does not apply
    assert beam == dataclasses.replace(shipped, decoder="beam", lm=None, lm_weight=3.0, joint_weight=0.0,
                                       calibration=None, confidence_floor=0.0)  # the floor is on its scale
    assert _decoding(parse("--lm", "other.arpa"))[1] == dataclasses.replace(shipped, lm=str(Path("other.arpa").resolve()),
                                                                           calibration=None, confidence_floor=0.0)
    assert _decoding(parse("--lm-weight", "1.5"))[1] == dataclasses.replace(shipped, lm_weight=1.5)
    assert _decoding(parse("--head", "char"))[1].calibration is None
    assert _decoding(parse("--calibration", "none"))[1] == dataclasses.replace(shipped, calibration=None,
                                                                               confidence_floor=0.0)
    assert _decoding(parse("--confidence-floor", "0"))[1] == dataclasses.replace(shipped, confidence_floor=0.0)
    assert _decoding(parse("--grammar-reject", "3"))[1] == dataclasses.replace(shipped, grammar_reject=3.0)
    assert _decoding(parse("--lm", "none", "--calibration", "c.json"))[1].calibration == str(Path("c.json").resolve())


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
    for rec in records:  # words come out, and only the given LM's
        assert rec["words"] and set(rec["text"].split()) <= vocab and all(0 <= w["confidence"] <= 1 for w in rec["words"])
    said = {Path(rec["path"]).stem: rec["text"] for rec in records}
    assert "abbey" in said["19-198-0000"] and "knit two together" in said["1737-146161-0007"]
    greedy = asr("transcribe", *files, "--decoder", "greedy").stdout.split()
    assert set(greedy) - vocab  # without that LM other words come out: the check above is the LM's doing


@pytest.mark.slow
def test_calibrate_fits_a_calibrator_that_transcribe_uses(tmp_path):
    r = asr("calibrate", "--manifest", TEST_DATA / "manifest.jsonl", "--out", tmp_path / "cal", "--workers", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["words"] > 0 and summary["non_speech_words"] >= 0 and 0 <= summary["ece"] <= 1
    cal = tmp_path / "cal" / "calibration.json"
    assert json.loads(cal.read_text())["head"] == "phone"
    # no floor: a calibrator fitted on three utterances puts words anywhere on its scale
    r = asr("transcribe", CLIP, "--format", "json", "--calibration", cal, "--confidence-floor", "0")
    assert r.returncode == 0, r.stderr
    words = json.loads(r.stdout)["words"]
    raw = json.loads(asr("transcribe", CLIP, "--format", "json", "--calibration", "none").stdout)["words"]
    assert [w["word"] for w in words] == [w["word"] for w in raw]  # the same words, other confidences
    assert [w["confidence"] for w in words] != [w["confidence"] for w in raw]


def test_calibrate_with_a_bad_decoding_file(tmp_path):
    (tmp_path / "best.json").write_text('{"head": "phone"}')
    r = asr("calibrate", "--manifest", TEST_DATA / "manifest.jsonl", "--out", tmp_path / "cal",
            "--decoding", tmp_path / "best.json")
    assert r.returncode == 2 and r.stderr.startswith(f"error: {tmp_path / 'best.json'}: not a decoding")
    assert "Traceback" not in r.stderr


def test_calibrate_decoding_file_gives_the_head_and_decoding(tmp_path, monkeypatch):
    import asr.calibrate
    from asr.cli import main

    seen = []
    monkeypatch.setattr(asr.calibrate, "calibrate", lambda manifest, out, bundle, *a, **k: seen.append(
        (bundle.head, bundle.decoding)) or {})
    (tmp_path / "best.json").write_text(json.dumps({"head": "phone", "decoding": {"decoder": "beam", "lm_weight": 2.0}}))
    assert main(["calibrate", "--manifest", "m.jsonl", "--out", str(tmp_path), "--decoding",
                 str(tmp_path / "best.json")]) == 0
    assert seen[-1][0] == "phone" and seen[-1][1].lm_weight == 2.0 and seen[-1][1].decoder == "beam"


def test_calibrate_into_a_bundle_records_what_fitted_it(tmp_path, monkeypatch):
    """`asr calibrate --bundle` puts the calibrator in the bundle and says in bundle.json what
    fitted it (dev figures, the L2 chosen, the corrupted copies' figures and their config)."""
    import shutil

    import asr.calibrate
    from asr.bundle import default_bundle_path, load_bundle
    from asr.cli import main

    bundle = tmp_path / "b"
    shutil.copytree(default_bundle_path(), bundle, ignore=shutil.ignore_patterns("samples"))
    summary = {"manifest": "m.jsonl", "words": 10, "auc": 0.9, "ece": 0.01, "l2": 0.001,
               "corrupted": {"auc": 0.8, "ece": 0.02}, "right": 7}

    def fit(manifest, out, b, *a, **k):
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(default_bundle_path() / "calibration.json", Path(out) / "calibration.json")
        return summary

    monkeypatch.setattr(asr.calibrate, "calibrate", fit)
    toml = Path(__file__).parents[1] / "recipes" / "librispeech" / "conf" / "finetune-augment.toml"
    assert main(["calibrate", "--manifest", "m.jsonl", "--out", str(tmp_path / "cal"), "--bundle", str(bundle),
                 "--augment", str(toml)]) == 0
    record = json.loads((bundle / "bundle.json").read_text())["produced_by"]["calibration"]
    assert record == {**{k: summary[k] for k in ("manifest", "words", "auc", "ece", "l2", "corrupted")},
                      "augment": str(toml)}
    assert load_bundle(bundle).streaming is not None  # the bundle's streaming settings stay


@pytest.mark.slow
def test_min_confidence_option(tmp_path):
    r = asr("transcribe", CLIP, "--min-confidence", "2")
    assert r.returncode == 2 and "--min-confidence must lie in [0, 1]" in r.stderr
    everything = asr("transcribe", CLIP).stdout.split()
    nothing = asr("transcribe", CLIP, "--min-confidence", "1").stdout.split()
    assert everything and len(nothing) < len(everything)


# --- bad input at scale (README "What happens to bad input") ---------------------------------

def _bad_input_folder(d):
    """A folder of every kind of file users feed; returns {name: the error's reason, or None if the file is usable}."""
    import torch
    import torchaudio

    y, _ = sf.read(CLIP, dtype="float32")  # 16 kHz speech
    d.mkdir()
    kinds = {}

    def put(name, make, reason=None):
        make(d / name)
        kinds[name] = reason

    def encoded(fmt, **kw):
        tmp = d.parent / f"tmp.{fmt}"
        sf.write(tmp, y, 16000, **kw)
        data = tmp.read_bytes()
        tmp.unlink()
        return data

    wav, flac, opus = encoded("wav", subtype="PCM_16"), encoded("flac"), CLIP.read_bytes()
    rng = np.random.default_rng(0)
    put("good.opus", lambda p: p.write_bytes(opus))
    put("empty.wav", lambda p: p.write_bytes(b""), "file is empty")
    put("truncated.flac", lambda p: p.write_bytes(flac[: len(flac) // 3]), "not readable as audio")
    put("truncated.opus", lambda p: p.write_bytes(opus[: len(opus) // 3]), "not readable as audio")
    put("truncated.wav", lambda p: p.write_bytes(wav[: len(wav) // 3]), "truncated")
    put("text.flac", lambda p: p.write_text("hello, I am not audio\n"), "not readable as audio")
    put("zero-length.wav", lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "zero length")
    put("one-sample.wav", lambda p: sf.write(p, np.array([0.1], np.float32), 16000), "audio too short")
    bad = np.arange(len(y)) == 100
    put("nan.wav", lambda p: sf.write(p, np.where(bad, np.nan, y).astype(np.float32), 16000, subtype="FLOAT"), "NaN")
    put("inf.wav", lambda p: sf.write(p, np.where(bad, np.inf, y).astype(np.float32), 16000, subtype="FLOAT"),
        "infinite")
    put("silence-10min.flac", lambda p: sf.write(p, np.zeros(16000 * 600, np.float32), 16000))
    put("clipped-noise.wav", lambda p: sf.write(p, np.clip(rng.normal(0, 3, 16000 * 5), -1, 1), 16000))
    put("pcm-u8.wav", lambda p: sf.write(p, y, 16000, subtype="PCM_U8"))
    put("pcm-24.wav", lambda p: sf.write(p, y, 16000, subtype="PCM_24"))
    put("float32.wav", lambda p: sf.write(p, y, 16000, subtype="FLOAT"))
    put("rate-8k.wav", lambda p: sf.write(p, y[::2], 8000))
    y48 = torchaudio.functional.resample(torch.from_numpy(y), 16000, 48000).numpy()
    put("rate-48k.flac", lambda p: sf.write(p, y48, 48000))
    put("six-channels.wav", lambda p: sf.write(p, np.stack([y] * 6, 1), 16000))
    put("name with spaces.wav", lambda p: sf.write(p, y, 16000))
    put("ünïcödé-名前.wav", lambda p: sf.write(p, y, 16000))
    put("-leading-dash.wav", lambda p: sf.write(p, y, 16000))
    put("loop.wav", lambda p: os.symlink(p.name, p), "symbolic link loop")
    put("dangling.wav", lambda p: os.symlink("nowhere.wav", p), "broken symbolic link")
    put("unreadable.wav", lambda p: (sf.write(p, y, 16000), os.chmod(p, 0)), "permission denied")
    (d / "folder.wav").mkdir()  # a folder is searched, not transcribed: no record
    sf.write(d / "folder.wav" / "inside.wav", y, 16000)
    kinds["folder.wav/inside.wav"] = None
    return kinds


def _without_root_reading():
    """A child's ``preexec_fn`` that, when we are root, drops the capabilities that let root read
    any file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from what it will exec, so that a file
    without read permission is unreadable to it as to any user."""
    if os.geteuid() != 0:
        return None

    def drop():
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    return drop


def _tree(root, skip):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if skip not in p.parents and p != skip)


@pytest.mark.slow
def test_bad_input_matrix_transcribe_and_evaluate(tmp_path):
    """Every kind of file in README's "What happens to bad input", through `asr transcribe DIR
    --out OUT` and `asr evaluate`: one record per input, errors naming the file and the reason,
    no traceback, exit status 1, nothing written outside OUT, good files as if alone."""
    root = tmp_path
    d = root / "files"
    kinds = _bad_input_folder(d)
    (root / "list.txt").write_text("files/good.opus\nfiles/missing.wav\n")  # good.opus again: one record
    (root / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "files/good.opus", "text": "northanger abbey"}) + "\n"
                                  + json.dumps({"id": "b", "audio": "files/gone.wav", "text": "x"}) + "\n")
    (root / "bad.jsonl").write_text(json.dumps({"id": "a", "audio": "files/good.opus", "text": "x"}) + "\n{not json\n")
    cwd, out = root / "cwd", root / "out"
    cwd.mkdir()
    before = _tree(root, out)
    env = {**ENV, "HOME": str(cwd)}
    run = lambda *args: subprocess.run([sys.executable, "-m", "asr.cli", *map(str, args)], capture_output=True,  # noqa: E731
                                       text=True, env=env, cwd=cwd, timeout=600, preexec_fn=_without_root_reading())
    r = run("transcribe", d, f"@{root / 'list.txt'}", root / "m.jsonl", "--out", out, "--format", "txt,json")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    expected = {str(d / name): reason for name, reason in kinds.items()}
    expected[str(d / "missing.wav")] = "file not found"
    expected[str(d / "gone.wav")] = "file not found"
    records = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["path"] for r in records) == sorted(expected)  # one record per input, the same file once
    for rec in records:
        reason = expected[rec["path"]]
        if reason is None:
            assert rec["error"] is None, rec
        else:
            assert rec["error"].startswith(f"{rec['path']}: ") and reason in rec["error"], rec
    by_path = {rec["path"]: rec for rec in records}
    silence, noise = by_path[str(d / "silence-10min.flac")], by_path[str(d / "clipped-noise.wav")]
    assert silence["duration"] == 600.0 and silence["words"] == []
    assert all(w["confidence"] < 0.5 for w in noise["words"]), noise["words"]
    failed = sum(reason is not None for reason in expected.values())
    assert f"{failed} failed" in r.stderr
    assert _tree(root, out) == before  # nothing written outside OUT
    alone = run("transcribe", d / "good.opus").stdout.strip()
    assert by_path[str(d / "good.opus")]["text"] == alone and alone  # as if alone
    for name in ("float32.wav", "pcm-24.wav", "name with spaces.wav", "ünïcödé-名前.wav", "-leading-dash.wav",
                 "six-channels.wav", "folder.wav/inside.wav"):
        assert by_path[str(d / name)]["text"] == by_path[str(d / "float32.wav")]["text"], name

    # A manifest with a line that is not JSON: nothing is run; the error names the file and line.
    r = run("transcribe", root / "bad.jsonl", "--out", root / "out2")
    assert r.returncode == 2 and r.stderr.strip() == f"error: {root / 'bad.jsonl'}:2: not valid JSON" + \
        r.stderr.strip().split("not valid JSON", 1)[1] and "Traceback" not in r.stderr
    r = run("evaluate", "--manifest", root / "bad.jsonl", "--out", root / "ev-bad")
    assert r.returncode == 2 and f"{root / 'bad.jsonl'}:2: not valid JSON" in r.stderr

    # asr evaluate: bad utterances recorded with their error and left out of the scores.
    lines = [{"id": "good", "audio": str(d / "good.opus"), "text": "northanger abbey"}]
    lines += [{"id": name, "audio": str(d / name), "text": "x"}
              for name, reason in kinds.items() if reason is not None]
    lines += [{"id": "missing", "audio": str(d / "missing.wav"), "text": "x"}]
    (root / "ev.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (root / "ev-good.jsonl").write_text(json.dumps(lines[0]) + "\n")
    r = run("evaluate", "--manifest", root / "ev.jsonl", "--out", root / "ev", "--quiet", "--workers", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    summary = json.loads((root / "ev" / "summary.json").read_text())
    assert summary["utterances"] == 1 and sorted(f["id"] for f in summary["failed"]) == sorted(x["id"] for x in lines[1:])
    assert all(f["error"].startswith(f["audio"] + ": ") for f in summary["failed"])
    assert sum(line.startswith("error: ") for line in r.stderr.splitlines()) == len(lines) - 1
    alone = run("evaluate", "--manifest", root / "ev-good.jsonl", "--out", root / "ev-good", "--quiet", "--workers", "1")
    assert alone.returncode == 0, alone.stderr
    assert json.loads((root / "ev-good" / "summary.json").read_text())["wer"] == summary["wer"]


def _peak_rss_mb(*args) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``asr ARGS`` under a fresh parent that reports the largest resident set of its descendants."""
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")
    r = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "asr.cli", *map(str, args)],
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    *rest, peak_kb = r.stderr.strip().splitlines()
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout, "\n".join(rest)), int(peak_kb) / 1024


@pytest.mark.slow
def test_two_hour_file(tmp_path):
    """Two hours in one file (speech, then silence): read and recognised window by window, in
    the memory of a one-minute file."""
    y, _ = sf.read(CLIP, dtype="float32")
    with sf.SoundFile(tmp_path / "two-hours.flac", "w", 8000, 1) as f:  # 8 kHz keeps it small
        f.write(y[::2])
        for _ in range(120):  # minutes
            f.write(np.zeros(8000 * 60, np.float32))
    short = np.zeros(8000 * 60, np.float32)
    short[: len(y[::2])] = y[::2]
    sf.write(tmp_path / "one-minute.flac", short, 8000)
    _, minute_mb = _peak_rss_mb("transcribe", tmp_path / "one-minute.flac", "--workers", "1")
    r, hours_mb = _peak_rss_mb("transcribe", tmp_path / "two-hours.flac", "--out", tmp_path / "out", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert hours_mb < minute_mb + 150, (hours_mb, minute_mb)  # 120 x the audio, not 120 x the memory
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert record["error"] is None and record["duration"] == pytest.approx(7200 + len(y) / 16000, abs=0.01)
    # The speech is read as in a file of its first window alone (the bidirectional RNN hears the
    # silence after the speech in both; run 9's model reads the speech without it as "no" where
    # it hears "nor"), and two hours of digital silence give no words.
    first = np.zeros(int(8000 * CHUNK_SECONDS), np.float32)
    first[: len(y[::2])] = y[::2]
    sf.write(tmp_path / "first-window.flac", first, 8000)
    assert record["text"] == asr("transcribe", tmp_path / "first-window.flac").stdout.strip()


def test_option_errors_come_before_torch_is_imported():
    """A bad format, shard or worker count, or inputs that are all missing, are reported at once,
    without importing torch or loading the model (`benchmarks/startup.py`: 0.04 s)."""
    probe = ("import sys; from asr.cli import main; rc = main(sys.argv[1:]); "
             "print(rc, 'torch' in sys.modules)")
    for args, message in ((["--format", "nonsense"], "unknown format 'nonsense'; choose from txt, json, jsonl, srt, vtt, ctm"),
                          (["--format", "srt,txt"], "several formats (srt,txt) need --out DIR"),
                          (["--shard", "4/3"], "--shard 4/3: K must lie in 1..N"),
                          (["--workers", "-1"], "--workers must be 0 (all in this process) or more, not -1")):
        r = subprocess.run([sys.executable, "-c", probe, "transcribe", str(CLIP), *args], capture_output=True, text=True)
        assert r.stdout.split() == ["2", "False"], (args, r.stderr)  # exit status 2, torch never imported
        assert r.stderr.startswith(f"error: {message}") and len(r.stderr.splitlines()) == 1, (args, r.stderr)
    for inputs, message in ((["/nonexistent/x.wav"], "/nonexistent/x.wav: file not found"),
                            ([str(CLIP.parent / "no-such-folder")], f"{CLIP.parent / 'no-such-folder'}: file not found")):
        r = subprocess.run([sys.executable, "-c", probe, "transcribe", *inputs], capture_output=True, text=True)
        assert r.stdout.split() == ["2", "False"] and r.stderr == f"error: {message}\n", (inputs, r.stderr)
    r = asr("--version")
    assert r.returncode == 0 and r.stdout.startswith("asr ")


def test_several_files_on_stdout_parse(tmp_path):
    files = sorted(TEST_DATA.glob("*.opus"))[:2]
    r = asr("transcribe", *files, "--format", "json", "--decoder", "greedy")
    assert r.returncode == 0, r.stderr
    assert [t["path"] for t in json.loads(r.stdout)] == [str(f) for f in files]  # json: one document, an array
    r = asr("transcribe", *files, "--format", "jsonl", "--decoder", "greedy")
    assert [json.loads(line)["path"] for line in r.stdout.splitlines()] == [str(f) for f in files]  # JSON lines
    r = asr("transcribe", *files, "--format", "srt")
    assert r.returncode == 2 and r.stdout == "" and "2 files as srt need --out DIR" in r.stderr
    r = asr("transcribe", tmp_path / "nope.wav", tmp_path / "nope2.wav")
    assert r.returncode == 2 and r.stderr.splitlines() == [f"error: {tmp_path / 'nope.wav'}: file not found",
                                                           f"error: {tmp_path / 'nope2.wav'}: file not found"]


def test_every_option_has_help_text():
    import argparse

    from asr.cli import build_parser

    missing = []

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, p in action.choices.items():
                    walk(p, f"{name} {sub}")
            elif action.help is None:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "asr")
    assert missing == []


def test_an_empty_folder_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    r = asr("transcribe", tmp_path / "empty")
    assert r.returncode == 2 and r.stderr.strip() == f"error: no audio files found in {tmp_path / 'empty'}"


@pytest.mark.parametrize("option,value", [
    ("--beam-size", "0"), ("--beam-size", "-1"), ("--beam-threshold", "-1"), ("--beam-threshold", "0"),
    ("--lm-weight", "nan"), ("--lm-weight", "inf"), ("--word-score", "nan"), ("--joint-weight", "-0.5"),
    ("--blank-skip", "0"), ("--blank-skip", "1.5"), ("--history-steps", "-3"), ("--history-steps", "1")])
def test_an_impossible_decoding_value_is_refused_in_one_line_naming_the_option(option, value, capsys):
    """Every numeric decoding option is checked where the config is made (DecodingConfig), before
    any audio is read: never an empty transcript with exit status 0."""
    from asr.cli import main

    assert main(["transcribe", str(TEST_DATA / "19-198-0000.opus"), option, value]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and option in err and "Traceback" not in err


def test_out_naming_a_file_is_refused_before_any_work(tmp_path, capsys):
    from asr.cli import main

    taken = tmp_path / "taken"
    taken.write_text("mine\n")
    results = tmp_path / "results.jsonl"
    results.write_text('{"id": "a", "ref": "x y", "hyp": "x"}\n')
    for args in (["transcribe", str(TEST_DATA / "19-198-0000.opus"), "--out", str(taken)],
                 ["evaluate", "--manifest", str(TEST_DATA / "manifest.jsonl"), "--out", str(taken), "--decoder", "greedy"],
                 ["report", str(results), "--out", str(taken)],
                 ["tune", "--manifest", str(TEST_DATA / "manifest.jsonl"), "--out", str(taken)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err == f"error: {taken}: exists and is not a folder (--out names the folder to write into)\n", args
    assert taken.read_text() == "mine\n"


def test_evaluate_into_a_folder_of_another_evaluation_is_refused(tmp_path, capsys):
    from asr.cli import main

    manifest, out = str(TEST_DATA / "manifest.jsonl"), str(tmp_path / "ev")
    assert main(["evaluate", "--manifest", manifest, "--out", out, "--decoder", "greedy", "--quiet"]) == 0
    before = (tmp_path / "ev" / "results.jsonl").read_text()
    capsys.readouterr()
    assert main(["evaluate", "--manifest", manifest, "--out", out, "--decoder", "greedy", "--head", "char"]) == 2
    err = capsys.readouterr().err
    assert "its results were made with other options (another head" in err and len(err.splitlines()) == 1
    assert (tmp_path / "ev" / "results.jsonl").read_text() == before
    assert main(["evaluate", "--manifest", manifest, "--out", out, "--decoder", "greedy", "--quiet"]) == 0  # the same: again


def test_report_of_results_with_no_utterance_in_common_says_so(tmp_path, capsys):
    from asr.cli import main

    (tmp_path / "a.jsonl").write_text('{"id": "a", "ref": "x y", "hyp": "x"}\n')
    (tmp_path / "b.jsonl").write_text('{"id": "b", "ref": "x y", "hyp": "x y"}\n')
    assert main(["report", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--out", str(tmp_path / "r")]) == 2
    assert "have no utterance id in common" in capsys.readouterr().err and not (tmp_path / "r").exists()



def test_tune_calibrate_and_report_follow_the_rule_of_output_folders(tmp_path, capsys, monkeypatch):
    """The same options again are welcome; other options into the same folder are refused in one line
    before any work, never overwriting what is there (asr.transcribe.claim_output_folder)."""
    import asr.transcribe
    from asr.cli import main

    (tmp_path / "a.jsonl").write_text('{"id": "a", "ref": "x y", "hyp": "x"}\n')
    (tmp_path / "b.jsonl").write_text('{"id": "a", "ref": "x y", "hyp": "x y"}\n')
    rep = str(tmp_path / "rep")
    assert main(["report", str(tmp_path / "a.jsonl"), "--out", rep]) == 0
    assert main(["report", str(tmp_path / "a.jsonl"), "--out", rep]) == 0  # the same again
    capsys.readouterr()
    assert main(["report", str(tmp_path / "b.jsonl"), "--out", rep]) == 2
    assert "its results were made with other options (another results" in capsys.readouterr().err
    manifest = str(TEST_DATA / "manifest.jsonl")
    tune = ["tune", "--manifest", manifest, "--out", str(tmp_path / "tune"), "--lm", "none", "--beam-size", "5"]
    monkeypatch.setattr(asr.transcribe, "item_outputs", lambda *a, **k: (_ for _ in ()).throw(AssertionError("worked")))
    with pytest.raises(AssertionError, match="worked"):  # claimed, then the work starts
        main(tune)
    capsys.readouterr()
    assert main(tune[:-1] + ["6"]) == 2  # another beam: refused before any work
    assert "another decoding.beam_size" in capsys.readouterr().err


CLIP_PATH = str(CLIP)
MANIFEST = str(TEST_DATA / "manifest.jsonl")


@pytest.mark.parametrize("args", [
    ["transcribe", CLIP_PATH, "--min-confidence", "nan"], ["transcribe", CLIP_PATH, "--min-confidence", "2"],
    ["transcribe", CLIP_PATH, "--workers", "-2"], ["transcribe", CLIP_PATH, "--shard", "0/3"],
    ["transcribe", CLIP_PATH, "--confidence-floor", "1"], ["transcribe", CLIP_PATH, "--calibration", "none", "--confidence-floor", "0.1"],
    ["evaluate", "--manifest", MANIFEST, "--workers", "-1"], ["evaluate", "--manifest", MANIFEST, "--beam-size", "-1"],
    ["tune", "--manifest", MANIFEST, "--lm-weights", "nan"], ["tune", "--manifest", MANIFEST, "--joint-weights", "-1"],
    ["tune", "--manifest", MANIFEST, "--workers", "-1"],
    ["stream", CLIP_PATH, "--chunk", "0"], ["stream", CLIP_PATH, "--chunk", "nan"], ["stream", CLIP_PATH, "--chunk", "inf"],
    ["stream", CLIP_PATH, "--right-context", "-1"], ["stream", CLIP_PATH, "--right-context", "inf"],
    ["stream", CLIP_PATH, "--endpoint-silence", "nan"], ["stream", CLIP_PATH, "--rate", "0"], ["stream", CLIP_PATH, "--duration", "3"],
    ["stream", CLIP_PATH, "--beam-size", "0"]], ids=lambda a: " ".join(a[:1] + a[-2:]).replace(CLIP_PATH, "clip"))
def test_every_command_refuses_an_impossible_value_in_one_line_before_any_work(args, tmp_path, capsys):
    from asr.cli import main

    if args[0] in ("evaluate", "tune"):
        args = args + ["--out", str(tmp_path / "out")]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "out" / "results.jsonl").exists() and not (tmp_path / "out" / "grid.tsv").exists()
