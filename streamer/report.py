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
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2

import av
import numpy as np

from streamer import html_safe
from streamer.errors import UserError
from streamer.records import read_frame_lines
from streamer.redact import printable

logger = logging.getLogger(__name__)

#: Timeline points kept per track (and for the session): enough for a plot, bounded for long runs.
MAX_POINTS = 1200
TOP_LABELS = 3
LEVELS = ("head", "body", "context", "vi")


class Decimated:
    """A time series that keeps at most `limit` points: when full, every other point goes and the stride doubles."""

    def __init__(self, limit: int = MAX_POINTS) -> None:
        self.limit = limit
        self.stride = 1
        self._seen = 0
        self.points: list[tuple[float, Any]] = []

    def add(self, t: float, value: Any) -> None:
        if self._seen % self.stride == 0:
            self.points.append((t, value))
            if len(self.points) > self.limit:
                self.points = self.points[::2]
                self.stride *= 2
        self._seen += 1


@dataclass
class TrackSummary:
    """What the report shows of one tracked person, gathered in one pass."""

    track_id: int
    first_s: float
    last_s: float
    frames: int = 0
    scores: Decimated = field(default_factory=Decimated)  # smoothed final scores per frame
    agreement: Decimated = field(default_factory=Decimated)  # per inference: level -> agrees with final
    label_sums: Counter = field(default_factory=Counter)
    exclusions: Counter = field(default_factory=Counter)
    best_face: tuple[float, int, float, list[float]] | None = None  # area, frame, pts, head box

    def top_labels(self, k: int = TOP_LABELS) -> list[str]:
        return [label for label, _ in self.label_sums.most_common(k)]


@dataclass
class SessionSummary:
    """The whole run: its tracks, people on screen over time, emotions, gaps and what could not be read."""

    model: str = ""
    labels: tuple[str, ...] = ()
    frames: int = 0
    first_s: float | None = None
    last_s: float = 0.0
    skipped_lines: int = 0
    tracks: dict[int, TrackSummary] = field(default_factory=dict)
    people: Decimated = field(default_factory=Decimated)
    dominant: Counter = field(default_factory=Counter)
    gaps: list[tuple[float, float]] = field(default_factory=list)


def _top(scores: dict[str, float] | None) -> str | None:
    return max(scores, key=scores.__getitem__) if scores else None


class CsvWriters:
    """One CSV per track, opened on its first row and closed when the track ends."""

    def __init__(self, folder: Path, labels: tuple[str, ...]) -> None:
        self.folder = folder
        self.labels = labels
        self.paths: dict[int, Path] = {}
        self._open: dict[int, tuple[IO[str], Any]] = {}

    def row(self, track_id: int, t: float, frame: int, smoothed: dict | None, raw: dict | None) -> None:
        if track_id not in self._open:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"track_{track_id}.csv"
            handle = path.open("a" if track_id in self.paths else "w", newline="", encoding="utf-8")
            writer = csv.writer(handle)
            if track_id not in self.paths:
                writer.writerow(
                    ["time_s", "frame", "track_id"]
                    + [f"smoothed_{x}" for x in self.labels]
                    + [f"raw_{x}" for x in self.labels]
                )
            self.paths[track_id] = path
            self._open[track_id] = (handle, writer)
        smooth = (smoothed or {}).get("scores", {}).get("final", {})
        now = (raw or {}).get("scores", {}).get("final", {})
        self._open[track_id][1].writerow(
            [f"{t:.6f}", frame, track_id]
            + [smooth.get(x, "") for x in self.labels]
            + [now.get(x, "") for x in self.labels]
        )

    def end(self, track_id: int) -> None:
        opened = self._open.pop(track_id, None)
        if opened is not None:
            opened[0].close()

    def close(self) -> None:
        for track_id in list(self._open):
            self.end(track_id)


def _person(session: SessionSummary, person: dict[str, Any], t: float, frame: int) -> None:
    track_id = int(person["track_id"])
    track = session.tracks.get(track_id)
    if track is None:
        track = session.tracks[track_id] = TrackSummary(track_id, t, t)
    track.last_s = t
    track.frames += 1
    smoothed, raw = person.get("smoothed"), person.get("raw")
    final = (smoothed or {}).get("scores", {}).get("final")
    if final:
        track.scores.add(t, final)
        track.label_sums.update(final)
        session.dominant[_top(final)] += 1
    if raw:
        scores = raw.get("scores", {})
        top_final = _top(scores.get("final"))
        track.agreement.add(t, {lv: _top(scores[lv]) == top_final for lv in LEVELS if lv in scores})
        if raw.get("exclusion"):
            track.exclusions[" > ".join(raw["exclusion"])] += 1
    head = person.get("head_box")
    if head:
        area = (head[2] - head[0]) * (head[3] - head[1])
        if track.best_face is None or area > track.best_face[0]:
            track.best_face = (area, frame, t, head)


def summarize(jsonl: Path, csv_folder: Path | None) -> SessionSummary:
    """Read the JSONL once: the session's summary, and (when asked) the per-track CSVs."""
    session = SessionSummary()
    writers: CsvWriters | None = None
    try:
        for record in read_frame_lines(jsonl):
            if record is None:
                session.skipped_lines += 1
                continue
            t, frame = float(record.get("pts_s", 0.0)), int(record["frame"])
            session.frames += 1
            session.first_s = t if session.first_s is None else session.first_s
            session.last_s = t
            session.model = session.model or str(record.get("model", ""))
            persons = record.get("persons") or []
            if record.get("gap_before"):
                session.gaps.append((t - float(record.get("gap_s", 0.0)), t))
            session.people.add(t, len(persons))
            for person in persons:
                if not session.labels:
                    scores = ((person.get("smoothed") or person.get("raw") or {}).get("scores") or {}).get("final")
                    session.labels = tuple(scores) if scores else ()
                if csv_folder is not None and session.labels:
                    writers = writers or CsvWriters(csv_folder, session.labels)
                    writers.row(int(person["track_id"]), t, frame, person.get("smoothed"), person.get("raw"))
                _person(session, person, t, frame)
            for event in record.get("events") or []:
                if event.get("event") == "track_end" and writers is not None:
                    writers.end(int(event["track_id"]))
    finally:
        if writers is not None:
            writers.close()
    return session


# -- pictures -------------------------------------------------------------------------------


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


#: Line colours of a track's top labels in its timeline (BGR), and the timeline's size.
TIMELINE_COLORS = ((180, 119, 31), (14, 127, 255), (44, 160, 44))
TIMELINE_SIZE = (640, 120)


class TimelinePlotter:
    """Per-track timelines drawn directly with OpenCV: hundreds of tracks in a second or two
    (a matplotlib figure costs ~0.1 s each; the session plots still use matplotlib)."""

    def png(self, track: TrackSummary) -> str | None:
        points = track.scores.points
        if not points:
            return None
        width, height = TIMELINE_SIZE
        left, bottom, top, right = 40, 22, 8, 8
        image = np.full((height, width, 3), 255, np.uint8)
        plot_w, plot_h = width - left - right, height - top - bottom
        t0, t1 = points[0][0], max(points[-1][0], points[0][0] + 1e-3)
        font = cv2.FONT_HERSHEY_SIMPLEX
        for fraction in (0.0, 0.5, 1.0):  # y grid: 0, 50, 100 %
            y = top + round(plot_h * (1 - fraction))
            cv2.line(image, (left, y), (width - right, y), (225, 225, 225), 1)
            cv2.putText(image, f"{100 * fraction:.0f}%", (2, y + 4), font, 0.35, (90, 90, 90), 1, cv2.LINE_AA)
        for k in range(5):  # x ticks in seconds
            t = t0 + (t1 - t0) * k / 4
            x = left + round(plot_w * k / 4)
            text = f"{t:.1f}s" if t1 - t0 < 10 else f"{t:.0f}s"
            cv2.putText(image, text, (max(x - 12, 0), height - 6), font, 0.35, (90, 90, 90), 1, cv2.LINE_AA)
        xs = [left + round(plot_w * (t - t0) / (t1 - t0)) for t, _ in points]
        legend_x = left + 6
        for label, color in zip(track.top_labels(), TIMELINE_COLORS, strict=False):
            ys = [top + round(plot_h * (1 - float(np.clip(v.get(label, 0.0), 0, 1)))) for _, v in points]
            curve = np.array(list(zip(xs, ys, strict=True)), np.int32).reshape(-1, 1, 2)
            cv2.polylines(image, [curve], False, color, 2, cv2.LINE_AA)
            cv2.putText(image, label, (legend_x, top + 12), font, 0.4, color, 1, cv2.LINE_AA)
            legend_x += cv2.getTextSize(label, font, 0.4, 1)[0][0] + 14
        ok, data = cv2.imencode(".png", image)
        return base64.b64encode(data.tobytes()).decode("ascii") if ok else None

    def close(self) -> None:
        pass


def _agreement_png(track: TrackSummary, width: int = 640, row: int = 14) -> str | None:
    """The per-level agreement strip, drawn directly (no plotting library: hundreds of tracks stay fast)."""
    points = track.agreement.points
    levels = [lv for lv in LEVELS if any(lv in flags for _, flags in points)]
    if not points or not levels:
        return None
    margin = 60
    image = np.full((row * len(levels) + 2, margin + width, 3), 255, np.uint8)
    columns = np.linspace(0, len(points), width + 1).astype(int)
    for k, level in enumerate(levels):
        cv2.putText(image, level, (4, row * k + row - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (40, 40, 40), 1, cv2.LINE_AA)
        for x in range(width):
            chunk = points[columns[x] : max(columns[x + 1], columns[x] + 1)]
            seen = [flags[level] for _, flags in chunk if level in flags]
            # green: the level's top label is the final one; red: it is not; grey: no inference there
            color = (200, 200, 200) if not seen else (60, 170, 60) if sum(seen) * 2 >= len(seen) else (60, 60, 210)
            image[row * k + 1 : row * k + row, margin + x] = color
    ok, data = cv2.imencode(".png", image)
    return base64.b64encode(data.tobytes()).decode("ascii") if ok else None


def _session_png(session: SessionSummary) -> str | None:
    import matplotlib.pyplot as plt

    if not session.people.points:
        return None
    figure, axis = plt.subplots(figsize=(7, 1.8))
    axis.step([t for t, _ in session.people.points], [n for _, n in session.people.points], where="post", color="#333")
    for start, end in session.gaps:
        axis.axvspan(start, end, color="red", alpha=0.25, label="stream gap")
    axis.set_xlabel("time (s)")
    axis.set_ylabel("people")
    axis.grid(alpha=0.3)
    return _png(figure)


def _dominant_png(session: SessionSummary) -> str | None:
    import matplotlib.pyplot as plt

    common = session.dominant.most_common(8)
    if not common:
        return None
    total = sum(session.dominant.values())
    figure, axis = plt.subplots(figsize=(7, 0.3 * len(common) + 0.6))
    axis.barh([label for label, _ in common][::-1], [100 * n / total for _, n in common][::-1], color="#4a7")
    axis.set_xlabel("% of person-frames where it is the top emotion")
    return _png(figure)


def thumbnails(video: Path, tracks: list[TrackSummary], size: int = 96) -> dict[int, str]:
    """A JPEG of each track's largest face, sought to one frame per track (never the whole video in memory)."""
    wanted = sorted((t.best_face[2], t.track_id, t.best_face[3]) for t in tracks if t.best_face)
    out: dict[int, str] = {}
    if not wanted or not video.is_file():
        return out
    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            for pts_s, track_id, box in wanted:
                container.seek(int(pts_s / stream.time_base), stream=stream, backward=True)
                for frame in container.decode(stream):
                    if frame.time is not None and frame.time + 1e-6 >= pts_s:
                        image = frame.to_ndarray(format="bgr24")
                        out[track_id] = _face_jpeg(image, box, size)
                        break
    except (av.error.FFmpegError, OSError) as exc:
        logger.warning("no thumbnails from %s (%s)", video, exc)
    return out


def _face_jpeg(image: np.ndarray, box: list[float], size: int) -> str:
    x1, y1, x2, y2 = box
    grow = 0.25 * max(x2 - x1, y2 - y1)
    h, w = image.shape[:2]
    crop = image[max(int(y1 - grow), 0) : min(int(y2 + grow), h), max(int(x1 - grow), 0) : min(int(x2 + grow), w)]
    if crop.size == 0:
        crop = image
    scale = size / max(crop.shape[:2])
    crop = cv2.resize(crop, (max(int(crop.shape[1] * scale), 1), max(int(crop.shape[0] * scale), 1)))
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(data.tobytes()).decode("ascii") if ok else ""


# -- the page -------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px} h2{font-size:18px;margin-top:28px} .muted{color:#777}
section.track{border-top:1px solid #ddd;padding-top:12px;margin-top:16px}
.head{display:flex;gap:14px;align-items:center} .thumb{width:96px;height:96px;object-fit:contain;background:#eee}
table{border-collapse:collapse;font-size:13px} td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}
.warn{background:#fff3cd;padding:8px 12px;border-radius:4px}
img.plot{max-width:100%;display:block;margin:6px 0}
"""


#: The report runs no script at all: even a string that escaped escaping could not run one.
REPORT_CSP = (
    '<meta http-equiv="Content-Security-Policy" '
    "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'none'\">"
)


def _img(data: str | None, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" alt="{html_safe.text(alt)}" src="data:image/png;base64,{data}">' if data else ""


def _track_html(
    track: TrackSummary, thumb: str | None, csv_path: Path | None, base: Path, timelines: TimelinePlotter
) -> str:
    face = (
        f'<img class="thumb" alt="face of person {track.track_id}" src="data:image/jpeg;base64,{thumb}">'
        if thumb
        else '<div class="thumb muted">no face</div>'
    )
    top = ", ".join(html_safe.text(x) for x in track.top_labels()) or "no emotion scores"
    link = f' · <a href="{html_safe.href(csv_path.relative_to(base).as_posix())}">CSV</a>' if csv_path else ""
    parts = [
        f'<section class="track" id="track-{track.track_id}">',
        f'<div class="head">{face}<div><h2>Person {track.track_id}</h2>',
        f"<div>{track.first_s:.1f} s – {track.last_s:.1f} s · {track.frames} frames · top: {top}{link}</div></div></div>",
        _img(timelines.png(track), f"emotion timeline of person {track.track_id}"),
        _img(_agreement_png(track), f"level agreement of person {track.track_id}"),
        '<div class="muted">per inference: green = the level\'s top label is the final one, red = it is not</div>'
        if track.agreement.points
        else "",
    ]
    if track.exclusions:
        total = sum(track.exclusions.values())
        rows = "".join(
            f"<tr><td>{html_safe.text(order)}</td><td>{n}</td><td>{100 * n / total:.0f}%</td></tr>"
            for order, n in track.exclusions.most_common()
        )
        parts.append(
            f"<table><tr><th>exclusion order (first excluded first)</th><th>times</th><th></th></tr>{rows}</table>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_html(session: SessionSummary, title: str, thumbs: dict[int, str], csvs: dict[int, Path], base: Path) -> str:
    span = f"{session.first_s or 0.0:.1f} s – {session.last_s:.1f} s" if session.frames else "no frames"
    warn = (
        f'<p class="warn">{session.skipped_lines} line(s) of the JSONL could not be read (truncated or damaged) '
        "and were skipped; the report shows everything else.</p>"
        if session.skipped_lines
        else ""
    )
    gaps = (
        f"<p>{len(session.gaps)} stream gap(s): "
        + ", ".join(f"{a:.1f}–{b:.1f} s" for a, b in session.gaps[:20])
        + ("…" if len(session.gaps) > 20 else "")
        + "</p>"
        if session.gaps
        else ""
    )
    tracks = sorted(session.tracks.values(), key=lambda t: t.track_id)
    timelines = TimelinePlotter()
    try:
        sections = [_track_html(t, thumbs.get(t.track_id), csvs.get(t.track_id), base, timelines) for t in tracks]
    finally:
        timelines.close()
    body = [
        f"<h1>{html_safe.text(title)}</h1>",
        f'<p class="muted">model {html_safe.text(session.model or "?")} · {session.frames} frames · {span} · '
        f"{len(tracks)} tracked person(s)</p>",
        warn,
        "<h2>Session</h2>",
        _img(_session_png(session), "people on screen over time"),
        gaps,
        _img(_dominant_png(session), "dominant emotions"),
        *sections,
    ]
    return (
        f'<!doctype html><html><head><meta charset="utf-8">{REPORT_CSP}<title>{html_safe.text(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(p for p in body if p) + "\n</body></html>\n"
    )


@dataclass(frozen=True)
class ReportFiles:
    """What a report wrote: the page, and the per-person CSVs (their folder exists only when there are some)."""

    html: Path
    csv_folder: Path
    tracks: int
    csvs: int
    skipped_lines: int

    def describe(self) -> str:
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
    import matplotlib

    matplotlib.use("Agg")
    out_dir = out_dir or jsonl.parent
    stem = jsonl.stem
    csv_folder = out_dir / f"{stem}_persons"
    html_path = out_dir / f"{stem}.html"
    video = video or jsonl.with_suffix(".mp4")
    _refuse_overwriting([html_path, html_path.with_suffix(".html.tmp"), csv_folder], [jsonl, video])
    session = summarize(jsonl, csv_folder)
    if session.frames == 0:
        raise UserError(f"{jsonl} is not a run's JSONL: no line of it is a frame record")
    thumbs = thumbnails(video, list(session.tracks.values()))
    csvs = {t: csv_folder / f"track_{t}.csv" for t in session.tracks if (csv_folder / f"track_{t}.csv").exists()}
    page = render_html(session, f"CocoER report: {stem}", thumbs, csvs, out_dir)
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(html_path)
    return ReportFiles(html_path, csv_folder, len(session.tracks), len(csvs), session.skipped_lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamer.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("jsonl", type=Path, help="a run's <stem>.jsonl")
    parser.add_argument(
        "--video", type=Path, help="its annotated video, for face thumbnails (default: <stem>.mp4 beside it)"
    )
    parser.add_argument("--out", type=Path, help="folder for the report (default: beside the JSONL)")
    args = parser.parse_args(argv)
    if not args.jsonl.is_file():
        print(printable(f"error: no such file: {args.jsonl}"), file=sys.stderr)
        return 2
    try:
        done = write_report(args.jsonl, args.video, args.out)
    except UserError as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:
        print(printable(f"error: cannot read or write the report ({exc.strerror or exc})"), file=sys.stderr)
        return 2
    print(printable(f"wrote {done.describe()}"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
