"""The report's page: one self-contained HTML file, every string from the run escaped, no script."""

from __future__ import annotations

import json
from pathlib import Path

from streamer import html_safe
from streamer.report.pictures import TimelinePlotter, agreement_png, dominant_png, session_png
from streamer.report.summary import SessionSummary, TrackSummary
from streamer.view.palette import track_hex

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
    what = "face" if track.best_face else "body"
    face = (
        f'<img class="thumb" alt="{what} of person {track.track_id}" src="data:image/jpeg;base64,{thumb}">'
        if thumb
        else f'<div class="thumb muted">no {what} picture</div>'
    )
    top = ", ".join(html_safe.text(x) for x in track.top_labels()) or "no emotion"
    link = f' · <a href="{html_safe.href(csv_path.relative_to(base).as_posix())}">CSV</a>' if csv_path else ""
    guesses = (
        f" · {100 * track.uncertain / track.shown:.0f}% of it a guess (low score or close second)"
        if track.uncertain
        else ""
    )
    parts = [
        # The person's colour, as on the video's boxes and panels and the live page.
        f'<section class="track" id="track-{track.track_id}" style="border-left:6px solid '
        f'{track_hex(track.track_id)};padding-left:10px">',
        f'<div class="head">{face}<div><h2>Person {track.track_id}</h2>',
        f"<div>{track.first_s:.1f} s – {track.last_s:.1f} s · {track.frames} frames · top: {top}{guesses}{link}</div>",
        _reasons_html(track),
        "</div></div>",
        _img(timelines.png(track), f"emotion timeline of person {track.track_id}"),
        _img(agreement_png(track), f"level agreement of person {track.track_id}"),
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


#: What each `no_emotion` reason means, for people reading the report.
REASONS = {
    "no_face": "no face seen (turned away, covered, or too far for the face detector)",
    "face_too_small": "face smaller than emotion.min_face_px",
    "no_model": "the run had no emotion model",
    "not_inferred": "the model gave no answer",
    "unknown": "reason not recorded (a run from before reasons were written)",
}


def _reasons_html(track: TrackSummary) -> str:
    """Why frames of this person show no emotion: each reason with its share of the person's frames."""
    if not track.no_emotion:
        return ""
    parts = [
        f"{html_safe.text(REASONS.get(reason, reason))} in {n} of {track.frames} frames"
        for reason, n in track.no_emotion.most_common()
    ]
    return f'<div class="muted reasons">no emotion: {"; ".join(parts)}</div>'


def read_declaration(folder: Path) -> list[str]:
    """The run's declaration (`run.json` beside the JSONL: use, privacy, models and licences) as lines of
    text; [] when there is none or it is not what a run writes (it is read as untrusted, like the JSONL)."""
    try:
        data = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    if not isinstance(data, dict):
        return []
    lines = []
    use, privacy, models = data.get("use"), data.get("privacy"), data.get("models")
    if isinstance(use, dict):
        lines.append(f"declared use: context {use.get('context')!s}, purpose {use.get('purpose')!s}")
    if isinstance(privacy, dict):
        lines.append(f"faces in outputs: {privacy.get('faces')!s}; notice shown: {privacy.get('notice')!s}")
        zones = privacy.get("mask")
        if privacy.get("mode") == "aggregate":
            lines.append("output: aggregate-only (counts per interval, nothing per person)")
        if isinstance(zones, list) and zones:
            lines.append(f"masked zones: {len(zones)} (filled before detection)")
    if isinstance(models, dict):
        for role, model in models.items():
            if isinstance(model, dict):
                lines.append(f"{role!s}: {model.get('name')!s} — licence: {model.get('licence')!s}")
    return [line[:300] for line in lines[:12]]


def render_html(
    session: SessionSummary,
    title: str,
    thumbs: dict[int, str],
    csvs: dict[int, Path],
    base: Path,
    declaration: list[str] | None = None,
) -> str:
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
        (
            '<ul class="muted declaration">' + "".join(f"<li>{html_safe.text(x)}</li>" for x in declaration) + "</ul>"
            if declaration
            else ""
        ),
        "<h2>Session</h2>",
        _img(session_png(session), "people on screen over time"),
        gaps,
        _img(dominant_png(session), "dominant emotions"),
        *sections,
    ]
    return (
        f'<!doctype html><html><head><meta charset="utf-8">{REPORT_CSP}<title>{html_safe.text(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(p for p in body if p) + "\n</body></html>\n"
    )
