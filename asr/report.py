"""Evaluation reports: where the errors are, for one system or several side by side.

Input is per-utterance records ``{"id", "ref", "hyp"}`` (optionally ``speaker``,
``duration``, and ``confidences``, one per hypothesis word), from ``asr evaluate`` or any
other recogniser. Output, in one folder:
``summary.json``, ``errs.txt`` (icefall style), ``report.md`` with PNG plots beside it,
and ``report.html`` with the same plots embedded so that it opens offline as one file.
Several systems are compared with the first utterance by utterance, and by a paired bootstrap
(``metrics.paired_bootstrap``) for whether a WER gap is more than noise.
"""

from __future__ import annotations

import base64
import collections
import re
import html
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from .io import atomic_write_text, read_jsonl
from .errors import UserError
from .metrics import PairedBootstrap, calibration_bins, char_errors, expected_calibration_error, paired_bootstrap, roc_auc

DURATION_BUCKETS = (0, 5, 10, 15, 20, 30, float("inf"))  # seconds


class ReportError(UserError):
    pass


def load_results(path: str | Path) -> list[dict[str, Any]]:
    """Records of a results JSONL; each needs ``id``, ``ref`` and ``hyp`` (errors name file and line).
    Records of utterances that failed (``error`` set, as ``asr evaluate`` writes them) are left out."""
    records = [r for _, r in read_jsonl(path, ("id", "ref", "hyp"), ReportError, "results file") if not r.get("error")]
    if not records:
        raise ReportError(f"{path}: no results")
    return records


@dataclass
class Aligned:
    """One utterance aligned word by word: pairs (ref word or None, hyp word or None)."""

    id: str
    pairs: list[tuple[str | None, str | None]]
    ref: str
    hyp: str
    speaker: str
    duration: float | None

    @property
    def errors(self) -> int:
        return sum(r != h for r, h in self.pairs)

    @property
    def ref_words(self) -> int:
        return sum(r is not None for r, _ in self.pairs)


def align(ref: str, hyp: str) -> list[tuple[str | None, str | None]]:
    """Word alignment by jiwer's Levenshtein: equal and substituted pairs, (w, None) deletions, (None, w) insertions."""
    r, h = ref.split(), hyp.split()
    if not r:
        return [(None, w) for w in h]
    out = jiwer.process_words(ref, hyp if h else "")
    pairs: list[tuple[str | None, str | None]] = []
    for chunk in out.alignments[0]:
        rs, hs = r[chunk.ref_start_idx:chunk.ref_end_idx], h[chunk.hyp_start_idx:chunk.hyp_end_idx]
        if chunk.type in ("equal", "substitute"):
            pairs += list(zip(rs, hs))
        elif chunk.type == "delete":
            pairs += [(w, None) for w in rs]
        else:
            pairs += [(None, w) for w in hs]
    return pairs


def _natural(name: str) -> tuple:
    """Sort key that puts numbers in number order: speaker 61 before 672 before 5105."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def _speaker(r: dict) -> str:
    return str(r.get("speaker") or (r["id"].split("-")[0] if "-" in r["id"] else "unknown"))


def analyse(records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Aligned]]:
    """Corpus counts, per-speaker and per-duration WER, most frequent errors; plus each utterance aligned."""
    aligned = [Aligned(r["id"], align(r["ref"], r["hyp"]), r["ref"], r["hyp"], _speaker(r), r.get("duration"))
               for r in records]
    subs, ins, dels = collections.Counter(), collections.Counter(), collections.Counter()
    for a in aligned:
        for ref, hyp in a.pairs:
            if ref is not None and hyp is not None and ref != hyp:
                subs[(ref, hyp)] += 1
            elif ref is None:
                ins[hyp] += 1
            elif hyp is None:
                dels[ref] += 1
    n = sum(a.ref_words for a in aligned)
    s, i, d = sum(subs.values()), sum(ins.values()), sum(dels.values())
    chars = char_errors([a.ref for a in aligned], [a.hyp for a in aligned])

    def group_wer(groups: dict[str, list[Aligned]]) -> dict[str, dict[str, float | int]]:
        return {k: {"wer": sum(a.errors for a in v) / max(1, sum(a.ref_words for a in v)), "utterances": len(v),
                    "words": sum(a.ref_words for a in v)} for k, v in groups.items()}

    by_speaker: dict[str, list[Aligned]] = collections.defaultdict(list)
    by_duration: dict[str, list[Aligned]] = collections.defaultdict(list)
    for a in aligned:
        by_speaker[a.speaker].append(a)
        by_duration[_bucket(a.duration)].append(a)
    summary = {
        "wer": (s + d + i) / max(1, n), "cer": chars.rate, "substitutions": s, "deletions": d, "insertions": i,
        "reference_words": n, "utterances": len(aligned),
        "sentence_error_rate": sum(a.errors > 0 for a in aligned) / len(aligned),
        "per_speaker": dict(sorted(group_wer(by_speaker).items(), key=lambda kv: _natural(kv[0]))),
        "per_duration": {k: v for k, v in sorted(group_wer(by_duration).items(), key=lambda kv: _bucket_key(kv[0]))},
        "top_substitutions": [[r, h, c] for (r, h), c in subs.most_common(20)],
        "top_insertions": [[w, c] for w, c in ins.most_common(20)],
        "top_deletions": [[w, c] for w, c in dels.most_common(20)],
    }
    confidence = confidence_summary(records, aligned)
    if confidence is not None:
        summary["confidence"] = confidence
    return summary, aligned


def _word_confidences(records: list[dict[str, Any]], aligned: list[Aligned]
                      ) -> tuple[list[float], list[bool], int] | None:
    """Every hypothesis word's confidence and whether it is right (paired with the same reference
    word by the WER alignment, ``aligned``: one per record), over the records whose ``confidences``
    give one per word of ``hyp``, and how many records were left out for not doing so; None if no
    record has confidences."""
    if not any(isinstance(r.get("confidences"), list) for r in records):
        return None
    conf: list[float] = []
    right: list[bool] = []
    left_out = 0
    for r, a in zip(records, aligned):
        if not (isinstance(r.get("confidences"), list) and len(r["confidences"]) == len(r["hyp"].split())):
            left_out += 1
            continue
        conf += [float(c) for c in r["confidences"]]
        right += [ref == hyp for ref, hyp in a.pairs if hyp is not None]
    return conf, right, left_out


def confidence_summary(records: list[dict[str, Any]], aligned: list[Aligned]) -> dict[str, Any] | None:
    """How well word confidences tell right from wrong words: ROC AUC, expected calibration
    error (10 bins), mean confidence against the share right; None without confidences."""
    got = _word_confidences(records, aligned)
    if got is None or not got[0]:
        return None
    conf, right, left_out = got
    # records whose confidences are not one per hypothesis word: left out of these figures, and said so
    return {"left_out_records": left_out, "words": len(conf), "right": sum(right), "mean_confidence": round(sum(conf) / len(conf), 4),
            "share_right": round(sum(right) / len(right), 4), "auc": round(roc_auc(conf, right), 4),
            "ece": round(expected_calibration_error(conf, right), 4),
            "bins": [[n, round(c, 4), round(r, 4)] for n, c, r in calibration_bins(conf, right) if n]}


def _bucket(duration: float | None) -> str:
    if duration is None:
        return "unknown"
    for lo, hi in zip(DURATION_BUCKETS, DURATION_BUCKETS[1:]):
        if lo <= duration < hi:
            return f"{lo}-{hi:g} s" if hi != float("inf") else f">= {lo} s"
    return "unknown"


def _bucket_key(name: str) -> float:
    try:
        return float(name.split("-")[0].lstrip(">= ").split()[0])
    except ValueError:
        return float("inf")


def alignment_text(pairs: list[tuple[str | None, str | None]]) -> str:
    """icefall style: correct words as is, errors as ``(REF->HYP)`` with ``*`` for nothing."""
    return " ".join(r if r == h else f"({r or '*'}->{h or '*'})" for r, h in pairs)


def errs_text(name: str, summary: dict[str, Any], aligned: list[Aligned]) -> str:
    lines = [f"%WER {summary['wer']:.2%} [ {summary['substitutions'] + summary['deletions'] + summary['insertions']} / "
             f"{summary['reference_words']}, {summary['insertions']} ins, {summary['deletions']} del, "
             f"{summary['substitutions']} sub ] ({name})", "", "PER-UTT DETAILS: corr or (ref->hyp)"]
    lines += [f"{a.id}:\t{alignment_text(a.pairs)}" for a in aligned]
    lines += ["", "SUBSTITUTIONS: count ref -> hyp"] + [f"{c}   {r} -> {h}" for r, h, c in summary["top_substitutions"]]
    lines += ["", "DELETIONS: count ref"] + [f"{c}   {w}" for w, c in summary["top_deletions"]]
    lines += ["", "INSERTIONS: count hyp"] + [f"{c}   {w}" for w, c in summary["top_insertions"]]
    return "\n".join(lines) + "\n"


def compare(base: list[Aligned], other: list[Aligned], samples: int = 10_000) -> PairedBootstrap | None:
    """Paired bootstrap of ``other`` against ``base`` over the utterances (by id) both decoded;
    None when they share none or those have no reference words."""
    by_id = {a.id: a for a in base}
    pairs = [(by_id[a.id], a) for a in other if a.id in by_id]
    if not pairs or not sum(b.ref_words for b, _ in pairs):
        return None
    return paired_bootstrap([b.errors for b, _ in pairs], [a.errors for _, a in pairs],
                            [b.ref_words for b, _ in pairs], samples=samples)


def comparison_text(name: str, c: dict[str, Any]) -> str:
    """One line for a ``comparisons`` entry of summary.json: the bootstrap of ``name`` against
    ``c["against"]``, as the report, ``asr report`` and the benchmarks print it."""
    return (f"WER {name} − {c['against']} = {100 * c['difference']:+.2f} points, 95 % interval "
            f"[{100 * c['low']:+.2f}, {100 * c['high']:+.2f}] (paired bootstrap over {c['utterances']} utterances, "
            f"{c['samples']} resamples); {name} makes fewer word errors in {100 * c['b_better']:.1f} % of the resamples")


# ---------------------------------------------------------------------------------------------
# Plots


def _figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _plots(systems: dict[str, tuple[dict, list[Aligned]]], records_by_system: dict[str, list[dict]]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pngs = {}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, (summary, aligned) in systems.items():
        buckets = summary["per_duration"]
        ax.plot(list(buckets), [100 * v["wer"] for v in buckets.values()], marker="o", label=name)
    ax.set_xlabel("utterance duration")
    ax.set_ylabel("WER (%)")
    ax.set_title("WER against utterance length")
    ax.grid(alpha=0.3)
    ax.legend()
    pngs["wer_by_duration.png"] = _figure_png(fig)

    speakers = sorted({s for summary, _ in systems.values() for s in summary["per_speaker"]}, key=_natural)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(speakers)), 3.5))
    width = 0.8 / len(systems)
    for k, (name, (summary, _)) in enumerate(systems.items()):
        ax.bar([i + k * width for i in range(len(speakers))],
               [100 * summary["per_speaker"].get(s, {"wer": 0})["wer"] for s in speakers], width, label=name)
    ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(speakers))], speakers, rotation=45)
    ax.set_ylabel("WER (%)")
    ax.set_title("WER per speaker")
    ax.legend()
    pngs["wer_by_speaker.png"] = _figure_png(fig)

    with_conf = {name: _word_confidences(records, systems[name][1]) for name, records in records_by_system.items()}
    with_conf = {name: got for name, got in with_conf.items() if got is not None and got[0]}
    if with_conf:
        fig, (rel, hist) = plt.subplots(1, 2, figsize=(10, 4))
        rel.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfectly calibrated")
        for name, (conf, right, _) in with_conf.items():
            bins = [b for b in calibration_bins(conf, right) if b[0]]
            rel.plot([c for _, c, _ in bins], [r for _, _, r in bins], marker="o", label=name)
        rel.set_xlabel("confidence (bin mean)")
        rel.set_ylabel("share of words right")
        rel.set_title("Reliability diagram (10 bins)")
        rel.set_xlim(0, 1)
        rel.set_ylim(0, 1)
        rel.legend()
        name, (conf, right, _) = next(iter(with_conf.items()))
        edges = [k / 20 for k in range(21)]
        hist.hist([c for c, ok in zip(conf, right) if ok], bins=edges, alpha=0.6, label="right words")
        hist.hist([c for c, ok in zip(conf, right) if not ok], bins=edges, alpha=0.6, label="wrong words")
        hist.set_xlabel("confidence")
        hist.set_ylabel("words")
        hist.set_title(f"Confidence of right and wrong words ({name})")
        hist.legend()
        pngs["confidence.png"] = _figure_png(fig)
    return pngs


def posterior_png(log_probs, tokens: list[str], words: list[tuple[str, float, float]], frame_seconds: float,
                  title: str) -> bytes:
    """Per-frame CTC posteriors ``(T, V)`` as an image, decoded words marked on the time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = np.exp(np.asarray(log_probs)).T  # (V, T)
    T = probs.shape[1]
    # 1.2 inches a second whatever the length (pictures are of utterances up to 15 s): a capped
    # width squeezed a 14 s utterance's labels on top of each other
    fig, ax = plt.subplots(figsize=(2 + T * frame_seconds * 1.2, 4.5))
    ax.imshow(probs, aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
              extent=(0, T * frame_seconds, -0.5, probs.shape[0] - 0.5))
    ax.set_yticks(range(len(tokens)), tokens, fontsize=6)
    for k, (word, start, end) in enumerate(words):
        ax.axvspan(start, end, color="cyan", alpha=0.15)
        # every other label a little higher, so that short neighbouring words do not overprint
        ax.text((start + end) / 2, probs.shape[0] + 0.3 + 2.5 * (k % 2), word, ha="center", va="bottom", fontsize=8,
                rotation=45)
    ax.set_xlabel("time (s)")
    ax.set_title(title, pad=56)
    return _figure_png(fig)


# ---------------------------------------------------------------------------------------------
# Writing


def write_report(out_dir: str | Path, systems: dict[str, list[dict[str, Any]]], extra: dict[str, Any] | None = None,
                 pictures: dict[str, bytes] | None = None, worst: int = 10) -> dict[str, Any]:
    """Write summary.json, errs.txt (errs-NAME.txt per system when several), report.md (+ PNGs) and report.html.

    The first system is the baseline of the per-utterance comparison. ``extra`` entries are
    added to the first system's summary (e.g. PER and timing from ``asr evaluate``);
    ``extra`` wins where keys clash. ``pictures`` are extra PNGs (posteriors) to show.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    analysed = {name: analyse(records) for name, records in systems.items()}
    names = list(systems)
    summaries = {name: s for name, (s, _) in analysed.items()}
    if extra:
        summaries[names[0]] = {**summaries[names[0]], **extra}
    for name, (summary, aligned) in analysed.items():
        fname = "errs.txt" if len(systems) == 1 else f"errs-{_safe(name)}.txt"
        atomic_write_text(out_dir / fname, errs_text(name, summary, aligned))
    compared = {n: compare(analysed[names[0]][1], analysed[n][1]) for n in names[1:]}
    comparisons = {n: {"against": names[0], **asdict(c)} for n, c in compared.items() if c}
    summary_out = summaries[names[0]] if len(systems) == 1 else {"systems": summaries, "comparisons": comparisons}
    atomic_write_text(out_dir / "summary.json", json.dumps(summary_out, indent=2) + "\n")

    pngs = {**_plots(analysed, systems), **(pictures or {})}
    for fname, data in pngs.items():
        (out_dir / fname).write_bytes(data)
    md = _markdown(names, summaries, analysed, pngs, worst, comparisons)
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", _html(md, pngs))
    return summary_out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _markdown(names, summaries, analysed, pngs, worst, comparisons) -> str:
    out = ["# Evaluation report", "", "| system | WER % | CER % | sub | del | ins | ref words | utterances | SER % |",
           "|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        s = summaries[n]
        # the CER of the very words the row scores, from the records themselves
        out.append(f"| {n} | {_pct(s['wer'])} | {_pct(analysed[n][0]['cer'])} | {s['substitutions']} | {s['deletions']} | "
                   f"{s['insertions']} | {s['reference_words']} | {s['utterances']} | {_pct(s['sentence_error_rate'])} |")
    if "per" in summaries[names[0]]:
        out += ["", f"PER of {names[0]} (phone head): {_pct(summaries[names[0]]['per'])} %"]
    out += ["", "## WER per speaker", "", "| speaker | " + " | ".join(names) + " | words |", "|---" * (len(names) + 2) + "|"]
    first = summaries[names[0]]
    for spk, v in first["per_speaker"].items():
        cells = [_pct(summaries[n]["per_speaker"].get(spk, {"wer": float("nan")})["wer"]) for n in names]
        out.append(f"| {spk} | " + " | ".join(cells) + f" | {v['words']} |")
    out += ["", "## WER per utterance duration", "", "| duration | " + " | ".join(names) + " | utterances |",
            "|---" * (len(names) + 2) + "|"]
    for b, v in first["per_duration"].items():
        cells = [_pct(summaries[n]["per_duration"].get(b, {"wer": float("nan")})["wer"]) for n in names]
        out.append(f"| {b} | " + " | ".join(cells) + f" | {v['utterances']} |")
    out += ["", "![WER against utterance length](wer_by_duration.png)", "", "![WER per speaker](wer_by_speaker.png)"]
    for n in names:
        s, aligned = analysed[n]
        out += ["", f"## Most frequent errors: {n}", "", "| substitution (ref → hyp) | count |", "|---|---|"]
        out += [f"| {r} → {h} | {c} |" for r, h, c in s["top_substitutions"][:10]]
        out += ["", "| deletion | count | | insertion | count |", "|---|---|---|---|---|"]
        for k in range(min(10, max(len(s["top_deletions"]), len(s["top_insertions"])))):
            d = s["top_deletions"][k] if k < len(s["top_deletions"]) else ["", ""]
            i = s["top_insertions"][k] if k < len(s["top_insertions"]) else ["", ""]
            out.append(f"| {d[0]} | {d[1]} | | {i[0]} | {i[1]} |")
        out += ["", f"## Worst utterances: {n}", ""]
        for a in sorted(aligned, key=lambda a: (-a.errors / max(1, a.ref_words), a.id))[:worst]:
            out += [f"- `{a.id}` ({a.errors}/{a.ref_words} errors): {alignment_text(a.pairs)}"]
    if len(names) > 1:
        base, base_al = names[0], {a.id: a for a in analysed[names[0]][1]}
        for n in names[1:]:
            diffs = []
            for a in analysed[n][1]:
                b = base_al.get(a.id)
                if b is not None and a.errors != b.errors:
                    diffs.append((a.errors - b.errors, a.id, b, a))
            diffs.sort(key=lambda d: (d[0], d[1]))
            out += ["", f"## Per utterance: {n} against {base}", "",
                    f"{sum(d[0] < 0 for d in diffs)} utterances better, {sum(d[0] > 0 for d in diffs)} worse, "
                    f"{len(base_al) - len(diffs)} with the same number of errors.", ""]
            if n in comparisons:  # Bisani & Ney 2004, over the utterances both systems decoded
                out += [comparison_text(n, comparisons[n]) + ".", ""]
            out += [f"| id | errors {base} | errors {n} | {base} | {n} |", "|---|---|---|---|---|"]
            for delta, uid, b, a in diffs[:15] + diffs[-15:] if len(diffs) > 30 else diffs:
                out.append(f"| {uid} | {b.errors} | {a.errors} | {alignment_text(b.pairs)} | {alignment_text(a.pairs)} |")
    if "confidence.png" in pngs:
        out += ["", "## Word confidence", "", "| system | words | mean confidence | share right | ROC AUC | ECE |",
                "|---|---|---|---|---|---|"]
        for n in names:
            c = summaries[n].get("confidence")
            if c:
                out.append(f"| {n} | {c['words']} | {c['mean_confidence']:.3f} | {c['share_right']:.3f} | "
                           f"{c['auc']:.3f} | {c['ece']:.3f} |")
        for n in names:
            c = summaries[n].get("confidence")
            if c and c.get("left_out_records"):
                out += ["", f"{n}: {c['left_out_records']} utterance(s) left out of these figures: their "
                            f"`confidences` are not one per hypothesis word."]
        out += ["", "ROC AUC: the chance that a right word has a higher confidence than a wrong one (0.5: no use). "
                "ECE: how far confidence is from the share of words right, averaged over words in 10 bins.",
                "", "![Word confidence](confidence.png)"]
    extra_pngs = [f for f in pngs if f.startswith("posteriors")]
    if extra_pngs:
        out += ["", "## CTC posteriors", ""] + [f"![{f}]({f})" for f in extra_pngs]
    return "\n".join(out) + "\n"


def _html(md: str, pngs: dict[str, bytes]) -> str:
    """A self-contained page: the markdown's tables and lists as HTML, images inlined as data URIs."""
    body, table = [], []

    def flush_table():
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-")]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            body.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c)}</{'th' if i == 0 else 'td'}>" for c in row)
                + "</tr>" for i, row in enumerate(cells)) + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            src = src.rstrip(")")
            data = base64.b64encode(pngs[src]).decode()
            body.append(f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<p class=utt>{html.escape(line[2:]).replace('`', '')}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush_table()
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%}"
             "img{max-width:100%}.utt{font-family:monospace;font-size:85%}")
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>asr evaluation report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
