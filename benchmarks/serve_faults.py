"""Bad input of every kind against `asr serve`: what each gets back, and that the server survives.

    python benchmarks/serve_faults.py

Starts `asr serve --max-upload-mb 5 --max-streams 3 --idle-timeout 2` on the shipped bundle,
tries each fault in turn (uploads: garbage, empty, truncated, too large, not a form, odd rates
and formats, NaN samples, silence, clients that vanish or crawl; streams: bad frames, odd sizes,
a wrong declared rate, too many streams, silence, clients that vanish) and prints a table:
the fault, the answer (HTTP status or WebSocket close code, and the message), and whether
``/health`` said all was well afterwards (no stream left in a worker, no request left in flight).
"""

import contextlib
import io
import json
import socket
import threading
import time
import urllib.request

import numpy as np
import soundfile as sf
from serve_throughput import post, start_server
from websockets.sync.client import connect

from asr.features import load_audio

CLIP = "asr/assets/samples/1580-141083-0025.opus"


def form(audio: bytes, name: str = "clip.wav", fields: dict | None = None) -> tuple[bytes, str]:
    b = "asrfaults"
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (fields or {"model": "asr"}).items()]
    parts.append(f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
                 + audio + b"\r\n")
    return b"".join(parts) + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def wav_bytes(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def raw_http(port: int, head: bytes, body_parts=(), pause: float = 0.0, vanish: bool = False) -> str:
    """Send a request by hand (head, then body parts with a pause between); the reply's status line and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        for part in body_parts:
            time.sleep(pause)
            try:
                s.sendall(part)
            except OSError:  # the server answered and closed
                break
        if vanish:
            return "(client gone)"
        reply = b""
        with contextlib.suppress(OSError):
            while data := s.recv(65536):
                reply += data
                if b"\r\n\r\n" in reply and b"}" in reply.split(b"\r\n\r\n", 1)[1]:
                    break
    text = reply.decode(errors="replace")
    status = text.split("\r\n", 1)[0].split(" ", 1)[-1] if text else "(no reply)"
    body = text.split("\r\n\r\n", 1)[-1]
    return f"{status}: {body}"


def raw_post(port: int, kind: str, body: bytes) -> str:
    return raw_http(port, f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def upload(url: str, audio: bytes, name: str = "clip.wav", fields: dict | None = None) -> str:
    data, kind = form(audio, name, fields)
    request = urllib.request.Request(url + "/v1/audio/transcriptions", data=data, method="POST",
                                     headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return f"{r.status}: {r.read().decode()}"
    except urllib.error.HTTPError as e:
        return f"{e.code}: {e.read().decode()}"


def stream(port: int, messages, timeout: float = 10) -> str:
    """Send WebSocket messages (bytes or text); the replies, and how the connection ended."""
    replies = []
    try:
        with connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
            for m in messages:
                if m == "wait":
                    replies.append(ws.recv(timeout=timeout))
                    continue
                ws.send(m)
                if not (isinstance(m, str) and "config" in m):
                    replies.append(ws.recv(timeout=timeout))
            ws.recv(timeout=timeout)
    except Exception as e:
        code = getattr(getattr(e, "rcvd", None), "code", None)
        reason = getattr(getattr(e, "rcvd", None), "reason", "")
        end = f"closed {code} {reason}".strip() if code else type(e).__name__
        last = replies[-1] if replies else ""
        return f"{len(replies)} replies, last {last[:120]}; {end}"
    return f"{len(replies)} replies, last {replies[-1][:120] if replies else ''}; still open"


def main() -> None:
    server, port = start_server("--max-upload-mb", "5", "--max-streams", "3", "--idle-timeout", "2")
    url = f"http://127.0.0.1:{port}"
    wav = load_audio(CLIP)
    good = wav_bytes(wav, 16000)
    pcm = (wav * 32767).astype("<i2").tobytes()
    big, kind = form(b"\0" * 6_000_000)
    faults = [
        ("garbage bytes as the file", lambda: upload(url, b"\x13\x37" * 5000, "x.wav")),
        ("an empty file", lambda: upload(url, b"", "empty.wav")),
        ("a WAV cut off mid-way (header promises more)", lambda: upload(url, good[:len(good) // 3], "cut.wav")),
        ("NaN samples (float WAV)", lambda: upload(url, wav_bytes(np.full(16000, np.nan, np.float32), 16000,
                                                                 subtype="FLOAT"), "nan.wav")),
        ("10 ms of audio", lambda: upload(url, wav_bytes(wav[:160], 16000), "short.wav")),
        ("5 s of digital silence", lambda: upload(url, wav_bytes(np.zeros(80000, np.float32), 16000), "zeros.wav")),
        ("8 kHz WAV (resampled)", lambda: upload(url, wav_bytes(load_audio(CLIP, sample_rate=8000), 8000), "8k.wav")),
        ("44.1 kHz stereo FLAC", lambda: upload(url, wav_bytes(np.stack([load_audio(CLIP, sample_rate=44100)] * 2, 1),
                                                               44100, "FLAC"), "stereo.flac")),
        ("an MP4/M4A file (libsndfile cannot read it)", lambda: upload(url, b"\0\0\0\x20ftypM4A " + b"\0" * 4000,
                                                                       "talk.m4a")),
        ("response_format=xml", lambda: upload(url, good, fields={"response_format": "xml"})),
        ("language=fr", lambda: upload(url, good, fields={"language": "fr"})),
        ("no file field", lambda: raw_post(port, "multipart/form-data; boundary=b",
                                           b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nx\r\n--b--\r\n')),
        ("JSON body, not a form", lambda: raw_post(port, "application/json", b'{"file": "talk.wav"}')),
        ("a broken multipart body", lambda: raw_post(port, "multipart/form-data; boundary=b", b"--b\r\nbroken!!")),
        ("Content-Length 300 MB (headers only)", lambda: raw_http(
            port, b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                  b"boundary=b\r\nContent-Length: 300000000\r\n\r\n")),
        ("6 MB chunked upload (no length)", lambda: raw_http(
            port, f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                  f"Transfer-Encoding: chunked\r\n\r\n".encode(),
            [f"{len(big[i:i + 65536]):x}\r\n".encode() + big[i:i + 65536] + b"\r\n"
             for i in range(0, len(big), 65536)] + [b"0\r\n\r\n"])),
        ("client vanishes mid-upload", lambda: raw_http(
            port, f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {form(good)[1]}\r\n"
                  f"Content-Length: {len(form(good)[0])}\r\n\r\n".encode(), [form(good)[0][:20000]], vanish=True)),
        ("GET on the upload endpoint", lambda: raw_http(port, b"GET /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n\r\n")),
        ("WS: a text frame that is not JSON", lambda: stream(port, ["hello"])),
        ("WS: sample_rate \"fast\"", lambda: stream(port, ['{"config": {"sample_rate": "fast"}}', "wait"])),
        ("WS: odd-sized binary frames (a sample split across frames)",
         lambda: stream(port, [pcm[i:i + 1001] for i in range(0, len(pcm), 1001)] + ['{"eof" : 1}'])),
        ("WS: declares 8000 Hz, sends 16 kHz audio", lambda: stream(port, ['{"config": {"sample_rate": 8000}}']
                                                                    + [pcm[i:i + 3200] for i in range(0, len(pcm), 3200)]
                                                                    + ['{"eof" : 1}'])),
        ("WS: a 2 MB frame (over the 1 MB frame limit)", lambda: stream(port, [b"\0" * 2_000_000])),
        ("WS: eof before any audio", lambda: stream(port, ['{"eof" : 1}'])),
        ("WS: a client that sends nothing (idle timeout 2 s)", lambda: stream(port, ["wait"], timeout=10)),
    ]
    print("| fault | answer | /health afterwards |\n|---|---|---|")
    for name, attempt in faults:
        answer = attempt()
        time.sleep(0.2)  # a vanished client's recognizer is freed as the server notices
        health = json.loads(urllib.request.urlopen(url + "/health?workers=1", timeout=30).read())
        well = health["status"] == "ok" and not health["requests"] and not any(health["worker_streams"])
        print(f"| {name} | {answer.strip()[:200].replace('|', '/')} | {'ok' if well else health} |", flush=True)

    # A crawling upload (5 s at ~40 kB/s) does not hold up another client's request
    body, kind = form(good)
    crawl = threading.Thread(target=raw_http, args=(port, f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
                                                          f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
                                                          .encode(), [body[i:i + 4000] for i in range(0, len(body), 4000)],
                                                    body and 5 / (len(body) / 4000)))
    alone = post(url, CLIP)[0]
    crawl.start()
    time.sleep(0.5)
    during = post(url, CLIP)[0]
    crawl.join()
    print(f"| a crawling upload (~{len(body) / 5 / 1000:.0f} kB/s for 5 s) beside another client | the other's "
          f"request: {alone:.3f} s alone, {during:.3f} s beside it | ok |")

    # Four streams at once, one over --max-streams 3
    with contextlib.ExitStack() as open_streams:
        for _ in range(3):
            ws = open_streams.enter_context(connect(f"ws://127.0.0.1:{port}/"))
            ws.send(pcm[:3200])
            ws.recv()
        print(f"| a 4th stream over --max-streams 3 | {stream(port, [pcm[:3200]])} | ", end="")
    time.sleep(0.2)
    health = json.loads(urllib.request.urlopen(url + "/health?workers=1", timeout=30).read())
    print(f"{'ok' if not any(health['worker_streams']) else health} |")
    server.terminate()
    _, err = server.communicate(timeout=60)
    print(f"\nserver exit code after SIGTERM: {server.returncode}; tracebacks in its log: {err.count('Traceback')}")
    if err.strip():
        print(f"its log:\n{err}")


if __name__ == "__main__":
    main()
