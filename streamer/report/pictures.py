"""The report's pictures: per-person timelines and agreement strips (OpenCV), session plots (matplotlib), faces."""

from __future__ import annotations

import base64
import io
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2

import av
import numpy as np

from streamer.report.summary import LEVELS, SessionSummary, TrackSummary

logger = logging.getLogger(__name__)


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


def agreement_png(track: TrackSummary, width: int = 640, row: int = 14) -> str | None:
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


def session_png(session: SessionSummary) -> str | None:
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


def dominant_png(session: SessionSummary) -> str | None:
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
    """A JPEG of each track's largest face (its largest body when no face was ever seen), sought to one
    frame per track (never the whole video in memory)."""
    best = [(t, t.best_face or t.best_body) for t in tracks]
    wanted = sorted((b[2], t.track_id, b[3]) for t, b in best if b)
    out: dict[int, str] = {}
    if not wanted or not video.is_file():
        return out
    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            time_base = stream.time_base or Fraction(1, 90000)
            for pts_s, track_id, box in wanted:
                container.seek(int(pts_s / time_base), stream=stream, backward=True)
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
