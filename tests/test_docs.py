"""The documentation: the site builds without a warning, and every example on the front page and the
task pages runs, so that a changed option breaks a test rather than a reader.

Examples are the fenced blocks of README.md and docs/*.md, run in the order of their page, in a
folder of the page's own that holds the shipped sample clips under the names the pages use
(``talk.flac``, ``other.wav``, ``clips/``, ``dev.jsonl``...):

- ``bash`` blocks run with ``bash -euo pipefail``, the venv's ``asr`` first on PATH;
- ``python`` blocks run in one namespace a page, in this process, in that folder;
- ``toml`` blocks are parsed;
- an HTML comment just above a block changes that: ``<!-- example: file NAME -->`` writes the block
  to NAME (a grammar, a word list, a config the next block uses); ``<!-- example: server -->`` runs
  ``asr serve`` on port 2700 while the block runs; ``<!-- example: shared -->`` needs the LibriSpeech
  and FSDD copies of ../shared (linked into the folder as ``LibriSpeech/`` and ``fsdd/``);
  ``<!-- example: not run: REASON -->`` leaves it out (GPUs, hours of training, a microphone),
  and then every ``asr`` command line in it is still parsed by the CLI's own argument parser.
"""

import ast
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile as sf

from conftest import LIBRISPEECH, FSDD, REPO, TEST_DATA

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SAMPLES = REPO / "asr" / "assets" / "samples"
BIN = Path(sys.executable).parent  # the venv's bin: its asr, python and pip
BLOCK = re.compile(r"(?:<!--\s*example:\s*(?P<mark>.*?)\s*-->\s*\n)?^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```\s*$",
                   re.M | re.S)
PORT = 2700  # the port the serving page's examples name


@dataclass
class Example:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    mark: str  # "" (run), "file NAME", "server", "shared", "not run: REASON"
    body: str

    def __str__(self) -> str:
        page = self.page.relative_to(REPO) if self.page.is_relative_to(REPO) else self.page
        return f"{page}:{self.line}"


def examples(page: Path) -> list[Example]:
    text = page.read_text(encoding="utf-8")
    found = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("lang")) + 1
        found.append(Example(page, line, m["lang"], (m["mark"] or "").strip(), m["body"]))
    return found


def asr_command_lines(script: str) -> list[list[str]]:
    """The argument lists of the ``asr`` commands of a shell script (continuations joined, comments,
    pipes, ``&&`` and ``&`` split; ``python -m asr`` and ``torchrun ... -m asr`` included)."""
    commands = []
    script = re.sub(r"\$\(\([^)]*\)\)|\$\{?\w+\}?", "1", script)  # shell arithmetic and variables: a value
    for line in script.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            raise AssertionError(f"not a shell line: {line!r} ({e})") from None
        part: list[str] = []
        for w in [*words, "|"]:
            if w in ("|", "&&", "||", ";", "&"):
                if "asr" in part:
                    start = part.index("asr")
                    if start == 0 or part[start - 1] in ("-m", "time") or part[start - 1].endswith("/asr"):
                        commands.append(part[start + 1:])
                elif part and part[0].endswith("/asr"):
                    commands.append(part[1:])
                part = []
            else:
                part.append(w)
    return commands


def check_parses(example: Example) -> None:
    """A block that is not run: its ``asr`` commands must still be ones the CLI accepts."""
    from asr.cli import build_parser

    if example.lang == "python":
        ast.parse(example.body, str(example))
        return
    for argv in asr_command_lines(example.body):
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            raise AssertionError(f"{example}: `asr {shlex.join(argv)}` is not a command the CLI accepts") from None


def _clip(src: Path, dst: Path, **kw) -> None:
    samples, rate = sf.read(src, dtype="float32")
    sf.write(dst, samples, rate, **kw)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """The sample clips under the names the pages use."""
    d = tmp_path_factory.mktemp("docs-clips")
    opus = sorted(SAMPLES.glob("*.opus"))
    _clip(opus[0], d / "talk.flac")
    _clip(opus[1], d / "other.wav", subtype="PCM_16")
    _clip(opus[2], d / "a.wav", subtype="PCM_16")
    shutil.copy(TEST_DATA / "3_jackson_0.wav", d / "cmd.wav")
    (d / "clips").mkdir()
    for p in opus:
        shutil.copy(p, d / "clips" / p.name)
    shutil.copy(SAMPLES / "manifest.jsonl", d / "clips" / "manifest.jsonl")
    (d / "dev.jsonl").write_text((SAMPLES / "manifest.jsonl").read_text().replace('"audio": "', '"audio": "clips/'))
    return d


def _serve(cwd: Path) -> subprocess.Popen:
    server = subprocess.Popen([str(BIN / "asr"), "serve", "--port", str(PORT), "--workers", "1"], cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health?workers=1", timeout=2):
                return server
        except OSError:
            if server.poll() is not None:
                raise AssertionError(f"asr serve exited: {server.stderr.read().decode()}")
            time.sleep(0.3)
    server.kill()
    raise AssertionError("asr serve did not answer within 120 s")


def _stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        raise


def run_example(example: Example, cwd: Path, namespace: dict) -> None:
    if example.lang == "toml":
        tomllib.loads(example.body)
    if example.mark.startswith("file "):
        (cwd / example.mark.removeprefix("file ").strip()).write_text(example.body, encoding="utf-8")
        return
    if example.lang not in ("bash", "python"):
        return
    server = _serve(cwd) if example.mark == "server" else None
    try:
        if example.lang == "bash":
            env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", example.body], cwd=cwd, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{example} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        else:
            code = compile("\n" * (example.line) + example.body, str(example.page), "exec")
            exec(code, namespace)
    finally:
        if server is not None:
            _stop(server)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_examples_of_a_page_run(page, clips, tmp_path, monkeypatch):
    blocks = examples(page)
    for e in blocks:
        if e.mark and not (e.mark.startswith(("file ", "not run: ")) or e.mark in ("server", "shared")):
            raise AssertionError(f"{e}: unknown example mark {e.mark!r}")
        if e.mark == "not run:" or (e.mark.startswith("not run:") and not e.mark.removeprefix("not run:").strip()):
            raise AssertionError(f"{e}: a block that is not run says why")
    shared = LIBRISPEECH.exists() and FSDD.exists()
    cwd = tmp_path / "work"
    shutil.copytree(clips, cwd, symlinks=True)
    if shared:
        (cwd / "LibriSpeech").symlink_to(LIBRISPEECH)
        (cwd / "fsdd").symlink_to(FSDD)
    monkeypatch.chdir(cwd)
    namespace = {"__name__": "__example__"}
    for e in blocks:
        if e.mark.startswith("not run:") or (e.mark == "shared" and not shared):
            check_parses(e)
        else:
            run_example(e, cwd, namespace)


# --- the extractor itself -------------------------------------------------------------------

def test_the_extractor_finds_blocks_their_marks_and_asr_commands(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("text\n\n<!-- example: not run: needs 8 GPUs -->\n```bash\n"
                    "torchrun --nproc_per_node 8 -m asr train c.toml --resume  # comment\n"
                    "arecord -r 16000 | asr stream - \\\n    --format jsonl\n```\n\n```python\nx = 1\n```\n")
    a, b = examples(page)
    assert (a.line, a.lang, a.mark, b.line, b.lang, b.mark) == (4, "bash", "not run: needs 8 GPUs", 10, "python", "")
    assert asr_command_lines(a.body) == [["train", "c.toml", "--resume"], ["stream", "-", "--format", "jsonl"]]
    assert asr_command_lines("asr transcribe x/ --shard $((TASK + 1))/$COUNT --out out/${TASK}  # a Slurm task\n") \
        == [["transcribe", "x/", "--shard", "1/1", "--out", "out/1"]]


def test_a_changed_option_breaks_a_block_that_is_not_run(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("<!-- example: not run: hours -->\n```bash\nasr transcribe a.wav --beam-width 5\n```\n")
    (block,) = examples(page)
    with pytest.raises(AssertionError, match="not a command the CLI accepts"):
        check_parses(block)
    block.body = "asr transcribe a.wav --beam-size 5\n"
    check_parses(block)


# --- the site -------------------------------------------------------------------------------

def test_the_docs_site_builds_without_a_warning(tmp_path):
    """Sphinx with warnings as errors: a broken link between pages, a page left out of the contents,
    a docstring that does not parse, or a public name the reference leaves out fails it."""
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(REPO / "docs"), str(tmp_path / "site")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-5000:]
    assert (tmp_path / "site" / "reference.html").is_file()


def test_every_public_name_has_a_docstring_with_an_example_and_a_reference_entry():
    import asr

    reference = (REPO / "docs" / "reference.md").read_text(encoding="utf-8")
    for name in asr.__all__:
        if name == "__version__":
            continue
        doc = getattr(asr, name).__doc__ or ""
        assert ">>>" in doc, f"asr.{name} has no example in its docstring"
        assert re.search(rf"asr\.{name}\b", reference), f"docs/reference.md leaves out asr.{name}"


def test_the_docstring_examples_run(monkeypatch):
    import doctest

    import asr

    monkeypatch.chdir(SAMPLES)
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    ran = 0
    for name in asr.__all__:
        if name == "__version__":
            continue
        for test in finder.find(getattr(asr, name), f"asr.{name}", globs={"asr": asr}):
            runner.run(test)
            ran += len(test.examples)
    assert ran > 0
    assert runner.summarize(verbose=False).failed == 0
