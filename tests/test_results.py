"""RESULTS.md quotes logs: every figure in a table cell that names a kept file must be in that file.

A figure matches a logged value rounded to its decimals, as is, times 100 (a fraction quoted
as a percentage) or divided by 60 (seconds quoted as minutes); `time`'s 93m38.7s is 93.6 minutes.
"""

import re
from pathlib import Path

from conftest import REPO

RESULTS_DIR = REPO / "recipes" / "librispeech"
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+)(?![\w.])")  # figures with decimals; counts and epochs are not checked
CITED = re.compile(r"`((?:recipes/librispeech/)?results/[^`\s]+)`")


def _backed(figure: str, logged: list[float]) -> bool:
    """Whether a figure quoted in RESULTS.md is a logged value rounded, as is or as a percentage of a fraction."""
    d = len(figure.split(".")[1])
    value = float(figure)
    return any(round(n, d) == value or round(n * 100, d) == value or round(n / 60, d) == value for n in logged)


def _text(path: Path) -> str:
    """A cited file's text; a cited folder's: its .json and .log files."""
    files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".log")) if path.is_dir() else [path]
    return " ".join(p.read_text(encoding="utf-8") for p in files)


def unbacked_figures(text: str) -> list[str]:
    """Table cells that cite a file under results/ and quote a figure that file does not hold."""
    problems = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        for cell in line.strip("|").split("|"):
            cited = [RESULTS_DIR / c.removeprefix("recipes/librispeech/") for c in CITED.findall(cell)]
            files = [p for p in cited if p.exists()]
            if not cited:
                continue
            if len(files) < len(cited):
                problems.append(f"{cell.strip()}: cites a file that is not kept")
                continue
            text = " ".join(_text(p) for p in files)
            logged = [float(n) for n in re.findall(r"\d+\.?\d*", text)]
            logged += [int(m) + float(s) / 60 for m, s in re.findall(r"(\d+)m(\d+\.\d+)s", text)]  # `time`: 93m38.7s
            for figure in NUMBER.findall(CITED.sub("", cell)):
                if not _backed(figure, logged):
                    problems.append(f"{figure} in '{cell.strip()}' is not in {', '.join(p.name for p in files)}")
    return problems


def test_every_figure_of_a_table_cell_is_in_the_log_it_cites():
    assert unbacked_figures((REPO / "RESULTS.md").read_text(encoding="utf-8")) == []


def test_the_check_finds_a_figure_missing_from_its_log(tmp_path):
    log = "results/bench-machine.log"
    assert (RESULTS_DIR / log).is_file()
    assert unbacked_figures(f"| a | 123.456 (`{log}`) |") == [f"123.456 in '123.456 (`{log}`)' is not in bench-machine.log"]
    assert unbacked_figures("| a | 1.5 (`results/none.log`) |") == ["1.5 (`results/none.log`): cites a file that is not kept"]


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start:end if end >= 0 else None]


def readme_figures_missing_from_results(readme: str, results: str) -> list[str]:
    """Figures of the README's results table that RESULTS.md's shipped-model tables (whose cells cite
    their logs, checked above) do not hold."""
    table = [line for line in _section(readme, "## Results").splitlines() if line.startswith("|")]
    head = results[:results.index("# Lab notes")]
    held = set(NUMBER.findall(head))
    return [f for line in table for f in NUMBER.findall(line) if f not in held]


def test_the_readme_results_come_from_the_results_tables():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    results = (REPO / "RESULTS.md").read_text(encoding="utf-8")
    assert NUMBER.findall(_section(readme, "## Results")), "the README's results table has no figure"
    assert readme_figures_missing_from_results(readme, results) == []
    dev_wer = re.search(r"\| dev WER \| \*\*(\d+\.\d+) %", readme).group(1)  # the table's first figure
    assert readme_figures_missing_from_results(readme.replace(f"{dev_wer} %", "99.99 %"), results) == ["99.99"]
