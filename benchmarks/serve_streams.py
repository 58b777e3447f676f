"""Live streams through `asr serve`'s WebSocket (vosk-server's protocol), many at once, in real time.

    python benchmarks/serve_streams.py --manifest data/librispeech/dev.jsonl [--streams 1 8 16]

Each stream is a client as vosk-server's test.py is one: the config frame, then 100 ms frames of
16-bit PCM sent at the audio's own pace (a frame is sent when its 100 ms have passed, or when
the reply to the one before has come, whichever is later: the client waits for each reply),
then 1 s of quiet noise and ``{"eof" : 1}``. Each stream plays another dev utterance of 8-15 s;
all streams start together. Measured per stream count:

- **lag**: how long after its 100 ms of audio were complete each frame's reply came (real
  time: it stays small and does not grow over the stream);
- **first partial**: from the moment the audio of the first word's start had been sent (the
  word's start in the stream's final result) to the first reply with a non-empty partial;
- **behind at the end**: how much later than the audio's own length the last reply came.
"""

import argparse
import asyncio
import json
import os
import shlex
import socket
import statistics
import time

import numpy as np
from websockets.asyncio.client import connect

from serve_throughput import start_server

from asr.features import load_audio
from asr.manifest import read_manifest

FRAME = 0.1  # seconds of audio a frame


async def one_stream(url: str, pcm: bytes) -> dict:
    step = int(16000 * FRAME) * 2
    frames = [pcm[i:i + step] for i in range(0, len(pcm), step)]
    lags, first_partial_at, replies = [], None, []
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"config": {"sample_rate": 16000}}))
        start = time.perf_counter()
        for k, frame in enumerate(frames):
            due = start + (k + 1) * FRAME  # when this frame's audio is complete
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await ws.send(frame)
            reply = json.loads(await ws.recv())
            now = time.perf_counter()
            lags.append(now - due)
            replies.append(reply)
            if first_partial_at is None and (reply.get("partial") or reply.get("text")):
                first_partial_at = now - start
        await ws.send('{"eof" : 1}')
        replies.append(json.loads(await ws.recv()))
        end = time.perf_counter() - start
    words = [w for r in replies if "result" in r for w in r["result"]]
    first_word = words[0]["start"] if words else None
    return {"lags": lags, "behind": end - len(pcm) / 2 / 16000,
            "first_partial": None if first_word is None or first_partial_at is None else first_partial_at - first_word,
            "text": " ".join(r["text"] for r in replies if r.get("text"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--workers", type=int, help="`asr serve --workers` (default: one per core)")
    ap.add_argument("--serve-args", default="", help="more `asr serve` options, one string (e.g. \"--chunk 0.12\")")
    args = ap.parse_args()
    utts = [u for u in read_manifest(args.manifest) if 8 <= u.duration <= 15][: max(args.streams)]
    rng = np.random.default_rng(0)
    pcms = []
    for u in utts:
        wav = np.concatenate([load_audio(u.audio), 0.003 * rng.standard_normal(16000).astype(np.float32)])
        pcms.append((np.clip(wav, -1, 32767 / 32768) * 32768).astype("<i2").tobytes())
    options = (["--workers", str(args.workers)] if args.workers else []) + shlex.split(args.serve_args)
    print(f"{os.cpu_count()} cores; `asr serve {args.serve_args}` with {args.workers or 'one per core'} worker(s); utterances of "
          f"8-15 s, {FRAME * 1000:.0f} ms frames sent in real time", flush=True)
    server, port = start_server(*options)
    try:
        asyncio.run(one_stream(f"ws://127.0.0.1:{port}/", pcms[0][:64000]))  # warm-up
        print("\n| streams at once | frame reply lag p50 / p95 / max (s) | lag over each stream's last 2 s, max (s) "
              "| first partial after the first word's start, median / max (s) | behind at the end, max (s) |")
        print("|---|---|---|---|---|")
        for n in args.streams:
            async def run_all():
                return await asyncio.gather(*(one_stream(f"ws://127.0.0.1:{port}/", pcms[i]) for i in range(n)))

            results = asyncio.run(run_all())
            lags = sorted(x for r in results for x in r["lags"])
            tail = max(max(r["lags"][-20:]) for r in results)
            firsts = [r["first_partial"] for r in results if r["first_partial"] is not None]
            p95 = lags[int(round(0.95 * (len(lags) - 1)))]
            print(f"| {n} | {statistics.median(lags):.3f} / {p95:.3f} / {lags[-1]:.3f} | {tail:.3f} | "
                  f"{statistics.median(firsts):.3f} / {max(firsts):.3f} | {max(r['behind'] for r in results):.3f} |",
                  flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
