import json

import numpy as np
import pytest
import soundfile as sf

from asr.manifest import ManifestError, Utterance, prepare_folder, prepare_librispeech, read_manifest, write_manifest
from conftest import LIBRISPEECH, TEST_DATA, needs_librispeech


def _fake_librispeech(root):
    chapter = root / "train-x" / "11" / "22"
    chapter.mkdir(parents=True)
    for i, n in enumerate([8000, 12000]):
        sf.write(chapter / f"11-22-000{i}.flac", np.zeros(n, np.float32) + 0.01, 16000)
    (chapter / "11-22-0002.flac").write_bytes(b"")  # broken audio
    (chapter / "11-22-0003.wav").write_bytes(b"RIFF")  # no transcript either
    (chapter / "11-22.trans.txt").write_text("11-22-0000 HELLO WORLD\n11-22-0001 IT'S ME\n11-22-0002 BROKEN\n11-22-0004 NO AUDIO\n")
    return root


def test_prepare_librispeech_reports_problems(tmp_path):
    report = prepare_librispeech(_fake_librispeech(tmp_path / "ls"), "train-x", tmp_path / "m.jsonl")
    utts = read_manifest(tmp_path / "m.jsonl")
    assert [u.id for u in utts] == ["11-22-0000", "11-22-0001"] and report.utterances == 2
    assert utts[0].text == "hello world" and utts[1].speaker == "11" and utts[0].duration == 0.5
    problems = "\n".join(report.problems)
    assert "11-22-0002.flac: file is empty" in problems
    assert "no audio file for 11-22-0004" in problems
    assert "11-22-0003.wav: no transcript" in problems


def test_prepare_missing_subset(tmp_path):
    with pytest.raises(ManifestError, match="subset folder not found"):
        prepare_librispeech(tmp_path, "train-clean-100", tmp_path / "m.jsonl")


def test_prepare_folder_with_and_without_header(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(4000, np.float32), 8000)
    (tmp_path / "plain.tsv").write_text("a.wav\tSeven\tbob\nmissing.wav\tone\n")
    report = prepare_folder(tmp_path, tmp_path / "plain.tsv", tmp_path / "m.jsonl")
    u = read_manifest(tmp_path / "m.jsonl")[0]
    assert (u.id, u.text, u.speaker, u.sample_rate, u.duration) == ("a", "seven", "bob", 8000, 0.5)
    assert len(report.problems) == 1 and "missing.wav: file not found" in report.problems[0]
    (tmp_path / "head.tsv").write_text("utt_id\tpath\ttranscript\nx1\ta.wav\tnine\n")
    prepare_folder(tmp_path, tmp_path / "head.tsv", tmp_path / "m2.jsonl")
    u = read_manifest(tmp_path / "m2.jsonl")[0]
    assert (u.id, u.text, u.speaker) == ("x1", "nine", "unknown")


def test_manifest_round_trip_relative_paths(tmp_path):
    (tmp_path / "audio").mkdir()
    utts = [Utterance("u1", str(tmp_path / "audio" / "u1.wav"), 1.25, "a b", "s1", 16000)]
    write_manifest(utts, tmp_path / "m.jsonl")
    assert json.loads((tmp_path / "m.jsonl").read_text())["audio"] == "audio/u1.wav"
    assert read_manifest(tmp_path / "m.jsonl") == utts


@pytest.mark.parametrize("line,problem", [
    ("not json", "m.jsonl:2: not valid JSON"),
    ('{"id": "x"}', "m.jsonl:2: missing field(s) audio, text"),
    ('{"id": "u", "audio": "a", "duration": 1, "text": "", "speaker": "s"}', "m.jsonl:2: duplicate id 'u'"),
])
def test_bad_manifest_names_line(tmp_path, line, problem):
    good = '{"id": "u", "audio": "a", "duration": 1, "text": "", "speaker": "s"}'
    (tmp_path / "m.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(ManifestError) as e:
        read_manifest(tmp_path / "m.jsonl")
    assert problem in str(e.value)


def test_minimal_manifest_reads_duration_from_the_file_and_defaults_the_speaker(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "u", "audio": str(TEST_DATA / "19-198-0000.opus"),
                                                  "text": "Northanger Abbey"}) + "\n")
    u = read_manifest(tmp_path / "m.jsonl")[0]
    assert (u.speaker, u.text, u.sample_rate) == ("unknown", "northanger abbey", 16000)
    assert u.duration == pytest.approx(1.965, abs=1e-3)  # the full manifest's figure for this clip


@needs_librispeech
def test_prepare_real_librispeech_dev(tmp_path):
    report = prepare_librispeech(LIBRISPEECH, "test-clean", tmp_path / "dev.jsonl")
    assert report.utterances == 719 and not report.problems
    assert 1.3 < report.hours < 1.4


def test_manifests_take_path_for_audio_and_transcribe_needs_only_the_audio(tmp_path):
    import pytest

    from asr.manifest import ManifestError, read_manifest
    from asr.io import manifest_audio

    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "m.jsonl").write_text('{"id": "u1", "path": "a.wav", "text": "Hi", "duration": 1.0}\n')
    (u,) = read_manifest(tmp_path / "m.jsonl")
    assert u.audio == str(tmp_path / "a.wav") and u.text == "hi"
    (tmp_path / "t.jsonl").write_text('{"path": "a.wav"}\n{"audio": "/x/b.flac"}\n')
    assert manifest_audio(tmp_path / "t.jsonl") == [str(tmp_path / "a.wav"), "/x/b.flac"]
    (tmp_path / "bad.jsonl").write_text('{"path": "a.wav"}\n{"id": "x"}\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl:2: no audio file \('audio' or 'path'\)"):
        manifest_audio(tmp_path / "bad.jsonl")
    with pytest.raises(ManifestError, match=r"bad.jsonl:1: missing field\(s\) id, text"):
        read_manifest(tmp_path / "bad.jsonl")
