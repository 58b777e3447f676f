"""Download LibriSpeech subsets from OpenSLR: resumable, checked, unpacked in the original layout.

    asr download librispeech train-clean-100 dev-clean --out /data     # -> /data/LibriSpeech/train-clean-100/...

Each subset is the official archive (``SUBSET.tar.gz`` of OpenSLR resource 12, or 31 for the mini
subsets ``train-clean-5`` and ``dev-clean-2``). It is fetched into ``OUT/SUBSET.tar.gz.part``; an
interrupted download goes on from the bytes it has (an HTTP range request), checked against the
archive's published SHA-256 where there is one, renamed to ``OUT/SUBSET.tar.gz``, and unpacked
(``OUT/LibriSpeech/SUBSET/``, members that would land outside OUT refused). A subset that is
already unpacked (its ``.complete`` stamp) is not fetched again, so the same command resumes a run
of several subsets.
"""

from __future__ import annotations

import http.client
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .io import sha256

OPENSLR = "https://www.openslr.org/resources"
# SHA-256 of the official archives, as torchaudio's LIBRISPEECH dataset checks them. The mini
# subsets (resource 31) publish none: their digest is printed, for the user to compare.
SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
RESOURCE = {**{name: 12 for name in SHA256}, "train-clean-5": 31, "dev-clean-2": 31}
CHUNK = 1 << 20  # bytes read at a time: 1 MiB
STAMP = ".complete"


class DownloadError(UserError):
    """A subset that cannot be fetched or unpacked; the message names it and the reason."""


@dataclass(frozen=True)
class Fetched:
    subset: str
    folder: Path  # OUT/LibriSpeech/SUBSET
    sha256: str
    checked: bool  # against a published digest
    resumed_from: int  # bytes already there when this run started (0: a fresh download)


def archive_url(subset: str, base_url: str | None = None) -> str:
    """Where ``subset``'s archive is: ``BASE/SUBSET.tar.gz`` (default base: OpenSLR's resource)."""
    if subset not in RESOURCE:
        raise DownloadError(f"unknown LibriSpeech subset {subset!r}; subsets: {', '.join(RESOURCE)}")
    base = base_url.rstrip("/") if base_url else f"{OPENSLR}/{RESOURCE[subset]}"
    return f"{base}/{subset}.tar.gz"


def _fetch(url: str, part: Path, progress) -> int:
    """Fetch ``url`` into ``part``, going on from its length. Returns the bytes it held before."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the range starts at the end: nothing is missing
            return have
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"{url}: cannot connect ({getattr(e, 'reason', e)})") from None
    with response:
        if have and response.status != 206:  # the server sends the whole file again
            have = 0
        total = response.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        with open(part, "ab" if have else "wb") as f:
            done = have
            try:
                while block := response.read(CHUNK):
                    f.write(block)
                    done += len(block)
                    progress(done, total)
            except (OSError, http.client.HTTPException) as e:
                raise DownloadError(f"{url}: the connection broke after {done} bytes ({e}); the same "
                                    f"command goes on from there") from None
        if total is not None and done < total:
            raise DownloadError(f"{url}: the server sent {done} of {total} bytes; the same command goes on from there")
    return have


def _unpack(archive: Path, out: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        try:
            tar.extractall(out, filter="data")  # no absolute paths, no links out of OUT, no devices
        except tarfile.FilterError as e:
            raise DownloadError(f"{archive}: refused to unpack: {e}") from None


def read_checksums(path: str | Path) -> dict[str, str]:
    """``sha256sum``'s format, ``HEX  SUBSET.tar.gz`` a line -> {subset: hex}."""
    out = {}
    for k, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64 or not parts[1].lstrip("*").endswith(".tar.gz"):
            raise DownloadError(f"{path}:{k}: expected 'SHA256  SUBSET.tar.gz', found {line!r}")
        out[parts[1].lstrip("*").removesuffix(".tar.gz")] = parts[0].lower()
    return out


def download_librispeech(subset: str, out: str | Path, base_url: str | None = None, keep_archive: bool = False,
                         progress=None, checksum: str | None = None) -> Fetched:
    """Fetch, check and unpack one subset into ``out/LibriSpeech/SUBSET`` (see the module's docstring).

    ``base_url`` replaces OpenSLR's folder (a mirror, or a test server); ``keep_archive`` keeps the
    ``.tar.gz`` after unpacking; ``progress(bytes_done, bytes_total_or_None)`` is called as it goes;
    ``checksum`` is the SHA-256 to check instead of the published one (a mirror's own archives).
    """
    expected = checksum or SHA256.get(subset)
    url = archive_url(subset, base_url)
    out = Path(out)
    folder = out / "LibriSpeech" / subset
    stamp = folder / STAMP
    if stamp.is_file():
        return Fetched(subset, folder, stamp.read_text().strip(), expected is not None, -1)
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{subset}.tar.gz"
    part = out / f"{subset}.tar.gz.part"
    resumed = 0
    if not archive.exists():
        resumed = _fetch(url, part, progress or (lambda done, total: None))
        part.rename(archive)
    digest = sha256(archive)
    if expected is not None and digest != expected:
        archive.unlink()  # a damaged archive is never unpacked, nor resumed
        raise DownloadError(f"{url}: SHA-256 {digest} is not the expected {expected}: the archive "
                            f"was removed; run the command again to fetch it anew")
    _unpack(archive, out)
    if not folder.is_dir():
        raise DownloadError(f"{archive}: holds no LibriSpeech/{subset}/ folder: not a LibriSpeech archive")
    stamp.write_text(digest + "\n")
    if not keep_archive:
        archive.unlink()
    return Fetched(subset, folder, digest, expected is not None, resumed)


def print_progress(subset: str):
    """A progress callback writing ``SUBSET: N MB of M`` on stderr, on a terminal only."""
    if not sys.stderr.isatty():
        return None
    width = shutil.get_terminal_size().columns

    def show(done: int, total: int | None) -> None:
        line = f"{subset}: {done / 1e6:.0f} MB" + (f" of {total / 1e6:.0f}" if total else "")
        print(f"\r{line[:max(width - 1, 1)]}", end="", file=sys.stderr, flush=True)

    return show
