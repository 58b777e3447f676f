"""`asr serve` (asr.serve): a real server in a subprocess, reached by the clients people use: the
official `openai` client, a vosk-server WebSocket client, raw HTTP for the faults, Chromium for the page."""

import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asr
from asr.errors import ConfigError, UserError
from asr.features import load_audio
from asr.serve import ServerConfig, VoskSession, _vosk_config
from asr.transcribe import format_transcript

openai = pytest.importorskip("openai", reason="the openai client (pip install -e '.[test]')")
ws_client = pytest.importorskip("websockets.sync.client", reason="websockets (pip install -e '.[serve]')")

SAMPLES = Path("asr/assets/samples")
CLIPS = [SAMPLES / "1580-141083-0025.opus", SAMPLES / "2300-131720-0008.opus", SAMPLES / "672-122797-0060.opus"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`asr serve` with some options, in a subprocess, until stopped."""

    def __init__(self, *options: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "asr.cli", "serve", "--port", str(self.port), *options],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=os.environ | (env or {}))
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1).read()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"asr serve did not start: {self.process.communicate()[1]}")
                time.sleep(0.1)

    def health(self, workers: bool = False) -> dict:
        return json.loads(urllib.request.urlopen(self.url + "/health" + "?workers=1" * workers, timeout=5).read())

    def stop(self, sig=signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(sig)
        _, err = self.process.communicate(timeout=60)
        return self.process.returncode, err


@pytest.fixture(scope="module")
def server():
    s = Server("--workers", "2", "--max-upload-mb", "4")
    yield s
    code, err = s.stop()
    assert code == 0 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def recognizer():
    return asr.load()


def client(server, key: str = "-"):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def post(server, data: bytes, headers: dict, path: str = "/v1/audio/transcriptions") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(server.url + path, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def multipart(fields: dict[str, str], file: bytes, name: str = "clip.wav") -> tuple[bytes, dict]:
    b = "asrboundary42"
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + file + b"\r\n")
    return b"".join(parts) + f"--{b}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={b}"}


# -- the OpenAI API ------------------------------------------------------------------------


def test_openai_client_gets_the_cli_text_in_every_format(server, recognizer, tmp_path):
    c = client(server)
    assert [m.id for m in c.models.list().data] == ["asr"]
    for clip in CLIPS:
        expected = recognizer.transcribe(str(clip))
        with open(clip, "rb") as f:
            assert c.audio.transcriptions.create(model="asr", file=f).text == expected.text
        # what `asr transcribe` prints, through the CLI itself, for one of them
        if clip == CLIPS[0]:
            out = subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", str(clip)], capture_output=True,
                                 text=True, check=True).stdout
            assert out.strip() == expected.text
        with open(clip, "rb") as f:
            verbose = c.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json",
                                                    timestamp_granularities=["word", "segment"], language="en")
        assert verbose.text == expected.text and verbose.duration == pytest.approx(expected.duration, abs=1e-3)
        assert [(w.word, w.start, w.end) for w in verbose.words] == [(w.word, w.start, w.end) for w in expected.words]
        assert [w.model_extra["confidence"] for w in verbose.words] == [round(w.confidence, 4) for w in expected.words]
        assert " ".join(s.text.strip() for s in verbose.segments) == expected.text
        for fmt in ("srt", "vtt", "text"):
            with open(clip, "rb") as f:
                got = c.audio.transcriptions.create(model="asr", file=f, response_format=fmt)
            assert got == format_transcript(expected, "txt" if fmt == "text" else fmt)


def test_eight_concurrent_requests_are_all_right(server, recognizer):
    expected = {str(c): recognizer.transcribe(str(c)).text for c in CLIPS}
    jobs = [CLIPS[i % len(CLIPS)] for i in range(8)]

    def one(clip):
        with open(clip, "rb") as f:
            return client(server).audio.transcriptions.create(model="asr", file=f).text

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, jobs))
    assert got == [expected[str(c)] for c in jobs]


def test_a_long_upload_is_cut_into_windows_as_the_cli_cuts_it(server, recognizer, tmp_path):
    # 70 s: three windows, which the server batches with other requests' windows and joins
    wav = np.concatenate([load_audio(c) for c in CLIPS] * 5)
    path = tmp_path / "long.wav"
    sf.write(path, wav, 16000, subtype="PCM_16")
    expected = recognizer.transcribe(str(path))
    assert expected.duration > 60
    with open(path, "rb") as f:
        assert client(server).audio.transcriptions.create(model="asr", file=f).text == expected.text


@pytest.mark.parametrize("body, fields, expected", [
    (b"not audio at all" * 100, {}, "not readable as audio"),
    (b"", {}, "empty"),
    (None, {"response_format": "xml"}, "response_format 'xml'"),
    (None, {"language": "de"}, "English only"),
    (None, {"timestamp_granularities[]": "char"}, "word or segment"),
])
def test_bad_requests_get_400_with_a_json_error(server, body, fields, expected):
    audio = CLIPS[0].read_bytes() if body is None else body
    status, headers, reply = post(server, *multipart(fields, audio, "x.wav"))
    error = json.loads(reply)["error"]
    assert status == 400 and headers["content-type"] == "application/json", reply
    assert expected in error["message"] and "Traceback" not in error["message"]
    assert "asr-serve-" not in error["message"]  # the server's temporary file is not named: the upload is


def test_no_file_and_not_a_form_get_400(server):
    status, _, reply = post(server, *multipart({"model": "asr"}, b"")[:1], {"Content-Type": "text/plain"})
    assert status == 400 and "multipart field 'file'" in json.loads(reply)["error"]["message"]
    status, _, reply = post(server, b"--x\r\nbroken", {"Content-Type": "multipart/form-data; boundary=x"})
    assert status == 400 and json.loads(reply)["error"]["message"]


def test_an_upload_over_the_limit_gets_413_before_its_body_is_read(server):
    # the headers alone: a server that read the body would wait for it (and the test time out)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                  b"boundary=x\r\nContent-Length: 500000000\r\n\r\n")
        reply = b""
        while b"}}" not in reply and (data := s.recv(4096)):
            reply += data
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and "over the server's limit of 4 MB" in reply
    # a chunked body has no length: refused as soon as it passes the limit
    body, headers = multipart({}, b"\0" * 5_000_000)

    def chunks():
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    request = urllib.request.Request(server.url + "/v1/audio/transcriptions", data=chunks(), method="POST",
                                     headers=headers | {"Transfer-Encoding": "chunked"})
    try:
        urllib.request.urlopen(request, timeout=30)
        status = 200
    except urllib.error.HTTPError as e:
        status = e.code
    except (ConnectionError, urllib.error.URLError):  # the server answered and closed mid-upload
        status = 413
    assert status == 413
    assert server.health()["requests"] == 0


def test_unknown_routes_and_models_get_json_errors(server):
    with pytest.raises(openai.NotFoundError):
        client(server).models.retrieve("whisper-large")
    assert client(server).models.retrieve("asr").id == "asr"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.url + "/v2/nothing")
    assert e.value.code == 404 and json.loads(e.value.read())["error"]["type"] == "not_found_error"


def test_the_page_is_served(server):
    page = urllib.request.urlopen(server.url + "/").read().decode()
    assert "AudioWorkletNode" in page and "/v1/audio/transcriptions" in page and '{"eof" : 1}' in page


# -- vosk-server's WebSocket protocol ------------------------------------------------------


def pcm_frames(clip: Path, seconds: float = 0.2) -> list[bytes]:
    pcm = (np.clip(load_audio(clip), -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
    step = int(16000 * seconds) * 2 + 1  # odd sizes: a sample split across frames must survive
    return [pcm[i:i + step] for i in range(0, len(pcm), step)]


def vosk_run(url: str, frames: list[bytes], config: dict | None = None, path: str = "/") -> list[dict]:
    """What vosk-server's test.py does: config, the frames with a reply each, then eof."""
    with ws_client.connect(url.replace("http", "ws") + path) as ws:
        ws.send(json.dumps({"config": config or {"sample_rate": 16000}}))
        replies = []
        for frame in frames:
            ws.send(frame)
            replies.append(json.loads(ws.recv()))
        ws.send('{"eof" : 1}')
        replies.append(json.loads(ws.recv()))
    return replies


def test_vosk_client_gets_a_reply_per_frame_as_the_stream_gives_it(server, recognizer):
    frames = pcm_frames(CLIPS[1])
    session = VoskSession(recognizer, 16000)
    expected = [session.accept(f) for f in frames] + [session.finish()]
    got = vosk_run(server.url, frames)
    assert got == expected
    finals = [r for r in got if "text" in r]
    assert len(finals) >= 2 and all("result" in r for r in finals if r["text"])  # two utterances at least
    assert all(set(w) == {"conf", "start", "end", "word"} for r in finals for w in r.get("result", []))
    # the other path, words off, and audio at 8 kHz (resampled)
    assert "result" not in vosk_run(server.url, frames, {"sample_rate": 16000, "words": 0}, "/ws")[-1]
    pcm8 = (load_audio(CLIPS[0], sample_rate=8000) * 32767).astype("<i2").tobytes()
    frames8 = [pcm8[i:i + 3200] for i in range(0, len(pcm8), 3200)]
    session8 = VoskSession(recognizer, 8000)
    expected8 = [session8.accept(f) for f in frames8] + [session8.finish()]
    assert vosk_run(server.url, frames8, {"sample_rate": 8000}) == expected8
    assert "entered and took the" in expected8[-1]["text"]


def test_vosk_phrase_list_holds_the_stream_to_its_phrases(server):
    frames = pcm_frames(CLIPS[0])
    said = "the man entered and took the papers sheet by sheet from the central table"
    replies = vosk_run(server.url, frames, {"sample_rate": 16000, "phrase_list": [said, "turn on the light"]})
    assert " ".join(r["text"] for r in replies if r.get("text")) == said
    replies = vosk_run(server.url, frames, {"sample_rate": 16000, "phrase_list": ["turn on the light", "[unk]"]})
    assert [r["text"] for r in replies if r.get("text")] == []  # other speech: nothing


def test_vosk_session_reset_and_split_samples(recognizer):
    frames = pcm_frames(CLIPS[0], 0.05)  # samples split across frames
    pcm = b"".join(frames)
    stream = recognizer.stream()
    stream.accept(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768, 16000)
    expected = " ".join(seg.text for seg in stream.finish())

    def run(session):
        replies = [session.accept(f) for f in frames]
        return [r for r in replies if "text" in r]

    whole = VoskSession(recognizer, 16000)
    finals = run(whole) + [whole.finish()]
    assert " ".join(r["text"] for r in finals if r["text"]) == expected
    s = VoskSession(recognizer, 16000)
    first = run(s) + [s.reset()]
    second = run(s) + [s.finish()]
    assert first == finals and [r["text"] for r in second] == [r["text"] for r in finals]
    shift = len(pcm) // 2 / 16000  # the second run's times go on from the first's
    assert [w["start"] for r in second for w in r.get("result", [])] == \
        [round(w["start"] + shift, 3) for r in finals for w in r.get("result", [])]


def test_vosk_config_is_checked():
    assert _vosk_config({"sample_rate": 8000.0, "words": 0}, 16000, True) == (8000, False, None)
    assert _vosk_config({"phrase_list": ["yes", "no [unk]"]}, 16000, True) == (16000, True, ("yes", "no [unk]"))
    for bad in ({"sample_rate": "fast"}, {"sample_rate": -1}, {"sample_rate": 44100.5}, ["sample_rate"],
                {"phrase_list": "yes no"}, {"phrase_list": ["42"]}, {"phrase_list": []}):
        with pytest.raises(UserError):
            _vosk_config(bad, 16000, True)


def test_a_stream_that_goes_away_frees_its_recognizer_and_bad_frames_close_it(server):
    url = server.url.replace("http", "ws") + "/"
    frames = pcm_frames(CLIPS[1])
    with contextlib.suppress(Exception), ws_client.connect(url) as ws:
        for f in frames[:5]:
            ws.send(f)
            json.loads(ws.recv())
        assert sorted(server.health(workers=True)["worker_streams"]) == [0, 1]
        ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the client just vanished
    deadline = time.monotonic() + 10
    while sum(server.health(workers=True)["worker_streams"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    health = server.health(workers=True)
    assert health["worker_streams"] == [0, 0] and health["streams"] == 0
    for bad, expected in [('{"config": {"sample_rate": "fast"}}', "sample_rate"), ("hello", "must be JSON"),
                          ('{"jump": 1}', "unknown command")]:
        with ws_client.connect(url) as ws:
            ws.send(bad)
            assert expected in json.loads(ws.recv())["error"]
            with pytest.raises(Exception):  # closed by the server
                ws.recv(timeout=5)
            assert ws.close_code == 1003
    with ws_client.connect(url) as ws:  # a new rate mid-stream
        ws.send(frames[0])
        ws.recv()
        ws.send(json.dumps({"config": {"sample_rate": 8000}}))
        assert "cannot change to 8000 Hz" in json.loads(ws.recv())["error"]
    assert vosk_run(server.url, frames)[-1]["text"]  # the server is still well


# -- keys, load, stopping --------------------------------------------------------------------


def test_api_key_full_queue_and_a_clean_stop(tmp_path):
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([load_audio(c) for c in CLIPS] * 6), 16000, subtype="PCM_16")  # ~100 s
    s = Server("--workers", "1", "--max-queue", "1", "--queue-wait", "60", env={"ASR_API_KEY": "sesame"})
    try:
        with pytest.raises(openai.AuthenticationError):
            client(s, "wrong").models.list()
        with pytest.raises(Exception):
            ws_client.connect(s.url.replace("http", "ws") + "/").recv(timeout=5)
        with ws_client.connect(s.url.replace("http", "ws") + "/ws?api_key=sesame") as ws:
            ws.send('{"eof" : 1}')
            assert json.loads(ws.recv()) == {"text": ""}

        def one(path):
            with open(path, "rb") as f:
                try:
                    return client(s, "sesame").audio.transcriptions.create(model="asr", file=f).text
                except openai.APIStatusError as e:
                    return e.status_code, e.response.headers.get("retry-after")

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            first = pool.submit(one, long)  # takes the one worker for a while
            time.sleep(0.5)
            second = pool.submit(one, long)  # waits: the queue is full now
            time.sleep(0.5)
            third = one(CLIPS[0])
            assert third[0] == 503 and int(third[1]) >= 1
            # Ctrl-C while two requests are in flight: both finish, then the server stops
            time.sleep(0.2)
            code, err = s.stop(signal.SIGINT)
            assert isinstance(first.result(), str) and first.result() == second.result()
        assert code == 0 and "Traceback" not in err and "stopped" in err
    finally:
        if s.process.poll() is None:
            s.process.kill()


def test_server_config_and_cli_refuse_impossible_values(tmp_path):
    for bad in ({"port": 0}, {"queue_wait": 0}, {"max_upload_mb": float("inf")}, {"max_streams": 0},
                {"api_key": " "}, {"workers": -1}):
        with pytest.raises(ConfigError):
            ServerConfig(**bad)
    r = subprocess.run([sys.executable, "-m", "asr.cli", "serve", "--queue-wait", "-1"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: --queue-wait must be") and "Traceback" not in r.stderr


# -- the page in a real browser ------------------------------------------------------------


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_page_captions_a_fake_microphone_in_headless_chromium(server, tmp_path):
    # Chromium's fake microphone plays a wav (looped): the page streams it and shows the captions
    wav = np.concatenate([load_audio(CLIPS[1]), np.zeros(16000 * 3, dtype=np.float32)])
    sf.write(tmp_path / "mic.wav", wav, 16000, subtype="PCM_16")
    port = free_port()
    browser = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={port}",
                                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                                f"--use-file-for-fake-audio-capture={tmp_path / 'mic.wav'}",
                                "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}",
                                server.url + "/?autostart"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=1).read())
                target = next(p for p in pages if p.get("type") == "page")
                break
            except (OSError, StopIteration, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        def read(expression: str):
            with ws_client.connect(target["webSocketDebuggerUrl"], max_size=None) as cdp:
                cdp.send(json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {"expression": expression}}))
                return json.loads(cdp.recv(timeout=10))["result"]["result"].get("value")

        finals, deadline = "", time.monotonic() + 40
        while time.monotonic() < deadline and "conservation of energy" not in finals:
            time.sleep(1)
            finals = read("document.getElementById('finals').innerText")
        status = read("document.getElementById('status').innerText")
        assert "conservation of energy" in finals, (finals, status)
        assert status.startswith("Listening")
    finally:
        browser.kill()
        browser.wait()


def test_without_the_serve_extra_one_line_names_it():
    # fastapi made unimportable, as in an install without the extra
    code = "import sys; sys.modules['fastapi'] = None; from asr.cli import main; sys.exit(main(['serve']))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2 and "pip install 'asr[serve]'" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_audio_recorded_at_8_khz_reaches_the_narrowband_model(deaf_model, recognizer, tmp_path):
    """`asr serve --narrowband`: an upload and a WebSocket stream at 8 kHz are heard by that model
    (one that hears nothing), 16 kHz audio by the bundle's."""
    wav8 = tmp_path / "clip8k.wav"
    sf.write(wav8, load_audio(CLIPS[0], sample_rate=8000), 8000)
    pcm8 = (load_audio(CLIPS[0], sample_rate=8000) * 32767).astype("<i2").tobytes()
    s = Server("--workers", "1", "--narrowband", deaf_model)
    try:
        c = client(s)
        with open(wav8, "rb") as f:
            assert c.audio.transcriptions.create(model="asr", file=f).text == ""
        with open(CLIPS[0], "rb") as f:
            assert c.audio.transcriptions.create(model="asr", file=f).text == recognizer.transcribe(str(CLIPS[0])).text
        frames8 = [pcm8[i:i + 3200] for i in range(0, len(pcm8), 3200)]
        assert all(not r.get("text") and not r.get("partial") for r in vosk_run(s.url, frames8, {"sample_rate": 8000}))
        assert vosk_run(s.url, pcm_frames(CLIPS[0]))[-1]["text"]
    finally:
        code, err = s.stop()
    assert code == 0 and "Traceback" not in err, err
