"""`asr serve` under load: requests/s and latency at 1, 4 and 16 concurrent clients, against the
batch throughput of `asr transcribe` on the same files, measured in one run.

    python benchmarks/serve_throughput.py --manifest data/librispeech/dev.jsonl [--files 96]

Files: the manifest's first ``--files`` utterances of 5-15 s. The batch side runs twice around
the server (before and after, for the machine's drift): the whole `asr transcribe FILES --out DIR`
command (loading included) and the library's batch path, ``Transcriber.transcribe_files`` with
one worker per core, timed after loading. The server (`asr serve`, one worker per core) is
started once and warmed up; then each client count posts every file once through OpenAI's
endpoint (multipart upload, ``response_format=json``) from that many threads, each taking the
next file when its request is answered. The client threads run on the same machine. Every text
must equal the batch command's: a wrong answer under load stops the benchmark.
"""

import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from asr.manifest import read_manifest


def post(url: str, path: str) -> tuple[float, str]:
    """One transcription request: (seconds until answered, text)."""
    with open(path, "rb") as f:
        audio = f.read()
    b = "asrbench"
    body = (f'--{b}\r\nContent-Disposition: form-data; name="model"\r\n\r\nasr\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{os.path.basename(path)}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + audio + f"\r\n--{b}--\r\n".encode()
    request = urllib.request.Request(url + "/v1/audio/transcriptions", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={b}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as r:
        text = json.loads(r.read())["text"]
    return time.perf_counter() - start, text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*options: str) -> tuple[subprocess.Popen, int]:
    """`asr serve OPTIONS` on a free port, once it answers ``/health``: (the process, its port)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "asr.cli", "serve", "--port", str(port), *options],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return server, port
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"asr serve did not start: {server.communicate()[1]}")
            time.sleep(0.1)


def batch_command(paths: list[str]) -> tuple[float, dict[str, str]]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", *paths, "--out", out], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        with open(os.path.join(out, "results.jsonl"), encoding="utf-8") as f:
            texts = {(d := json.loads(line))["path"]: d["text"] for line in f}
    return wall, texts


def batch_library(paths: list[str]) -> float:
    code = ("import asr, sys, time; from asr.transcribe import default_workers; r = asr.load(); s = time.perf_counter(); "
            "list(r.transcribe_files(sys.argv[1:], workers=default_workers())); print(time.perf_counter() - s)")
    return float(subprocess.run([sys.executable, "-c", code, *paths], check=True, capture_output=True,
                                text=True).stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--files", type=int, default=96)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    args = ap.parse_args()
    utts = [u for u in read_manifest(args.manifest) if 5 <= u.duration <= 15][: args.files]
    paths = [u.audio for u in utts]
    audio = sum(u.duration for u in utts)
    print(f"{len(paths)} files of 5-15 s, {audio / 60:.1f} min of audio; {os.cpu_count()} cores", flush=True)

    rows = []
    wall, expected = batch_command(paths)
    rows.append(("asr transcribe FILES --out DIR (whole command), before", wall))
    rows.append(("Transcriber.transcribe_files, after loading, before", batch_library(paths)))

    server, port = start_server()
    url = f"http://127.0.0.1:{port}"
    try:
        for p in paths[:4]:  # warm-up: the workers' first batches
            post(url, p)
        serve_rows = []
        for clients in args.clients:
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                answers = list(pool.map(lambda p: post(url, p), paths))
            wall = time.perf_counter() - start
            wrong = [p for p, (_, text) in zip(paths, answers) if text != expected[p]]
            if wrong:
                sys.exit(f"{len(wrong)} answers differ from `asr transcribe`'s, e.g. {wrong[0]}")
            latencies = sorted(t for t, _ in answers)
            serve_rows.append((clients, wall, latencies))
    finally:
        server.terminate()
        server.wait(timeout=60)
    wall, _ = batch_command(paths)
    rows.append(("asr transcribe FILES --out DIR (whole command), after", wall))
    rows.append(("Transcriber.transcribe_files, after loading, after", batch_library(paths)))

    print("\n| batch | wall (s) | files/s | audio s/s |\n|---|---|---|---|")
    for name, wall in rows:
        print(f"| {name} | {wall:.2f} | {len(paths) / wall:.2f} | {audio / wall:.1f} |")
    best_batch = max(len(paths) / w for n, w in rows if n.startswith("Transcriber"))
    print("\n| asr serve, clients | wall (s) | requests/s | audio s/s | latency p50 (s) | p95 (s) | "
          "× the library's batch throughput (best of its two runs) |\n|---|---|---|---|---|---|---|")
    for clients, wall, lat in serve_rows:
        p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
        print(f"| {clients} | {wall:.2f} | {len(paths) / wall:.2f} | {audio / wall:.1f} | "
              f"{statistics.median(lat):.3f} | {p95:.3f} | {len(paths) / wall / best_batch:.3f} |")
    print("\nevery answer equal to `asr transcribe`'s text: yes")


if __name__ == "__main__":
    main()
