"""Files: atomic writes (text, bytes and torch), JSONL, gzip-aware opening, and what counts as an audio file.

The bottom layer for every module that reads or writes: a crash or a kill never leaves half
a file (write to a temporary file in the same folder, flush, rename), and readers name the
file and line of what they cannot use.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable

from .errors import ConfigError, UserError

# What `asr transcribe DIR` picks up and `asr prepare` accepts: the formats soundfile
# (libsndfile) reads, Ogg/Opus included, by extension.
AUDIO_EXTENSIONS = (".wav", ".flac", ".opus", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf")

# What `asr transcribe` writes a transcript as (see asr.transcribe.format_transcript).
FORMATS = ("txt", "json", "jsonl", "srt", "vtt", "ctm")

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: the process's umask, restored at once


def is_audio_file(path: str | Path) -> bool:
    """Whether ``path`` names a file with an audio extension (see :data:`AUDIO_EXTENSIONS`)."""
    path = Path(path)
    return path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file()


def open_text(path: str | Path, mode: str = "r") -> IO[str]:
    """Open a text file for ``mode`` ("r", "w" or "a"), gzip-compressed when the name ends in ``.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _atomic(path: str | Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a written file gets the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete the temporary files (``.NAME.XXXX.tmp``) that atomic writes of a killed run left in
    ``folder``: the files they were to replace are intact. Only for a folder this run owns."""
    for stale in Path(folder).glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file and rename, so a crash never leaves half a file."""
    _atomic(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename."""
    _atomic(path, lambda f: f.write(data))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (checkpoints, feature caches)."""
    import torch

    _atomic(path, lambda f: torch.save(obj, f))


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read a MiB at a time (hex)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_output_folder(path: str | Path) -> Path:
    """``path`` for a folder of results, refused in one line if a file (not a folder) is there."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder (--out names the folder to write into)")
    return path


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write ``records`` one JSON object a line (UTF-8, not escaped), atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_jsonl(path: str | Path, required: tuple[str, ...], error: type[Exception],
               what: str) -> list[tuple[int, dict]]:
    """``(line number, record)`` of a JSONL file, each with the ``required`` fields.

    Problems raise ``error`` naming the file (described as ``what``) and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(r, dict):
                raise error(f"{path}:{lineno}: expected a JSON object, not {type(r).__name__}")
            missing = [k for k in required if k not in r]
            if missing:
                raise error(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
            records.append((lineno, r))
    return records


def select_shard(paths: list[str], spec: str) -> list[str]:
    """The ``K``th of ``N`` shares of ``paths`` for ``spec`` = ``"K/N"`` (K = 1..N): every Nth path
    from the Kth on. Deterministic, so N machines given the same inputs split them without
    overlap, and their results concatenated are those of one run."""
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must be K/N (e.g. 2/8), not {spec!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard {spec}: K must lie in 1..N")
    return paths[k - 1::n]


AUDIO_ALIASES = ("audio", "path")  # a manifest may name the audio file by either field


class ManifestError(UserError):
    pass


def with_audio(r: dict) -> dict:
    """A manifest record with its audio under ``audio``, whichever of :data:`AUDIO_ALIASES` named it."""
    if "audio" not in r and "path" in r:
        return {**r, "audio": r["path"]}
    return r


def manifest_audio(path: str | Path) -> list[str]:
    """The audio files a JSONL manifest lists (``audio`` or ``path``, relative to the manifest's
    folder): what ``asr transcribe`` needs of one, nothing else (no id or text)."""
    base = Path(path).parent
    out = []
    for lineno, r in read_jsonl(path, (), ManifestError, "manifest"):
        r = with_audio(r)
        if "audio" not in r:
            raise ManifestError(f"{path}:{lineno}: no audio file ('audio' or 'path')")
        audio = Path(r["audio"])
        out.append(str(audio if audio.is_absolute() else base / audio))
    return out


def expand_inputs(inputs: Iterable[str], unique: bool = True) -> list[str]:
    """Files as given; folders searched recursively for audio extensions; ``@list.txt`` read one path a
    line (relative to the list); ``.jsonl`` manifests give their ``audio`` entries. Order is kept;
    with ``unique`` a file named twice (however: relative, absolute, through a link) is kept where
    first named. Names that do not exist are kept, to be reported as errors."""
    out: list[str] = []
    for item in inputs:
        if item.startswith("@"):
            listing = Path(item[1:])
            if not listing.is_file():
                raise FileNotFoundError(f"{listing}: list file not found")
            for line in listing.read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.startswith("#"):
                    p = Path(line.strip())
                    out.append(str(p if p.is_absolute() else listing.parent / p))
        elif item.endswith(".jsonl") and Path(item).is_file():
            out += manifest_audio(item)
        elif Path(item).is_dir():
            # Everything with an audio extension but folders: broken links and unreadable files
            # too, so that each gets its error record rather than a silent skip.
            out += sorted(str(p) for p in Path(item).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and not p.is_dir())
        else:
            out.append(item)
    if not unique:
        return out
    # one file once, however it was named (relative, absolute, through a link), where first named
    seen: set[str] = set()
    return [p for p in out if not (os.path.realpath(p) in seen or seen.add(os.path.realpath(p)))]
