import json
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from asr.report import ReportError, align, alignment_text, analyse, load_results, write_report

REFS = [("a-1", "the cat sat on the mat", 3.0), ("a-2", "hello world", 12.0), ("b-1", "one two three", 7.0)]


def _records(hyps):
    return [{"id": i, "ref": r, "hyp": h, "duration": d} for (i, r, d), h in zip(REFS, hyps)]


def test_align_and_icefall_text():
    pairs = align("the cat sat on the mat", "the bat sat the mat too")
    assert pairs == [("the", "the"), ("cat", "bat"), ("sat", "sat"), ("on", None), ("the", "the"), ("mat", "mat"),
                     (None, "too")]
    assert alignment_text(pairs) == "the (cat->bat) sat (on->*) the mat (*->too)"
    assert align("", "x y") == [(None, "x"), (None, "y")]
    assert align("a b", "") == [("a", None), ("b", None)]


def test_analyse_counts_and_groups():
    s, aligned = analyse(_records(["the bat sat the mat", "hello world", "one three three"]))
    assert (s["substitutions"], s["deletions"], s["insertions"], s["reference_words"]) == (2, 1, 0, 11)
    assert s["wer"] == pytest.approx(3 / 11)
    assert s["per_speaker"]["a"]["wer"] == pytest.approx(2 / 8) and s["per_speaker"]["b"]["wer"] == pytest.approx(1 / 3)
    assert s["per_duration"]["0-5 s"]["utterances"] == 1 and s["per_duration"]["10-15 s"]["wer"] == 0
    assert ["cat", "bat", 1] in s["top_substitutions"] and s["top_deletions"] == [["on", 1]]
    assert s["sentence_error_rate"] == pytest.approx(2 / 3)


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])


def test_report_files_html_parses_with_embedded_plots(tmp_path):
    base = _records(["the bat sat the mat", "hello world", "one three three"])
    other = _records(["the cat sat on the mat", "hello word", "one two three"])
    write_report(tmp_path, {"ours": base, "peer": other}, pictures={"posteriors-x.png": b"\x89PNG fake"})
    for name in ("summary.json", "report.md", "report.html", "errs-ours.txt", "errs-peer.txt",
                 "wer_by_duration.png", "wer_by_speaker.png"):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["systems"]) == {"ours", "peer"} and summary["systems"]["peer"]["wer"] == pytest.approx(1 / 11)
    parser = _Collect()
    parser.feed((tmp_path / "report.html").read_text())
    assert "table" in parser.tags and len(parser.imgs) == 3
    assert all(src.startswith("data:image/png;base64,") for src in parser.imgs)  # self-contained
    md = (tmp_path / "report.md").read_text()
    assert "## Per utterance: peer against ours" in md and "2 utterances better, 1 worse" in md
    c = summary["comparisons"]["peer"]  # peer makes 1 error where ours makes 3, on the same 3 utterances
    assert c["against"] == "ours" and c["utterances"] == 3 and c["difference"] == pytest.approx(1 / 11 - 3 / 11)
    assert 0 < c["b_better"] < 1 and c["low"] < c["difference"] < c["high"]
    assert (f"WER peer − ours = {100 * c['difference']:+.2f} points, 95 % interval [{100 * c['low']:+.2f}, "
            f"{100 * c['high']:+.2f}] (paired bootstrap over 3 utterances, 10000 resamples); peer makes fewer word "
            f"errors in {100 * c['b_better']:.1f} % of the resamples.") in md
    errs = (tmp_path / "errs-ours.txt").read_text().splitlines()
    assert errs[0].startswith("%WER 27.27% [ 3 / 11, 0 ins, 1 del, 2 sub ]")
    assert "a-1:\tthe (cat->bat) sat (on->*) the mat" in errs


def test_compare_pairs_utterances_by_id():
    from asr.report import compare

    _, ours = analyse(_records(["the bat sat the mat", "hello world", "one three three"]))  # 2, 0, 1 errors
    _, peer = analyse(_records(["the cat sat on the mat", "hello", "one two three"]))  # 0, 1, 0 errors
    extra = analyse([{"id": "c-1", "ref": "only here", "hyp": ""}])[1]
    c = compare(ours, list(reversed(peer[1:])) + extra)  # other order, a-1 missing, c-1 not in ours
    assert c.utterances == 2 and c.difference == pytest.approx((1 - 1) / 5)  # a-2 and b-1: 1 error each
    assert compare(ours, extra) is None


def test_bad_results_file(tmp_path):
    (tmp_path / "r.jsonl").write_text('{"id": "x", "ref": "a"}\n')
    with pytest.raises(ReportError, match=r"r.jsonl:1: missing field\(s\) hyp"):
        load_results(tmp_path / "r.jsonl")


def test_report_cli(tmp_path):
    for name, hyps in (("ours", ["the cat sat on the mat", "hello", "one two three"]), ("peer", ["", "", ""])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records(hyps)))
    r = subprocess.run([sys.executable, "-m", "asr.cli", "report", tmp_path / "ours" / "results.jsonl",
                        tmp_path / "peer" / "results.jsonl", "--out", tmp_path / "rep"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ours: WER 9.09%" in r.stdout and "peer: WER 100.00%" in r.stdout
    assert "WER peer − ours = +90.91 points" in r.stdout and "peer makes fewer word errors in 0.0 % of" in r.stdout


def test_word_confidences_give_auc_ece_and_a_plot(tmp_path):
    records = _records(["the bat sat the mat", "hello world", "one three three"])
    # words right: the(T) bat(F) sat(T) the(T) mat(T) | hello world (T T) | one(T) three(F) three(T)
    confidences = [[0.9, 0.2, 0.8, 0.9, 0.9], [0.8, 0.8], [0.9, 0.4, 0.6]]
    for r, c in zip(records, confidences):
        r["confidences"] = c
    summary = write_report(tmp_path, {"sys": records})
    conf = summary["confidence"]
    assert (conf["words"], conf["right"]) == (10, 8)
    assert conf["auc"] == 1.0  # every wrong word (0.2, 0.4) below every right one
    # bins: [0.2,0.3): 0.2 wrong; [0.4,0.5): 0.4 wrong; [0.6,0.7): 0.6 right; [0.8,0.9): 3 x 0.8 right;
    # [0.9,1]: 4 x 0.9 right -> (0.2 + 0.4 + 0.4 + 3 x 0.2 + 4 x 0.1) / 10
    assert conf["ece"] == pytest.approx((0.2 + 0.4 + 0.4 + 0.6 + 0.4) / 10, abs=1e-4)
    assert (tmp_path / "confidence.png").stat().st_size > 1000
    assert "## Word confidence" in (tmp_path / "report.md").read_text()
    plain = write_report(tmp_path / "plain", {"sys": _records(["a", "b", "c"])})
    assert "confidence" not in plain and not (tmp_path / "plain" / "confidence.png").exists()


def test_records_whose_confidences_do_not_match_their_words_are_left_out_and_said(tmp_path):
    records = _records(["", "hello world", "one"])  # an empty hypothesis has no words to score
    records[1]["confidences"] = [0.5, 0.5]  # the others have none
    conf = write_report(tmp_path, {"sys": records})["confidence"]
    assert (conf["words"], conf["left_out_records"]) == (2, 2)
    assert "sys: 2 utterance(s) left out of these figures" in (tmp_path / "report.md").read_text()
    records[1]["confidences"] = [0.5]  # one short
    records[0]["confidences"], records[2]["confidences"] = [], [0.9]
    conf = write_report(tmp_path, {"sys": records})["confidence"]
    assert (conf["words"], conf["right"], conf["left_out_records"]) == (1, 1, 1)
    records[2]["confidences"] = [0.9, 0.1]  # no record left with words to score: no figures
    assert "confidence" not in write_report(tmp_path / "none", {"sys": records})
    assert "confidence" not in write_report(tmp_path / "plain", {"sys": _records(["a", "b"])})


def _chromium():
    import shutil

    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="needs a headless Chromium (Debian: apt-get install chromium)")
def test_report_opens_in_a_real_browser_with_every_plot(tmp_path):
    """report.html in headless Chromium: every image decodes (it has a size) and nothing is
    written to the browser console; a screenshot is taken."""
    records = _records(["the bat sat the mat", "hello world", "one three three"])
    for r, c in zip(records, [[0.9, 0.2, 0.8, 0.9, 0.9], [0.8, 0.8], [0.9, 0.4, 0.6]]):
        r["confidences"] = c
    write_report(tmp_path / "r", {"ours": records, "theirs": _records(["the cat sat on the mat", "hello", "one two"])})
    report = tmp_path / "r" / "report.html"
    expected = report.read_text().count("<img ")
    assert expected >= 3  # WER by duration and by speaker, word confidence
    # A page beside it loads the report in a frame and writes what it finds into its own DOM.
    (tmp_path / "r" / "check.html").write_text("""<html><body><iframe id="f" src="report.html" width="1200"
        height="800"></iframe><script>
        document.getElementById("f").onload = function () {
          var imgs = Array.from(this.contentDocument.images);
          document.body.setAttribute("data-images", JSON.stringify(
            imgs.map(function (i) { return [i.complete, i.naturalWidth, i.naturalHeight]; })));
        };</script></body></html>""")
    browser = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
               "--virtual-time-budget=10000"]
    r = subprocess.run([*browser, "--dump-dom", (tmp_path / "r" / "check.html").as_uri()], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    found = json.loads(__import__("html").unescape(r.stdout.split('data-images="', 1)[1].split('"', 1)[0]))
    assert len(found) == expected and all(ok and w > 0 and h > 0 for ok, w, h in found), found
    shot = tmp_path / "report.png"
    r = subprocess.run([*browser, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1280,2400",
                        report.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.stat().st_size > 10_000, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], console


def test_speakers_sort_as_numbers():
    from asr.report import analyse

    records = [{"id": f"{spk}-1-0", "ref": "a b", "hyp": "a b", "speaker": spk} for spk in ("5105", "61", "672")]
    assert list(analyse(records)[0]["per_speaker"]) == ["61", "672", "5105"]


def test_report_row_cer_is_of_the_scored_words_not_an_extra_figure(tmp_path):
    from asr.report import write_report

    records = [{"id": "s-1-0", "ref": "a cat", "hyp": "a cat"}]
    write_report(tmp_path, {"asr-phone": records}, extra={"cer": 0.9})  # e.g. evaluate's other head's CER
    row = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| asr-phone |")][0]
    assert row.split("|")[3].strip() == "0.00"
