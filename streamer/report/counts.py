"""The report of an aggregate-only run (`<name>.counts.jsonl`): totals, histograms and intervals, nobody in it.

Writes `<name>.counts.html` (no script, every string escaped, as the
per-person report) and `<name>.counts.csv` (one row per interval, a column
per label of the final prediction). Lines are read as untrusted: one that is
not an interval's counts is skipped and counted.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocoer_core.whole_files import replaced_whole, write_text_whole
from streamer import html_safe
from streamer.errors import UserError
from streamer.report.page import REPORT_CSP, STYLE, read_declaration

COUNTS_SUFFIX = ".counts.jsonl"
MAX_LINE_CHARS = 1_000_000
FIELDS = ("start_s", "end_s", "frames", "persons_mean", "persons_max", "people_seen", "analysed", "uncertain")


def is_counts_file(path: Path) -> bool:
    return path.name.endswith(COUNTS_SUFFIX)


def _histogram(value: object) -> dict[str, int] | None:
    if not isinstance(value, dict):
        return None
    out = {}
    for label, n in value.items():
        if not isinstance(label, str) or isinstance(n, bool) or not isinstance(n, int) or n < 0:
            return None
        out[label] = n
    return out


def _interval(line: str) -> dict[str, Any] | None:
    """One line as an interval's counts, or None when it is not one (wrong types, damaged)."""
    if len(line) > MAX_LINE_CHARS:
        return None
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    for key in FIELDS:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
    final, no_emotion = _histogram(data.get("final")), _histogram(data.get("no_emotion"))
    levels = data.get("levels")
    if final is None or no_emotion is None or not isinstance(levels, dict):
        return None
    clean_levels = {k: _histogram(v) for k, v in levels.items() if isinstance(k, str)}
    if any(v is None for v in clean_levels.values()):
        return None
    return {**{k: data[k] for k in FIELDS}, "final": final, "no_emotion": no_emotion, "levels": clean_levels}


@dataclass
class CountsSummary:
    """Every interval of a counts file, and their totals."""

    intervals: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    final: Counter[str] = field(default_factory=Counter)
    levels: dict[str, Counter[str]] = field(default_factory=dict)
    no_emotion: Counter[str] = field(default_factory=Counter)

    @property
    def frames(self) -> int:
        return sum(int(i["frames"]) for i in self.intervals)

    @property
    def analysed(self) -> int:
        return sum(int(i["analysed"]) for i in self.intervals)


def read_counts(path: Path) -> CountsSummary:
    summary = CountsSummary()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            interval = _interval(line)
            if interval is None:
                summary.skipped += bool(line.strip())
                continue
            summary.intervals.append(interval)
            summary.final.update(interval["final"])
            summary.no_emotion.update(interval["no_emotion"])
            for level, hist in interval["levels"].items():
                summary.levels.setdefault(level, Counter()).update(hist)
    return summary


def _bars(hist: Counter[str], total: int) -> str:
    rows = []
    for label, n in hist.most_common():
        share = n / total if total else 0.0
        rows.append(
            f"<tr><td>{html_safe.text(label)}</td><td>{n}</td><td>{100 * share:.1f}%</td>"
            f'<td><div style="background:#e9a23b;height:10px;width:{round(300 * share)}px"></div></td></tr>'
        )
    return "<table><tr><th>label</th><th>person-frames</th><th>share</th><th></th></tr>" + "".join(rows) + "</table>"


def render_counts_html(summary: CountsSummary, title: str, declaration: list[str]) -> str:
    analysed = summary.analysed
    interval_rows = "".join(
        "<tr>"
        + "".join(f"<td>{html_safe.text(i[k])}</td>" for k in FIELDS)
        + f"<td>{html_safe.text(', '.join(list(i['final'])[:3]) or '-')}</td></tr>"
        for i in summary.intervals
    )
    body = [
        f"<h1>{html_safe.text(title)}</h1>",
        f'<p class="muted">aggregate-only run: counts per interval, no person, face, box or id was kept · '
        f"{len(summary.intervals)} interval(s) · {summary.frames} frames · {analysed} analysed person-frames</p>",
        (
            f'<p class="warn">{summary.skipped} line(s) could not be read and were skipped.</p>'
            if summary.skipped
            else ""
        ),
        (
            '<ul class="muted declaration">' + "".join(f"<li>{html_safe.text(x)}</li>" for x in declaration) + "</ul>"
            if declaration
            else ""
        ),
        "<h2>Final prediction</h2>",
        _bars(summary.final, analysed),
        *(f"<h2>{html_safe.text(level)} level</h2>{_bars(hist, analysed)}" for level, hist in summary.levels.items()),
        (
            "<h2>Not analysed</h2>" + _bars(summary.no_emotion, sum(summary.no_emotion.values()))
            if summary.no_emotion
            else ""
        ),
        "<h2>Intervals</h2><table><tr>"
        + "".join(f"<th>{k}</th>" for k in FIELDS)
        + "<th>most often</th></tr>"
        + interval_rows
        + "</table>",
    ]
    return (
        f'<!doctype html><html><head><meta charset="utf-8">{REPORT_CSP}<title>{html_safe.text(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(p for p in body if p) + "\n</body></html>\n"
    )


def write_counts_csv(summary: CountsSummary, path: Path) -> None:
    labels = [label for label, _ in summary.final.most_common()]
    with replaced_whole(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FIELDS, *(f"final:{label}" for label in labels)])
        for interval in summary.intervals:
            writer.writerow([*(interval[k] for k in FIELDS), *(interval["final"].get(label, 0) for label in labels)])


def write_counts_report(counts: Path, out_dir: Path | None = None) -> tuple[Path, Path, int]:
    """`<stem>.html` and `<stem>.csv` of a counts file; returns their paths and the skipped lines.

    Raises:
        UserError: no line of the file is an interval's counts.
        OSError: the report cannot be written.
    """
    summary = read_counts(counts)
    if not summary.intervals:
        raise UserError(f"{counts} holds no interval's counts (is it an aggregate run's .counts.jsonl?)")
    out_dir = out_dir or counts.parent
    stem = counts.name[: -len(".jsonl")]
    html_path, csv_path = out_dir / f"{stem}.html", out_dir / f"{stem}.csv"
    if counts.resolve() in (html_path.resolve(), csv_path.resolve()):
        raise UserError(f"the report would write over its input {counts}")
    page = render_counts_html(summary, f"CocoER counts: {stem}", read_declaration(counts.parent))
    write_text_whole(html_path, page)
    write_counts_csv(summary, csv_path)
    return html_path, csv_path, summary.skipped
