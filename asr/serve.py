"""`asr serve`: the recognizer behind HTTP and WebSocket, for the clients people already have.

- **OpenAI's REST API**: ``POST /v1/audio/transcriptions`` (multipart ``file``, ``model``,
  ``response_format`` = json | text | srt | vtt | verbose_json, ``timestamp_granularities[]``)
  and ``GET /v1/models``, so that the official ``openai`` clients work unchanged
  (``OpenAI(base_url="http://127.0.0.1:2700/v1", api_key="-")``). The text is what
  ``asr transcribe`` gives for the same file: the same windows, the same batches' arithmetic.
- **vosk-server's WebSocket protocol** at ``/`` (and ``/ws``): a text frame
  ``{"config": {"sample_rate": R, "words": 1}}``, then binary frames of 16-bit mono PCM, one
  reply each (``{"partial": ...}``, or ``{"text": ..., "result": [...]}`` when an utterance
  ended); ``{"eof" : 1}`` gives the last final result; ``{"reset" : 1}`` ends the utterance.
- **A web page** at ``GET /``: the microphone to live captions over that WebSocket, and a file box.

How the work is spread: the model is loaded once, then ``workers`` processes are forked (each
one core, sharing the model's memory). A request's upload is written to a temporary file and cut
into the windows of :mod:`asr.plan`; waiting windows are taken in arrival order by whichever
worker is free, up to ``batch_seconds`` of audio at a time (concurrent requests are batched
together, as `asr transcribe` batches files), and each request's words are joined as
`asr transcribe` joins a long file's. A request waits at most ``queue_wait`` seconds for a
worker, then gets 503 with ``Retry-After``. A live stream lives in one worker (the one with the
fewest streams) from its first frame to its last; its frames go between that worker's batches.

Only the main process runs the event loop (uvicorn): it reads uploads, answers, and never
recognises, so a slow client or a long file never stalls the others.
"""

import asyncio
import collections
import itertools
import json
import math
import multiprocessing
import os
import queue
import secrets
import shutil
import signal
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import ConfigError, UserError
from .features import AudioError, audio_info
from .plan import CHUNK_SECONDS, Window, plan_windows
from .transcribe import FileResult, Transcriber, Transcript, _die_with, _Recognition, _trim_heap, format_transcript

API_KEY_ENV = "ASR_API_KEY"  # the key, when not given with --api-key (kept out of `ps` listings)
VOSK_DEFAULT_RATE = 16000  # vosk-server's own default is 8000 (telephony); its clients send their rate


@dataclass(frozen=True)
class ServerConfig:
    """How `asr serve` listens and how much it takes on (sizes in MB, times in seconds)."""

    host: str = "127.0.0.1"  # this machine only: another interface is the user's decision (--host 0.0.0.0)
    port: int = 2700  # vosk-server's port, which its clients default to
    workers: int = 0  # recognizer processes, one core each; 0: one per core
    max_upload_mb: float = 200.0  # larger uploads get 413 before their body is read
    queue_wait: float = 30.0  # a request waits this long for a worker, then gets 503 with Retry-After
    max_queue: int = 64  # requests waiting at once; one more gets 503 at once (before its upload is read)
    batch_seconds: float = 120.0  # audio one worker takes at a time: bigger batches, more throughput
    max_streams: int = 32  # live WebSocket streams at once; one more is closed (code 1013, try again later)
    idle_timeout: float = 60.0  # a stream that sends nothing this long is closed
    api_key: str | None = None  # required as "Authorization: Bearer KEY" (or ?api_key=KEY on the WebSocket)
    model_name: str = "asr"  # the id /v1/models lists

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port must be 1-65535, not {self.port}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be 0 (one per core) or more, not {self.workers}")
        for name in ("max_upload_mb", "queue_wait", "batch_seconds", "idle_timeout"):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number, not {getattr(self, name)}")
        for name in ("max_queue", "max_streams"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be 1 or more, not {getattr(self, name)}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("--api-key is empty: give a key, or none for an open server")


# ---------------------------------------------------------------------------------------------
# The vosk-server protocol of one stream (runs in a worker process)


class VoskSession:
    """One WebSocket stream as vosk-server answers it: PCM bytes in, one JSON reply per frame.

    ``{"partial": text}`` while an utterance goes on; ``{"text": text, "result": [{"conf",
    "end", "start", "word"}...]}`` (``result`` with ``words``) for the frame where one ended; the
    same for ``eof`` (every final not yet sent, as one) and ``reset`` (the utterance so far ends).
    Times are seconds from the stream's start.
    """

    def __init__(self, transcriber: Transcriber, sample_rate: int, words: bool = True, phrases=None, **options):
        if phrases is not None:  # Vosk's phrase_list: only these phrases can come out
            transcriber = _with_phrases(transcriber, tuple(phrases))
        self.transcriber, self.rate, self.words, self.options = transcriber, sample_rate, words, options
        self.stream = transcriber.stream(**options)
        self.offset = 0.0  # seconds before this stream (a reset starts a new one)
        self.heard = 0  # samples accepted since the last reset
        self.carry = b""  # an odd byte, waiting for its other half

    def accept(self, data: bytes) -> dict:
        data = self.carry + data
        whole = len(data) - len(data) % 2
        self.carry = data[whole:]
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0
        self.heard += len(samples)
        partial = self.stream.accept(samples, self.rate)
        segment = self.stream.result()
        if segment is not None:
            return self._final([segment])
        return {"partial": partial}

    def finish(self) -> dict:
        """The audio is over (``eof``): every final result not yet sent, as one."""
        return self._final(self.stream.finish())

    def reset(self) -> dict:
        """The utterance so far ends here (``reset``): its final result; the stream goes on."""
        reply = self.finish()
        self.offset += self.heard / self.rate
        self.heard, self.stream = 0, self.transcriber.stream(**self.options)
        return reply

    def _word(self, w) -> dict:
        return {"conf": round(w.confidence, 4), "end": round(w.end + self.offset, 3),
                "start": round(w.start + self.offset, 3), "word": w.word}

    def _final(self, segments) -> dict:
        words = [w for s in segments for w in s.words]
        reply = {"text": " ".join(s.text for s in segments if s.text)}
        if self.words and words:
            reply = {"result": [self._word(w) for w in words]} | reply
        return reply


_phrase_searches: dict[tuple, Transcriber] = {}  # a worker's recognizers of the phrase lists streams asked for


def _with_phrases(transcriber: Transcriber, phrases: tuple) -> Transcriber:
    """``transcriber`` restricted to ``phrases``, built once per list (the last 16 lists are kept)."""
    key = (id(transcriber), phrases)
    if key not in _phrase_searches:
        if len(_phrase_searches) >= 16:
            _phrase_searches.pop(next(iter(_phrase_searches)))
        _phrase_searches[key] = transcriber.with_decoding(phrases=phrases)
    return _phrase_searches[key]


# ---------------------------------------------------------------------------------------------
# Worker processes


_transcriber: Transcriber | None = None  # the model every worker shares, loaded before the fork


def _worker_main(conn, parent: int, others: list) -> None:
    """A worker: messages in, one reply each, in order, until the pipe closes.

    ``("recognize", sources, items, rates)`` -> the items' :class:`asr.transcribe._Piece` list;
    ``("open", sid, rate, words, phrases, options)``, ``("audio", sid, bytes)``, ``("eof", sid)``,
    ``("reset", sid)``, ``("close", sid)`` -> a stream's reply (``None`` for open and close);
    ``("sessions",)`` -> how many streams it holds.
    A user's error comes back as ``("error", message)``; a bug as ``("bug", traceback)``.
    ``("stop",)`` ends it. ``others``: the server's ends of the workers' pipes forked before this
    one, closed here so that each worker's pipe has one reader and one writer (an end left open
    in another worker would keep it from ever seeing the server go).
    """
    for other in others:
        other.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle: it stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one core each
    _die_with(parent)
    sessions: dict[int, VoskSession] = {}
    while True:
        try:
            kind, *args = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "stop":
            return
        try:
            if kind == "recognize":
                sources, items, rates = args
                reply = _Recognition(_transcriber, sources, items, rates)(list(range(len(items))))
                _trim_heap()
            elif kind == "open":
                sid, rate, words, phrases, options = args
                sessions[sid] = VoskSession(_transcriber, rate, words, phrases, **options)
                reply = None
            elif kind == "close":
                sessions.pop(args[0], None)
                reply = None
            elif kind == "sessions":
                reply = len(sessions)
            else:
                session = sessions[args[0]]
                if kind == "audio":
                    reply = session.accept(args[1])
                elif kind == "reset":
                    reply = session.reset()
                else:  # eof
                    reply = session.finish()
                    del sessions[args[0]]
            reply = ("ok", reply)
        except UserError as e:
            reply = ("error", str(e))
        except Exception:  # a bug: its traceback goes to the server's log, never to a client
            reply = ("bug", traceback.format_exc())
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


class _Worker:
    """The server's end of one worker process: messages go out through a thread of their own (a
    send that blocks while the worker is busy must not block the event loop) and replies come
    back through another, to the asyncio future of the message they answer (replies come in
    the order of the messages)."""

    def __init__(self, process, conn, loop: asyncio.AbstractEventLoop):
        self.process, self.conn, self.loop = process, conn, loop
        self.outbox: queue.Queue = queue.Queue()
        self.waiting: collections.deque[asyncio.Future] = collections.deque()
        self.lock = threading.Lock()
        self.busy = False  # a batch of windows in flight
        self.streams = 0
        self.failed: str | None = None
        threading.Thread(target=self._send, daemon=True, name="asr-send").start()
        threading.Thread(target=self._receive, daemon=True, name="asr-receive").start()

    def call(self, *message) -> asyncio.Future:
        future = self.loop.create_future()
        with self.lock:
            if self.failed:
                future.set_exception(RuntimeError(self.failed))
                return future
            self.waiting.append(future)
            self.outbox.put(message)
        return future

    def _send(self) -> None:
        while (message := self.outbox.get()) is not None:
            try:
                self.conn.send(message)
            except (BrokenPipeError, OSError):
                return

    def _receive(self) -> None:
        while True:
            try:
                reply = self.conn.recv()
            except (EOFError, OSError):
                break
            with self.lock:
                future = self.waiting.popleft()
            self.loop.call_soon_threadsafe(_settle, future, reply)
        with self.lock:  # the worker is gone (killed, out of memory): whoever waits is told
            self.failed = f"recognizer process {self.process.pid} died (exit code {self.process.exitcode})"
            waiting, self.waiting = list(self.waiting), collections.deque()
        for future in waiting:
            self.loop.call_soon_threadsafe(_fail, future, RuntimeError(self.failed))

    def stop(self) -> None:
        self.outbox.put(("stop",))
        self.outbox.put(None)


def _settle(future: asyncio.Future, reply) -> None:
    if not future.done():
        status, value = reply
        if status == "ok":
            future.set_result(value)
        elif status == "error":
            future.set_exception(UserError(value))
        else:
            future.set_exception(RuntimeError(f"bug in a recognizer process:\n{value}"))


def _fail(future: asyncio.Future, error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


class Busy(Exception):
    """No worker took the request in time (or too many wait): HTTP 503, retry after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Job:
    """One request's audio file, its windows, and what has come back."""

    path: str
    windows: list[Window]
    result: FileResult
    done: asyncio.Future
    rate: int  # Hz, the file's: which model hears it (Transcriber.model_for)
    started: bool = False
    next: int = 0  # windows handed to workers so far


class RecognizerPool:
    """Worker processes sharing one loaded :class:`~asr.transcribe.Transcriber`, and the queue of
    requests waiting for them (see the module's docstring)."""

    def __init__(self, transcriber: Transcriber, config: ServerConfig):
        global _transcriber
        if "fork" not in multiprocessing.get_all_start_methods():
            raise ConfigError("asr serve needs fork() to share the model between its processes (Linux, macOS)")
        from .transcribe import default_workers

        self.transcriber, self.config = transcriber, config
        self.size = config.workers or default_workers()
        self.queue: collections.deque[_Job] = collections.deque()
        self.workers: list[_Worker] = []
        self.seconds_per_audio = 0.02  # compute per second of audio, one core: learnt as batches finish
        _transcriber = transcriber
        context = multiprocessing.get_context("fork")
        import gc

        gc.freeze()  # the model's objects stay on pages shared with the workers (see transcribe._run_batches)
        self.children = []
        for _ in range(self.size):
            ours, theirs = context.Pipe()
            p = context.Process(target=_worker_main, args=(theirs, os.getpid(), [c for _, c in self.children]),
                                daemon=True, name="asr-recognizer")
            p.start()
            theirs.close()
            self.children.append((p, ours))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin answering (on the event loop's thread, once it runs)."""
        self.workers = [_Worker(p, conn, loop) for p, conn in self.children]

    def close(self) -> None:
        """Stop the workers (a batch in flight is finished first, for up to 10 s)."""
        for w in self.workers:
            w.stop()
        if not self.workers:  # never started
            for _, conn in self.children:
                conn.send(("stop",))
        deadline = time.monotonic() + 10
        for p, conn in self.children:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
            conn.close()

    # -- files --------------------------------------------------------------------------------

    def full(self) -> bool:
        return len(self.queue) >= self.config.max_queue

    def retry_after(self) -> int:
        """Seconds until the queue's audio is likely done: what a 503 tells to wait."""
        return max(1, math.ceil(self.waiting_seconds() * self.seconds_per_audio / self.size))

    def waiting_seconds(self) -> float:
        """Audio in the windows no worker has taken yet."""
        return sum(j.windows[k].seconds for j in self.queue for k in range(j.next, len(j.windows)))

    async def transcribe(self, path: str, name: str) -> Transcript:
        """The transcript of an audio file, as `asr transcribe` gives it (``name`` in its errors)."""
        if self.full():
            raise Busy(f"{len(self.queue)} requests are waiting already", self.retry_after())
        duration, rate = audio_info(path)
        loop = asyncio.get_running_loop()
        windows = plan_windows(0, duration)
        job = _Job(path, windows, FileResult(name, len(windows)), loop.create_future(), rate)
        self.queue.append(job)
        timer = loop.call_later(self.config.queue_wait, self._expire, job)
        self._dispatch()
        try:
            return await job.done
        finally:
            timer.cancel()
            if not job.started and job in self.queue:  # the client went away while waiting
                self.queue.remove(job)

    def _expire(self, job: _Job) -> None:
        if not job.started and job in self.queue:
            self.queue.remove(job)
            _fail(job.done, Busy(f"no recognizer was free within {self.config.queue_wait:g} s",
                                 self.retry_after()))

    def _dispatch(self) -> None:
        """Give waiting windows to every free worker, oldest request first."""
        for worker in self.workers:
            if not self.queue:
                return
            if worker.busy or worker.failed:
                continue
            taken: list[tuple[_Job, int]] = []
            seconds = 0.0
            # a fair share of what waits, so that the next worker to be free has its share too
            # (rather than one worker holding every waiting request's answer in one long batch)
            limit = min(self.config.batch_seconds, max(CHUNK_SECONDS, self.waiting_seconds() / self.size))
            while self.queue:
                job = self.queue[0]
                window = job.windows[job.next]
                if taken and seconds + window.seconds > limit:
                    break
                taken.append((job, job.next))
                seconds += window.seconds
                job.started, job.next = True, job.next + 1
                if job.next == len(job.windows):
                    self.queue.popleft()
            sources = [job.path for job, _ in taken]
            items = [Window(i, w.start, w.stop, w.seconds, w.keep_from, w.keep_to)
                     for i, w in enumerate(job.windows[k] for job, k in taken)]
            worker.busy = True
            future = worker.call("recognize", sources, items, [job.rate for job, _ in taken])
            future.add_done_callback(lambda f, w=worker, t=taken, s=seconds, t0=time.perf_counter():
                                     self._finished(w, t, f, s, t0))

    def _finished(self, worker: _Worker, taken, future: asyncio.Future, seconds: float, t0: float) -> None:
        worker.busy = False
        error = future.exception()
        if error is None:
            rate = (time.perf_counter() - t0) / max(seconds, 1e-3)
            self.seconds_per_audio = 0.8 * self.seconds_per_audio + 0.2 * rate
            for piece in future.result():
                job, k = taken[piece.k]
                if job.result.add(job.windows[k], piece) and not job.done.done():
                    job.done.set_result(job.result.finish(self.transcriber.head)[0])
        else:
            for job, _ in taken:
                _fail(job.done, error)
                if job in self.queue:
                    self.queue.remove(job)
        self._dispatch()

    # -- streams ------------------------------------------------------------------------------

    def stream_worker(self) -> _Worker:
        """The worker a new stream lives in: the one with the fewest streams."""
        alive = [w for w in self.workers if not w.failed]
        if not alive:
            raise RuntimeError("every recognizer process has died")
        return min(alive, key=lambda w: w.streams)


# ---------------------------------------------------------------------------------------------
# The web application


def _error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
           headers: dict | None = None):
    """An error as OpenAI's API gives it: ``{"error": {"message", "type", "param", "code"}}``."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}},
                        status_code=status, headers=headers)


class _UploadLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before it is read (from its
    Content-Length), or as soon as it passes the limit (a chunked body, whose length is unknown)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        too_big = f"the upload is over the server's limit of {self.limit / 1e6:g} MB (asr serve --max-upload-mb)"
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _error(413, too_big)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge(too_big)
            return message

        return await self.app(scope, limited, send)


class _TooLarge(Exception):
    pass


SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf"}
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def _verbose(t: Transcript, granularities: list[str]) -> dict:
    """OpenAI's verbose_json: duration, language, text, segments (cues of words) and/or words
    (with their calibrated confidence, a field of asr's)."""
    from .transcribe import _cues

    d = {"task": "transcribe", "language": "english", "duration": round(t.duration, 3), "text": t.text}
    if "segment" in granularities:
        d["segments"] = [{"id": i, "seek": 0, "start": c[0].start, "end": c[-1].end,
                          "text": " " + " ".join(w.word for w in c), "tokens": [], "temperature": 0.0,
                          "avg_logprob": round(float(np.mean([math.log(max(w.confidence, 1e-6)) for w in c])), 4),
                          "compression_ratio": 1.0,
                          "no_speech_prob": 0.0} for i, c in enumerate(_cues(t.words))]
    if "word" in granularities:
        d["words"] = [{"word": w.word, "start": w.start, "end": w.end, "confidence": round(w.confidence, 4)}
                      for w in t.words]
    return d


def create_app(pool: RecognizerPool, config: ServerConfig, streaming: dict | None = None):
    """The FastAPI application of `asr serve` over a started :class:`RecognizerPool`.

    ``streaming`` changes the bundle's :class:`~asr.stream.StreamingConfig` for every stream."""
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    streaming = streaming or {}
    app = FastAPI(title="asr", version=_version(), docs_url="/docs", redoc_url=None)
    active = {"streams": 0, "requests": 0}
    page = (resources.files("asr") / "web" / "index.html").read_text(encoding="utf-8")

    def authorized(headers, query=None) -> bool:
        if config.api_key is None:
            return True
        given = headers.get("authorization", "")
        key = given[7:].strip() if given.lower().startswith("bearer ") else (query or {}).get("api_key", "")
        return secrets.compare_digest(key.encode(), config.api_key.encode())

    @app.exception_handler(_TooLarge)
    async def too_large(request, e):
        return _error(413, str(e))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e):
        return _error(400, "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e):
        return _error(e.status_code, str(e.detail), "not_found_error" if e.status_code == 404 else
                      "invalid_request_error")

    @app.exception_handler(Exception)
    async def bug(request, e):  # uvicorn logs the traceback; the client gets one line
        return _error(500, "internal error in the recognizer (the server's log has its traceback)", "server_error")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return page

    @app.get("/health")
    async def health(workers: bool = False):
        """Liveness and load: workers, requests waiting, streams open; with ``?workers=1`` also
        the streams each worker process holds (asked of them: it waits for their batches)."""
        d = {"status": "ok" if all(not w.failed for w in pool.workers) else "degraded",
             "workers": pool.size, "queued": len(pool.queue), "requests": active["requests"],
             "streams": active["streams"]}
        if workers:
            d["worker_streams"] = await asyncio.gather(*(w.call("sessions") for w in pool.workers))
        return d

    def model_card() -> dict:
        return {"id": config.model_name, "object": "model", "created": int(_started), "owned_by": "asr"}

    @app.get("/v1/models")
    async def models(request: Request):
        if not authorized(request.headers):
            return _error(401, "a valid API key is required (Authorization: Bearer KEY)", "authentication_error")
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str, request: Request):
        if not authorized(request.headers):
            return _error(401, "a valid API key is required (Authorization: Bearer KEY)", "authentication_error")
        if model_id != config.model_name:
            return _error(404, f"no model {model_id!r}: this server has {config.model_name!r}", "not_found_error",
                          "model")
        return model_card()

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        """OpenAI's transcription endpoint: multipart ``file`` (wav, flac, ogg/opus, mp3...),
        ``model`` (any name: this server has one), ``response_format``,
        ``timestamp_granularities[]``, ``language`` (English), ``prompt`` and ``temperature``
        (accepted, not used)."""
        if not authorized(request.headers):
            return _error(401, "a valid API key is required (Authorization: Bearer KEY)", "authentication_error")
        if pool.full():  # before the upload is read
            return _error(503, "the server is busy: too many requests are waiting", "server_busy",
                          headers={"Retry-After": str(pool.retry_after())})
        active["requests"] += 1
        tmp = None
        try:
            try:
                form = await request.form(max_files=1, max_fields=16, max_part_size=1024 * 1024)
            except ClientDisconnect:  # gone mid-upload: nobody to answer
                return _error(400, "the client went away during the upload")
            except (AssertionError, ValueError, KeyError) as e:
                return _error(400, f"the body is not a multipart form with a file ({e})")
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                return _error(400, "no audio: send the file as multipart field 'file'", param="file")
            fmt = str(form.get("response_format") or "json")
            if fmt not in RESPONSE_FORMATS:
                return _error(400, f"response_format {fmt!r} is not one of {', '.join(RESPONSE_FORMATS)}",
                              param="response_format")
            granularities = form.getlist("timestamp_granularities[]") or form.getlist("timestamp_granularities") \
                or ["segment"]
            bad = [g for g in granularities if g not in ("word", "segment")]
            if bad:
                return _error(400, f"timestamp_granularities {bad[0]!r} is not word or segment",
                              param="timestamp_granularities")
            language = str(form.get("language") or "en").lower()
            if language not in ("en", "english"):
                return _error(400, f"language {language!r}: this model recognises English only (en)",
                              param="language")
            name = upload.filename or "upload"
            suffix = Path(name).suffix.lower()
            fd, tmp = tempfile.mkstemp(prefix="asr-serve-", suffix=suffix if suffix in SUFFIXES else "")
            with os.fdopen(fd, "wb") as f:
                await asyncio.to_thread(shutil.copyfileobj, upload.file, f, 1 << 20)
            await upload.close()
            try:
                t = await pool.transcribe(tmp, name)
            except Busy as e:
                return _error(503, f"the server is busy: {e}", "server_busy",
                              headers={"Retry-After": str(e.retry_after)})
            except AudioError as e:
                return _error(400, str(e).replace(tmp, name), param="file")
            if t.error:
                return _error(400, t.error.replace(tmp, name), param="file")
            t.path = name
            if fmt == "json":
                return JSONResponse({"text": t.text})
            if fmt == "verbose_json":
                return JSONResponse(_verbose(t, granularities))
            media = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}[fmt]
            return PlainTextResponse(format_transcript(t, "txt" if fmt == "text" else fmt), media_type=media)
        finally:
            active["requests"] -= 1
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    async def vosk(ws: WebSocket):
        """vosk-server's protocol (see :class:`VoskSession`)."""
        if not authorized(ws.headers, ws.query_params):
            await ws.close(code=1008, reason="a valid API key is required")
            return
        await ws.accept()
        if active["streams"] >= config.max_streams:
            await ws.close(code=1013, reason=f"the server has {config.max_streams} streams open: try again later")
            return
        active["streams"] += 1
        worker, sid = None, next(_stream_ids)
        rate, words, phrases = VOSK_DEFAULT_RATE, True, None
        worker_rate = rate  # the rate the stream started at, once it has
        try:
            while True:
                try:
                    message = await asyncio.wait_for(ws.receive(), config.idle_timeout)
                except asyncio.TimeoutError:
                    await ws.close(code=1001, reason=f"nothing received for {config.idle_timeout:g} s")
                    return
                if message["type"] == "websocket.disconnect":
                    return
                text, data = message.get("text"), message.get("bytes")
                if text is not None:
                    try:
                        command = json.loads(text)
                    except ValueError:
                        command = None
                    if not isinstance(command, dict):
                        await _refuse(ws, f"a text frame must be JSON: config, eof or reset, not {text[:80]!r}")
                        return
                    if "config" in command:
                        cfg = command["config"]
                        try:
                            rate, words, phrases = _vosk_config(cfg, rate, words, phrases)
                        except UserError as e:
                            await _refuse(ws, str(e))
                            return
                        if worker is not None and rate != worker_rate:
                            await _refuse(ws, f"the stream started at {worker_rate} Hz and cannot change to "
                                              f"{rate} Hz: open a new connection")
                            return
                        continue
                    if command.get("eof"):
                        reply = {"text": ""}
                        if worker is not None:
                            worker.streams -= 1
                            worker, ended = None, worker
                            reply = await ended.call("eof", sid)
                        await ws.send_text(json.dumps(reply))
                        await ws.close()
                        return
                    if command.get("reset"):
                        reply = await worker.call("reset", sid) if worker is not None else {"text": ""}
                        await ws.send_text(json.dumps(reply))
                        continue
                    await _refuse(ws, f"unknown command {text[:80]!r}: config, eof or reset")
                    return
                if worker is None:
                    worker, worker_rate = pool.stream_worker(), rate
                    worker.streams += 1
                    try:
                        await worker.call("open", sid, rate, words, phrases, streaming)
                    except UserError as e:
                        worker.streams -= 1
                        worker = None
                        await _refuse(ws, str(e))
                        return
                try:
                    reply = await worker.call("audio", sid, data or b"")
                except UserError as e:
                    await _refuse(ws, str(e))
                    return
                await ws.send_text(json.dumps(reply))
        except WebSocketDisconnect:
            return
        finally:
            active["streams"] -= 1
            if worker is not None:  # the client left mid-stream: its recognizer goes
                worker.streams -= 1
                worker.call("close", sid)

    app.add_api_websocket_route("/", vosk)
    app.add_api_websocket_route("/ws", vosk)
    return _UploadLimit(app, int(config.max_upload_mb * 1e6))


_stream_ids = itertools.count()
_started = time.time()


def _version() -> str:
    from . import __version__

    return __version__


def _vosk_config(cfg, rate: int, words: bool, phrases=None) -> tuple[int, bool, tuple | None]:
    """vosk-server's config object -> (sample rate, whether words have times, the phrase list or
    ``None``): other keys (``max_alternatives``, ``model``) are accepted and not used."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"config must be an object, not {json.dumps(cfg)[:80]}")
    if "sample_rate" in cfg:
        r = cfg["sample_rate"]
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not (0 < r < 1e6) or r != int(r):
            raise ConfigError(f"sample_rate must be a whole number of samples a second, not {r!r}")
        rate = int(r)
    if "words" in cfg:
        words = bool(cfg["words"])
    if "phrase_list" in cfg:
        from .grammar import phrase_grammar

        listed = cfg["phrase_list"]
        if not isinstance(listed, list):
            raise ConfigError(f"phrase_list must be a list of phrases, not {json.dumps(listed)[:80]}")
        phrase_grammar(listed, "phrase_list")  # checked now: a bad list is refused before any audio
        phrases = tuple(listed)
    return rate, words, phrases


async def _refuse(ws, message: str) -> None:
    """A stream's error: one JSON reply saying it, then the connection closes (1003: unacceptable data)."""
    try:
        await ws.send_text(json.dumps({"error": message}))
        await ws.close(code=1003, reason=message[:120])
    except Exception:  # the client has gone already
        pass


def check_installed() -> None:
    """The serve extra's packages, or a :class:`UserError` naming the command that installs them."""
    import importlib.util

    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except ValueError:  # in sys.modules without a spec: not importable
            return True

    missing = [m for m in ("fastapi", "uvicorn", "websockets", "multipart") if absent(m)]
    if missing:
        raise UserError(f"asr serve needs {', '.join(missing)}: pip install 'asr[serve]' "
                        f"(in a clone: pip install -e '.[serve]')")


def serve(transcriber: Transcriber, config: ServerConfig = ServerConfig(), streaming: dict | None = None,
          log=print) -> None:
    """Run the server until Ctrl-C or SIGTERM: requests in flight finish (up to 30 s), then it stops."""
    check_installed()
    import uvicorn

    if streaming:  # checked now, not at the first stream
        transcriber.stream(**streaming)
    import socket

    pool = RecognizerPool(transcriber, config)  # before the socket, which the workers need not hold
    try:
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    except OSError as e:
        pool.close()
        raise UserError(f"cannot listen on {config.host}:{config.port}: {e.strerror or e}") from None
    app = create_app(pool, config, streaming)

    async def main():
        pool.start(asyncio.get_running_loop())
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30,
                                               ws_max_size=1 << 20, lifespan="off"))
        host = f"[{config.host}]" if ":" in config.host else config.host
        log(f"asr serve: http://{host}:{config.port}/ (page), http://{host}:{config.port}/v1 (OpenAI API), "
            f"ws://{host}:{config.port}/ (Vosk); {pool.size} recognizer process(es); Ctrl-C stops")
        await server.serve(sockets=[sock])

    def stop(signum, frame):  # uvicorn raises the signal again once it has stopped: the normal end
        raise _Stopped

    signal.signal(signal.SIGTERM, stop)
    previous = signal.signal(signal.SIGINT, stop)
    try:
        asyncio.run(main())
    except _Stopped:
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
        pool.close()
        sock.close()
    log("asr serve: stopped")


class _Stopped(Exception):
    """SIGINT or SIGTERM, once uvicorn has finished the requests in flight."""
