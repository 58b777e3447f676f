"""`asr serve`'s memory over many requests: it must stay flat (no leak per request or per stream).

    python benchmarks/serve_memory.py --manifest data/librispeech/dev.jsonl [--requests 1000]

Posts ``--requests`` transcription requests (4 client threads, the manifest's first 20
utterances of at most 8 s in turn; every 10th request also opens a WebSocket stream, sends
1 s of audio and vanishes without a goodbye) and prints the server's memory every 100 requests:
PSS summed over the server and its worker processes (see long_audio_memory.py), and each
process's RSS. Also counts the server's temporary upload files left behind (none should be).
"""

import argparse
import concurrent.futures
import contextlib
import glob
import os
import socket
import tempfile
import time
import urllib.request

from long_audio_memory import tree_pss_kb
from serve_throughput import post, start_server
from websockets.sync.client import connect

from asr.features import load_audio
from asr.manifest import read_manifest


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--requests", type=int, default=1000)
    args = ap.parse_args()
    utts = [u for u in read_manifest(args.manifest) if u.duration <= 8][:20]
    pcm = (load_audio(utts[0].audio)[:16000] * 32767).astype("<i2").tobytes()
    leftovers_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "asr-serve-*")))
    server, port = start_server()
    url = f"http://127.0.0.1:{port}"
    try:
        def request(i: int) -> None:
            post(url, utts[i % len(utts)].audio)
            if i % 10 == 0:  # a stream that goes away mid-way
                with contextlib.suppress(OSError), connect(f"ws://127.0.0.1:{port}/") as ws:
                    for k in range(0, len(pcm), 3200):
                        ws.send(pcm[k:k + 3200])
                        ws.recv()
                    ws.socket.shutdown(socket.SHUT_RDWR)

        print(f"{args.requests} requests of {len(utts)} dev files (<= 8 s), 4 clients; every 10th also a "
              f"vanishing stream", flush=True)
        print("\n| requests done | server + workers PSS (MB) | RSS of each process (MB) | streams open |\n|---|---|---|---|")
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for done in range(0, args.requests, 100):
                list(pool.map(request, range(done, min(done + 100, args.requests))))
                health = urllib.request.urlopen(url + "/health?workers=1", timeout=60).read().decode()
                pids = [server.pid, *children(server.pid)]
                print(f"| {min(done + 100, args.requests)} | {tree_pss_kb(server.pid) / 1024:.0f} | "
                      f"{' + '.join(f'{rss_mb(p):.0f}' for p in pids)} | {health} |", flush=True)
        print(f"\n{args.requests} requests in {time.perf_counter() - start:.0f} s")
    finally:
        server.terminate()
        server.wait(timeout=60)
    left = set(glob.glob(os.path.join(tempfile.gettempdir(), "asr-serve-*"))) - leftovers_before
    print(f"temporary upload files left: {len(left)}")


if __name__ == "__main__":
    main()
