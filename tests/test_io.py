"""File helpers: atomic writes, JSONL, gzip-aware opening, audio files."""

import os

import pytest
import torch

from asr.io import atomic_torch_save, atomic_write_text, is_audio_file, open_text, read_jsonl, write_jsonl


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(path, "first\n")
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_torch_save({"x": Unsaveable()}, path)
    assert path.read_text() == "second\n"  # the old file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]  # no temporary left behind
    atomic_torch_save({"w": torch.ones(2)}, tmp_path / "w.pt")
    assert torch.equal(torch.load(tmp_path / "w.pt", weights_only=True)["w"], torch.ones(2))


def test_jsonl_round_trip_and_errors_name_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    write_jsonl(path, [{"id": "a", "text": "ü"}, {"id": "b", "text": "x"}])
    assert "ü" in path.read_text(encoding="utf-8")  # not escaped
    assert read_jsonl(path, ("id",), ValueError, "manifest") == [(1, {"id": "a", "text": "ü"}), (2, {"id": "b", "text": "x"})]
    for line, message in (("{oops", "2: not valid JSON"), ("[1, 2]", "2: expected a JSON object, not list"),
                          ('{"text": "x"}', "2: missing field(s) id")):
        path.write_text('{"id": "a"}\n' + line + "\n")
        with pytest.raises(ValueError, match=rf"m\.jsonl:{message[0]}") as e:
            read_jsonl(path, ("id",), ValueError, "manifest")
        assert message in str(e.value)
    with pytest.raises(ValueError, match="none.jsonl: manifest not found"):
        read_jsonl(tmp_path / "none.jsonl", ("id",), ValueError, "manifest")


def test_open_text_reads_and_writes_gzip_by_name(tmp_path):
    for name in ("t.txt", "t.txt.gz"):
        with open_text(tmp_path / name, "w") as f:
            f.write("héllo\n")
        with open_text(tmp_path / name) as f:
            assert f.read() == "héllo\n"
    assert (tmp_path / "t.txt.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_audio_files_are_files_with_an_audio_extension(tmp_path):
    (tmp_path / "a.FLAC").write_bytes(b"")
    (tmp_path / "b.txt").write_bytes(b"")
    (tmp_path / "x.wav").mkdir()  # a folder named like audio is not a file
    assert [is_audio_file(tmp_path / n) for n in ("a.FLAC", "b.txt", "x.wav", "none.wav")] == [True, False, False, False]
