"""Corpora and manifests: what a recipe prepares, what `asr evaluate` and training read.

A manifest is JSONL, one utterance a line::

    {"id": "1089-134686-0000", "audio": "1089/134686/1089-134686-0000.flac",
     "duration": 10.43, "sample_rate": 16000, "text": "he hoped there would be stew", "speaker": "1089"}

``audio`` may be relative: it is then resolved against the manifest's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .features import AudioError, audio_info
from .io import ManifestError, is_audio_file, read_jsonl, with_audio, write_jsonl
from .text import normalize

REQUIRED_FIELDS = ("id", "audio", "text")  # duration is read from the file when missing; speaker defaults to "unknown"


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: str  # absolute path
    duration: float  # seconds
    text: str  # normalised: lower-case words separated by single spaces
    speaker: str
    sample_rate: int = 0


def write_manifest(utts: list[Utterance], path: str | Path) -> None:
    """Write ``utts`` as JSONL; audio paths under the manifest's folder are stored relative to it."""
    path = Path(path)
    base = path.parent.resolve()
    lines = []
    for u in utts:
        audio = Path(u.audio).resolve()
        try:
            audio = audio.relative_to(base)
        except ValueError:
            pass  # outside the manifest's folder: stored absolute, since a relative path is read against that folder
        record = dict(id=u.id, audio=str(audio), duration=round(u.duration, 3), sample_rate=u.sample_rate,
                      text=u.text, speaker=u.speaker)
        lines.append(record)
    write_jsonl(path, lines)


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read and check a JSONL manifest; errors name the file and line."""
    base = Path(path).parent
    utts, seen = [], set()
    for lineno, r in read_jsonl(path, (), ManifestError, "manifest"):
        r = with_audio(r)
        missing = [k for k in REQUIRED_FIELDS if k not in r]
        if missing:
            raise ManifestError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}"
                                + (" (the audio file as 'audio' or 'path')" if "audio" in missing else ""))
        if r["id"] in seen:
            raise ManifestError(f"{path}:{lineno}: duplicate id {r['id']!r}")
        seen.add(r["id"])
        audio = Path(r["audio"])
        if not audio.is_absolute():
            audio = base / audio
        if "duration" in r:
            duration, rate = float(r["duration"]), int(r.get("sample_rate", 0))
        else:
            try:
                duration, rate = audio_info(audio)
            except AudioError:
                duration, rate = 0.0, 0  # reading the audio later reports the problem, naming the file
        utts.append(Utterance(str(r["id"]), str(audio), duration, normalize(r["text"]),
                              str(r.get("speaker", "unknown")), rate))
    return utts


def _probe(audio: Path, problems: list[str]) -> tuple[float, int] | None:
    """Duration and rate of ``audio``, or ``None`` with the reason added to ``problems``."""
    try:
        return audio_info(audio)
    except AudioError as e:
        problems.append(str(e))
        return None


def _utterance(uid: str, audio: Path, text: str, speaker: str, problems: list[str]) -> list[Utterance]:
    """The utterance of ``audio`` with its normalised ``text``, its duration and rate read from the
    file; none if the file cannot be read (its problem is added to ``problems``)."""
    probed = _probe(audio, problems)
    if probed is None:
        return []
    duration, rate = probed
    return [Utterance(uid, str(audio), duration, normalize(text), speaker, rate)]


@dataclass
class PrepareReport:
    utterances: int
    hours: float
    problems: list[str]


def prepare_librispeech(corpus: str | Path, subset: str, out: str | Path) -> PrepareReport:
    """Manifest for ``corpus/subset/<speaker>/<chapter>/*.trans.txt`` with any soundfile-readable audio.

    Unreadable audio, audio without a transcript line and transcript lines without audio
    are listed in the report's ``problems`` and left out of the manifest.
    """
    root = Path(corpus) / subset
    if not root.is_dir():
        raise ManifestError(f"{root}: LibriSpeech subset folder not found")
    utts, problems = [], []
    for trans in sorted(root.glob("*/*/*.trans.txt")):
        audio_by_id = {p.stem: p for p in trans.parent.iterdir() if is_audio_file(p)}
        texts = {}
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, text = line.partition(" ")
            texts[uid] = text
            if uid not in audio_by_id:
                problems.append(f"{trans}:{lineno}: no audio file for {uid}")
        for uid, audio in sorted(audio_by_id.items()):
            if uid not in texts:
                problems.append(f"{audio}: no transcript in {trans.name}")
                continue
            utts += _utterance(uid, audio, texts[uid], uid.split("-")[0], problems)
    if not utts:
        raise ManifestError(f"{root}: no utterances found (expected <speaker>/<chapter>/*.trans.txt)")
    write_manifest(utts, out)
    return PrepareReport(len(utts), sum(u.duration for u in utts) / 3600, problems)


def prepare_folder(audio_dir: str | Path, transcripts: str | Path, out: str | Path) -> PrepareReport:
    """Manifest for a folder of audio plus a transcript TSV.

    Without a header the columns are ``path<TAB>text[<TAB>speaker]``. A first line that
    names a ``path`` column is a header: columns are then found by name (``path``,
    ``text`` or ``transcript``, optional ``speaker`` and ``id``/``utt_id``). ``path`` is
    relative to ``audio_dir``; the id defaults to the file name without extension and the
    speaker to ``unknown``.
    """
    audio_dir, transcripts = Path(audio_dir), Path(transcripts)
    if not transcripts.is_file():
        raise ManifestError(f"{transcripts}: transcript file not found")
    lines = transcripts.read_text(encoding="utf-8").splitlines()
    columns = {"path": 0, "text": 1, "speaker": 2}
    first = 0
    if lines and "path" in lines[0].lower().split("\t"):
        header = [h.strip().lower() for h in lines[0].split("\t")]
        columns = {name: header.index(alias) for name, aliases in
                   {"path": ["path"], "text": ["text", "transcript"], "speaker": ["speaker"], "id": ["id", "utt_id"]}.items()
                   for alias in aliases if alias in header}
        if "text" not in columns:
            raise ManifestError(f"{transcripts}:1: header has no 'text' or 'transcript' column")
        first = 1
    utts, problems = [], []
    for lineno, line in enumerate(lines[first:], first + 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        get = lambda name: cols[columns[name]].strip() if name in columns and columns[name] < len(cols) else ""  # noqa: E731
        if not get("path") or len(cols) < 2:
            problems.append(f"{transcripts}:{lineno}: expected 'path<TAB>text[<TAB>speaker]'")
            continue
        audio = audio_dir / get("path")
        if not audio.is_file():
            problems.append(f"{audio}: file not found (listed at {transcripts}:{lineno})")
            continue
        utts += _utterance(get("id") or audio.stem, audio, get("text"), get("speaker") or "unknown", problems)
    if not utts:
        raise ManifestError(f"{transcripts}: no usable utterances")
    write_manifest(utts, out)
    return PrepareReport(len(utts), sum(u.duration for u in utts) / 3600, problems)
