"""A run's results as something to look at: an HTML report and a CSV per person.

    python -m streamer.report recordings/<stem>.jsonl [--video recordings/<stem>.mp4] [--out DIR]

Writes `<stem>.html` beside the JSONL (self-contained: plots and face
thumbnails are embedded, no server needed) and `<stem>_persons/track_<id>.csv`
(time, frame, track id, every label's smoothed and raw final score). Per
tracked person: a face thumbnail from the annotated video, the time span, a
timeline of the smoothed final scores of its top emotions, a strip of
per-level agreement (each level's top label against the final one, per
inference) and how often each exclusion order occurred (CocoER). For the
session: people on screen over time, the dominant emotions, the gaps of a
live source.

The JSONL is read once, line by line; timelines keep at most `MAX_POINTS`
points per track (halving their resolution as they grow), and the video is
only sought to one frame per thumbnail, so hours-long sessions with hundreds
of tracks render in seconds. Lines that do not parse (a crash, a full disk)
are skipped and counted in the report.

An aggregate-only run's `<stem>.counts.jsonl` gets `<stem>.counts.html` and
`<stem>.counts.csv` instead (`counts`): totals, histograms, intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cocoer_core.whole_files import write_text_whole
from streamer.errors import UserError
from streamer.report.counts import is_counts_file, write_counts_report
from streamer.report.page import read_declaration, render_html
from streamer.report.pictures import thumbnails
from streamer.report.summary import summarize

__all__ = ["ReportFiles", "write_report"]


@dataclass(frozen=True)
class ReportFiles:
    """What a report wrote: the page, and the per-person CSVs (their folder exists only when there are some)."""

    html: Path
    csv_folder: Path
    tracks: int
    csvs: int
    skipped_lines: int
    #: An aggregate run's report: its one CSV (one row per interval) instead of a folder of per-person ones.
    counts_csv: Path | None = None

    def files(self) -> list[Path]:
        """Every file the report wrote (the page, the CSVs)."""
        if self.counts_csv is not None:
            return [self.html, self.counts_csv]
        csvs = sorted(self.csv_folder.glob("*.csv")) if self.csv_folder.is_dir() else []
        return [self.html, *csvs]

    def describe(self) -> str:
        if self.counts_csv is not None:
            skipped = f"; {self.skipped_lines} unreadable line(s) skipped" if self.skipped_lines else ""
            return f"{self.html} and {self.counts_csv}{skipped}"
        csvs = f" and {self.csvs} CSV(s) in {self.csv_folder}" if self.csvs else ""
        skipped = f"; {self.skipped_lines} unreadable line(s) skipped" if self.skipped_lines else ""
        return f"{self.html}{csvs}{skipped}"


def _refuse_overwriting(outputs: list[Path], inputs: list[Path]) -> None:
    """A report never writes over what it reads (`x.html` given as the JSONL, say)."""
    read = {p.resolve() for p in inputs if p.exists()}
    for output in outputs:
        if output.resolve() in read:
            raise UserError(f"the report would write over its input {output}; rename the input or give --out")


def write_report(jsonl: Path, video: Path | None = None, out_dir: Path | None = None) -> ReportFiles:
    """The HTML report and per-person CSVs of one JSONL (the video, when given or beside it, for thumbnails).

    Raises:
        UserError: the file holds no frame record of a run, or an output would replace an input.
        OSError: the report cannot be written (a full disk).
    """
    if is_counts_file(jsonl):  # an aggregate-only run: counts, nobody in them
        html, csv_path, skipped = write_counts_report(jsonl, out_dir)
        return ReportFiles(html, csv_path.parent, 0, 1, skipped, counts_csv=csv_path)
    import matplotlib

    matplotlib.use("Agg")
    out_dir = out_dir or jsonl.parent
    stem = jsonl.stem
    csv_folder = out_dir / f"{stem}_persons"
    html_path = out_dir / f"{stem}.html"
    video = video or jsonl.with_suffix(".mp4")
    _refuse_overwriting([html_path, csv_folder], [jsonl, video])
    session = summarize(jsonl, csv_folder)
    if session.frames == 0:
        raise UserError(f"{jsonl} is not a run's JSONL: no line of it is a frame record")
    thumbs = thumbnails(video, list(session.tracks.values()))
    csvs = {t: csv_folder / f"track_{t}.csv" for t in session.tracks if (csv_folder / f"track_{t}.csv").exists()}
    page = render_html(session, f"CocoER report: {stem}", thumbs, csvs, out_dir, read_declaration(jsonl.parent))
    write_text_whole(html_path, page)
    return ReportFiles(html_path, csv_folder, len(session.tracks), len(csvs), session.skipped_lines)
