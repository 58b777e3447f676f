"""asr download: against a local HTTP server that serves a small archive in LibriSpeech's layout,
answers range requests, and can break a transfer half-way."""

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr import download
from asr.cli import main
from asr.download import DownloadError, download_librispeech
from asr.manifest import prepare_librispeech


def _archive(subset: str, evil: bool = False) -> bytes:
    """``LibriSpeech/SUBSET/19/198/`` with two utterances and their transcript, as OpenSLR packs it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        folder = f"LibriSpeech/{subset}/19/198"
        for k in range(2):
            wav = io.BytesIO()
            sf.write(wav, np.sin(np.arange(8000) * 0.05 * (k + 1)).astype(np.float32) * 0.1, 16000, format="FLAC")
            add(f"{folder}/19-198-000{k}.flac", wav.getvalue())
        add(f"{folder}/19-198.trans.txt", b"19-198-0000 HELLO WORLD\n19-198-0001 GOOD MORNING\n")
        if evil:
            add("../outside.txt", b"should never be written")
    return buf.getvalue()


class Server:
    """Serves ``files`` (name -> bytes) with range requests; ``cut[name] = n`` sends n bytes of the
    next full response and then drops the connection; every request's Range header is logged."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ranges: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.ranges.append(self.headers.get("Range"))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                first = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                if first >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206 if first else 200)
                self.send_header("Content-Length", str(len(data) - first))
                self.end_headers()
                body = data[first:]
                if name in server.cut:
                    body = body[:server.cut.pop(name)]
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/resources/12"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


def test_official_archive_names():
    assert download.archive_url("train-clean-100") == "https://www.openslr.org/resources/12/train-clean-100.tar.gz"
    assert download.archive_url("train-clean-5") == "https://www.openslr.org/resources/31/train-clean-5.tar.gz"
    assert download.archive_url("dev-clean", "http://mirror/x/") == "http://mirror/x/dev-clean.tar.gz"
    with pytest.raises(DownloadError, match="unknown LibriSpeech subset 'train-clean-99'"):
        download.archive_url("train-clean-99")


def test_an_interrupted_download_resumes_is_checked_unpacked_and_prepared(server, tmp_path, monkeypatch):
    data = _archive("dev-clean")
    monkeypatch.setitem(download.SHA256, "dev-clean", hashlib.sha256(data).hexdigest())
    server.files["dev-clean.tar.gz"] = data
    server.cut["dev-clean.tar.gz"] = len(data) // 2
    with pytest.raises(DownloadError, match="the same command goes on from there"):
        download_librispeech("dev-clean", tmp_path, server.url)
    part = tmp_path / "dev-clean.tar.gz.part"
    assert part.stat().st_size == len(data) // 2
    got = download_librispeech("dev-clean", tmp_path, server.url)  # goes on from the half it has
    assert server.ranges == [None, f"bytes={len(data) // 2}-"]
    assert (got.resumed_from, got.checked, got.sha256) == (len(data) // 2, True, hashlib.sha256(data).hexdigest())
    assert not part.exists() and not (tmp_path / "dev-clean.tar.gz").exists()  # the archive goes once unpacked
    report = prepare_librispeech(tmp_path / "LibriSpeech", "dev-clean", tmp_path / "dev.jsonl")
    assert report.utterances == 2 and not report.problems
    again = download_librispeech("dev-clean", tmp_path, server.url)  # done: nothing fetched
    assert again.resumed_from == -1 and len(server.ranges) == 2


def test_a_damaged_archive_is_refused_and_removed(server, tmp_path, monkeypatch):
    data = _archive("dev-clean")
    monkeypatch.setitem(download.SHA256, "dev-clean", hashlib.sha256(data).hexdigest())
    server.files["dev-clean.tar.gz"] = data[:-10] + b"0123456789"
    with pytest.raises(DownloadError, match="is not the expected"):
        download_librispeech("dev-clean", tmp_path, server.url)
    assert list(tmp_path.iterdir()) == []  # nothing unpacked, nothing to resume from


def test_an_archive_reaching_outside_the_folder_is_refused(server, tmp_path):
    server.files["train-clean-5.tar.gz"] = _archive("train-clean-5", evil=True)
    with pytest.raises(DownloadError, match="refused to unpack"):
        download_librispeech("train-clean-5", tmp_path / "out", server.url)
    assert not (tmp_path / "outside.txt").exists()


def test_cli_downloads_subsets_and_reports_the_digest_of_unpublished_ones(server, tmp_path, capsys):
    data = _archive("train-clean-5")
    server.files["train-clean-5.tar.gz"] = data
    assert main(["download", "librispeech", "train-clean-5", "--out", str(tmp_path), "--base-url", server.url,
                 "--keep-archive"]) == 0
    out = capsys.readouterr().out
    assert f"no published checksum: SHA-256 {hashlib.sha256(data).hexdigest()}" in out
    assert (tmp_path / "train-clean-5.tar.gz").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "LibriSpeech" / "train-clean-5" / "19" / "198").iterdir()) == [
        "19-198-0000.flac", "19-198-0001.flac", "19-198.trans.txt"]
    assert main(["download", "librispeech", "dev-other", "--out", str(tmp_path), "--base-url", server.url]) == 2
    assert "dev-other.tar.gz: HTTP 404" in capsys.readouterr().err


def test_recipe_stage_0_fetches_the_subsets_its_config_names(server, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO

    for subset in ("train-clean-5", "dev-clean", "test-clean"):
        server.files[f"{subset}.tar.gz"] = _archive(subset)
    config = tmp_path / "c.toml"
    config.write_text('train_manifest = "data/x/train-clean-5.jsonl"\ndev_manifest = "data/x/dev.jsonl"\n'
                      'out_dir = "exp/x"\n')
    sums = tmp_path / "SHA256SUMS"  # the mirror's own archives: their digests, in sha256sum's format
    sums.write_text("".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in server.files.items()))
    env = {**os.environ, "MIRROR": server.url, "CHECKSUMS": str(sums), "CMUDICT": "unused",
           "ASR": str(Path(sys.executable).parent / "asr")}
    done = subprocess.run(["bash", str(REPO / "recipes/librispeech/run.sh"), str(tmp_path / "LibriSpeech"), str(config),
                           "0", "0"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stage 0: download train-clean-5 dev-clean test-clean" in done.stdout
    assert all((tmp_path / "LibriSpeech" / s / download.STAMP).is_file() for s in ("train-clean-5", "dev-clean", "test-clean"))
