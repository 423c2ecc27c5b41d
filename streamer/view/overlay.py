"""The overlay renderer: each person's boxes and label panel, in that person's colour; status and legend.

Everything scales with the frame's shorter side, so the same overlay reads at
480p and at 4K. Colours are BGR. A person's colour (`palette.py`) is on
their body box (thick), face box (thin), panel headline and the leader
line that joins a panel placed away from its face. A panel's first bar is
its top score and the only one highlighted; a guess (`uncertain`, see
`smoothing.uncertain_*`) is drawn muted with a "?" instead. Panels and tags
never cover a face, each other, the status line or the legend.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2

import numpy as np

from cocoer_core.api import EmotionResult, Level
from streamer.config import OverlayConfig
from streamer.types import Box, FrameResult, Person
from streamer.view.palette import track_bgr
from streamer.view.panel_layout import Rect, place

TEXT_COLOR = (255, 255, 255)
DIM_COLOR = (170, 170, 170)
GUESS_COLOR = (150, 150, 150)
PANEL_COLOR = (24, 24, 24)
GAP_COLOR = (0, 0, 200)
SURE_BAR = (0, 200, 255)
OTHER_BAR = (140, 140, 140)
LEVEL_COLORS: dict[Level, tuple[int, int, int]] = {
    Level.FINAL: (255, 255, 255),
    Level.VI: (255, 0, 255),
    Level.HEAD: (0, 165, 255),
    Level.BODY: (80, 220, 80),
    Level.CONTEXT: (255, 170, 0),
}
LEVEL_SHORT = {Level.VI: "VI", Level.HEAD: "head", Level.BODY: "body", Level.CONTEXT: "ctx", Level.FINAL: "final"}
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class OverlayStats:
    """Live figures for the status line."""

    fps: float = 0.0
    latency_ms: float | None = None
    dropped: int = 0


@dataclass(frozen=True)
class _Line:
    """One bar of a panel: the first is the headline (sure or a guess); the others are on (a label) or off."""

    label: str
    score: float
    style: str  # "sure" | "guess" | "on" | "off"


@dataclass(frozen=True)
class _Panel:
    """One person's label panel: what it says and how big it is."""

    track_id: int
    tag: str
    lines: list[_Line]
    level_rows: list[tuple[str, Level]]
    chips: tuple[Level, ...]
    tag_w: int
    label_w: int
    bar_w: int
    width: int
    height: int


def _rect(box: Box) -> Rect:
    x1, y1, x2, y2 = box.rounded()
    return Rect(x1, y1, max(x2 - x1, 1), max(y2 - y1, 1))


def _gap_between(a: Rect, b: Rect) -> int:
    """Pixels between two rectangles (0 when they touch or overlap)."""
    dx = max(b.x - (a.x + a.w), a.x - (b.x + b.w), 0)
    dy = max(b.y - (a.y + a.h), a.y - (b.y + b.h), 0)
    return max(dx, dy)


def _nearest(rect: Rect, x: int, y: int) -> tuple[int, int]:
    return min(max(x, rect.x), rect.x + rect.w), min(max(y, rect.y), rect.y + rect.h)


@dataclass(frozen=True)
class _Scale:
    """Sizes derived from the frame: font, stroke, line height, padding."""

    font: float
    thick: int
    line: int
    pad: int

    @classmethod
    def for_frame(cls, width: int, height: int) -> _Scale:
        s = float(np.clip(min(width, height) / 540.0, 0.55, 4.0))
        return cls(font=0.5 * s, thick=max(1, round(1.2 * s)), line=round(20 * s), pad=max(2, round(4 * s)))


def _shade(image: np.ndarray, x1: int, y1: int, x2: int, y2: int, alpha: float = 0.7) -> None:
    """Darken a rectangle in place (a translucent panel behind text)."""
    h, w = image.shape[:2]
    x1, x2 = max(x1, 0), min(x2, w)
    y1, y2 = max(y1, 0), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        return
    roi = image[y1:y2, x1:x2]
    roi[:] = (roi.astype(np.float32) * (1 - alpha) + np.array(PANEL_COLOR, np.float32) * alpha).astype(np.uint8)


def _text(
    image: np.ndarray, text: str, x: int, y: int, sc: _Scale, color: tuple[int, int, int], bold: bool = False
) -> int:
    """Draw text with its baseline at y; return its width."""
    thick = sc.thick + (1 if bold and sc.thick >= 2 else 0)  # a 2 px stroke smears small text
    cv2.putText(image, text, (x, y), FONT, sc.font, color, thick, cv2.LINE_AA)
    return cv2.getTextSize(text, FONT, sc.font, thick)[0][0]


def _text_width(text: str, sc: _Scale) -> int:
    return cv2.getTextSize(text, FONT, sc.font, sc.thick + 1)[0][0]


@dataclass(frozen=True)
class _Legend:
    rows: list[list[tuple[str, tuple[int, int, int]]]]
    rect: Rect


class OverlayRenderer:
    """Draws a `FrameResult` onto its frame."""

    #: How long the "reconnected" banner stays up after a gap (stream seconds).
    GAP_BANNER_S = 2.0

    def __init__(self, config: OverlayConfig, model_description: str = "", notice: str = "") -> None:
        self.config = config
        self.model_description = model_description
        #: The privacy notice drawn top right on every frame (people exposed must be told).
        self.notice = notice
        self._gap: tuple[float, float] | None = None  # (pts when it ended, its length)
        #: Where the last frame's label panels went (track id, rectangle): for tests and the web view.
        self.last_panels: list[tuple[int, Rect]] = []
        #: Where the last frame's id tags went (track id, rectangle), for persons without a panel.
        self.last_tags: list[tuple[int, Rect]] = []
        #: The last frame's legend and notice (None when not drawn).
        self.last_legend: Rect | None = None
        self.last_notice: Rect | None = None

    def annotate(self, image: np.ndarray, result: FrameResult, stats: OverlayStats | None = None) -> np.ndarray:
        """Draw onto `image` (modified in place and returned)."""
        sc = _Scale.for_frame(image.shape[1], image.shape[0])
        top = sc.line + sc.pad if self.config.show_stats else 0
        legend = self._legend(image, result, sc) if self.config.show_legend else None
        self.last_legend = legend.rect if legend else None
        notice = self._notice_rect(image, sc) if self.notice else None
        kept_clear = [r for r in (legend.rect if legend else None, notice) if r is not None]
        for person in result.persons:
            self._draw_boxes(image, person, sc)
        faces = [_rect(p.head_box) for p in result.persons if p.head_box is not None]
        self._draw_panels(image, result, sc, faces, kept_clear, top)
        self._draw_tags(image, result, sc, faces, [*kept_clear, *(r for _, r in self.last_panels)], top)
        # Status and legend last: nothing a person brings covers them.
        if self.config.show_stats:
            self._draw_stats(image, result, stats, sc)
        if legend is not None:
            self._draw_legend(image, legend, sc)
        if notice is not None:
            _shade(image, notice.x, notice.y, notice.x + notice.w, notice.y + notice.h, alpha=0.8)
            _text(image, self.notice, notice.x + sc.pad, notice.y + sc.line - sc.pad, sc, TEXT_COLOR)
        self.last_notice = notice
        self._draw_gap_banner(image, result, sc)
        return image

    def _notice_rect(self, image: np.ndarray, sc: _Scale) -> Rect:
        width = min(_text_width(self.notice, sc) + 2 * sc.pad, image.shape[1])
        return Rect(image.shape[1] - width, 0, width, sc.line + sc.pad)

    # -- panels ----------------------------------------------------------------------------------

    def _detailed(self, result: FrameResult) -> bool:
        """Full panels (top-k bars, per-level rows) or compact ones (headline and exclusion chips)."""
        if self.config.detail == "auto":
            return sum(s is not None for s in result.smoothed) <= 1
        return self.config.detail == "full"

    def _draw_panels(
        self, image: np.ndarray, result: FrameResult, sc: _Scale, faces: list[Rect], kept_clear: list[Rect], top: int
    ) -> None:
        """Lay out every panel first (no overlap with each other, any face or the legend), then draw them."""
        h, w = image.shape[:2]
        anchors = [_rect(p.head_box or p.body_box) for p in result.persons]
        detailed = self._detailed(result)
        full = [
            self._panel(p.track_id, shown, sc, compact=not detailed) if shown else None
            for p, shown in zip(result.persons, result.smoothed, strict=True)
        ]
        layout = {"top": top, "gap": sc.pad, "step": max(sc.line // 2, 2)}
        spots = place([(c.width, c.height) if c else None for c in full], anchors, faces, (w, h), kept_clear, **layout)
        content: list[_Panel | None] = [c if spot else None for c, spot in zip(full, spots, strict=True)]
        # The ones that fit nowhere try again smaller: the headline alone.
        retry = [i for i, (c, spot) in enumerate(zip(full, spots, strict=True)) if c is not None and spot is None]
        if retry:
            compact = {
                i: self._panel(result.persons[i].track_id, shown, sc, compact=True, chips=False)
                for i in retry
                if (shown := result.smoothed[i])
            }
            placed = [*kept_clear, *(spot for spot in spots if spot is not None)]
            again = place(
                [(compact[i].width, compact[i].height) for i in retry],
                [anchors[i] for i in retry],
                faces,
                (w, h),
                placed,
                **layout,
            )
            for i, spot in zip(retry, again, strict=True):
                spots[i], content[i] = spot, compact[i] if spot else None
        drawn = [(a, c, spot) for a, c, spot in zip(anchors, content, spots, strict=True) if c and spot]
        for anchor, panel, spot in drawn:  # leader lines first: panels go over them, never the other way
            if _gap_between(anchor, spot) > 2 * sc.pad:
                self._draw_leader(image, anchor, spot, track_bgr(panel.track_id), sc)
        for _, panel, spot in drawn:
            self._draw_panel(image, panel, spot, sc)
        self.last_panels = [(panel.track_id, spot) for _, panel, spot in drawn]

    def _draw_leader(
        self, image: np.ndarray, anchor: Rect, spot: Rect, color: tuple[int, int, int], sc: _Scale
    ) -> None:
        """A line from a panel placed away from its person to that person's face (or body)."""
        centre = (spot.x + spot.w // 2, spot.y + spot.h // 2)
        start = _nearest(anchor, *centre)
        end = _nearest(spot, *start)
        cv2.line(image, start, end, color, max(1, sc.thick), cv2.LINE_AA)
        cv2.circle(image, start, max(2, sc.thick + 1), color, cv2.FILLED, cv2.LINE_AA)

    def _panel_lines(self, shown: EmotionResult, compact: bool) -> list[_Line]:
        chosen = set(shown.pred)
        ranked = shown.top(1 if compact else self.config.top_k)
        head_label, head_p = ranked[0]
        lines = [_Line(head_label, head_p, "guess" if shown.uncertain or head_label not in chosen else "sure")]
        lines += [_Line(label, p, "on" if label in chosen else "off") for label, p in ranked[1:]]
        return lines

    def _panel(self, track_id: int, shown: EmotionResult, sc: _Scale, compact: bool, chips: bool = True) -> _Panel:
        """A panel's content and size; compact: the headline (and the exclusion chips) only."""
        lines = self._panel_lines(shown, compact)
        tag = f"#{track_id}"
        tag_w = _text_width(tag, sc) + sc.pad
        bar_w = round(60 * sc.font / 0.5)
        label_w = max(_text_width(line.label + ("?" if line.style == "guess" else ""), sc) for line in lines)
        level_rows = self._level_rows(shown) if self.config.show_levels and not compact else []
        shown_chips = shown.exclusion if self.config.show_exclusion and chips else ()
        width = max(
            tag_w + label_w + bar_w + _text_width("100%", sc) + 4 * sc.pad,
            max((_text_width(row, sc) + 2 * sc.pad for row, _ in level_rows), default=0),
            self._chips_width(shown_chips, sc),
        )
        height = sc.line * (len(lines) + len(level_rows) + (1 if shown_chips else 0)) + 2 * sc.pad
        return _Panel(track_id, tag, lines, level_rows, shown_chips, tag_w, label_w, bar_w, width, height)

    def _draw_panel(self, image: np.ndarray, panel: _Panel, spot: Rect, sc: _Scale) -> None:
        x, y = spot.x, spot.y
        color = track_bgr(panel.track_id)
        _shade(image, x, y, x + spot.w, y + spot.h)
        cv2.rectangle(image, (x, y), (x + spot.w - 1, y + spot.h - 1), color, 1, cv2.LINE_8)
        baseline = y + sc.pad + sc.line - round(0.3 * sc.line)
        _text(image, panel.tag, x + sc.pad, baseline, sc, color, bold=True)
        for line in panel.lines:
            sure, guess = line.style == "sure", line.style == "guess"
            text_color = TEXT_COLOR if line.style in ("sure", "on") else (GUESS_COLOR if guess else DIM_COLOR)
            lx = x + sc.pad + panel.tag_w
            _text(image, line.label + ("?" if guess else ""), lx, baseline, sc, text_color, bold=sure)
            bx = lx + sc.pad + panel.label_w
            bar_top = baseline - round(0.55 * sc.line)
            cv2.rectangle(image, (bx, bar_top), (bx + panel.bar_w, baseline), (90, 90, 90), cv2.FILLED)
            fill = bx + round(panel.bar_w * float(np.clip(line.score, 0, 1)))
            cv2.rectangle(image, (bx, bar_top), (fill, baseline), SURE_BAR if sure else OTHER_BAR, cv2.FILLED)
            _text(image, f"{100 * line.score:.0f}%", bx + panel.bar_w + sc.pad, baseline, sc, text_color)
            baseline += sc.line
        for row, level in panel.level_rows:
            _text(image, row, x + sc.pad, baseline, sc, LEVEL_COLORS[level])
            baseline += sc.line
        if panel.chips:
            self._draw_chips(image, panel.chips, x + sc.pad, baseline, sc)

    def _draw_gap_banner(self, image: np.ndarray, result: FrameResult, sc: _Scale) -> None:
        """Marks a reconnect in the recording itself, for a couple of seconds."""
        frame = result.frame
        if frame.gap_before:
            self._gap = (frame.pts_s, frame.gap_s)
        if self._gap is None or frame.pts_s - self._gap[0] > self.GAP_BANNER_S:
            return
        text = f"STREAM INTERRUPTED {self._gap[1]:.1f} s - RECONNECTED"
        w = _text_width(text, sc) + 2 * sc.pad
        x = max((image.shape[1] - w) // 2, 0)
        y = 2 * sc.line
        cv2.rectangle(image, (x, y), (x + w, y + sc.line + sc.pad), GAP_COLOR, cv2.FILLED)
        _text(image, text, x + sc.pad, y + sc.line - sc.pad // 2, sc, (255, 255, 255), bold=True)

    def _draw_boxes(self, image: np.ndarray, person: Person, sc: _Scale) -> None:
        color = track_bgr(person.track_id)
        x1, y1, x2, y2 = person.body_box.rounded()
        cv2.rectangle(image, (x1, y1), (x2, y2), color, sc.thick + 1, cv2.LINE_8)
        if person.head_box is not None:
            hx1, hy1, hx2, hy2 = person.head_box.rounded()
            cv2.rectangle(image, (hx1, hy1), (hx2, hy2), color, max(1, sc.thick - 1), cv2.LINE_8)

    def _draw_tags(
        self, image: np.ndarray, result: FrameResult, sc: _Scale, faces: list[Rect], taken: list[Rect], top: int
    ) -> None:
        """An id tag for each person without a panel (a panel carries its own), never over a face."""
        h, w = image.shape[:2]
        with_panel = {track_id for track_id, _ in self.last_panels}
        taken = list(taken)
        self.last_tags = []
        for person in result.persons:
            if person.track_id in with_panel:
                continue
            tag = f"#{person.track_id}"
            tw, th = _text_width(tag, sc) + 2 * sc.pad, sc.line + sc.pad
            body = _rect(person.body_box)
            candidates = [
                Rect(body.x, body.y - th, tw, th),  # above the body box
                Rect(body.x, max(body.y, top), tw, th),  # inside its top-left corner (below the status line)
                Rect(body.x + body.w - tw, max(body.y, top), tw, th),  # inside its top-right corner
                Rect(body.x, body.y + body.h - th, tw, th),  # inside its bottom-left corner
            ]
            if person.head_box is not None:
                face = _rect(person.head_box)
                candidates += [
                    Rect(face.x, face.y + face.h + sc.pad, tw, th),  # under the face
                    Rect(face.x - tw - sc.pad, face.y, tw, th),  # left of it
                    Rect(face.x + face.w + sc.pad, face.y, tw, th),  # right of it
                ]
            spot = next(
                (r for r in candidates if r.inside(w, h, top) and not any(r.overlaps(o) for o in (*faces, *taken))),
                None,
            )
            if spot is None:
                continue  # no room off the faces: the box's colour still tells the person apart
            color = track_bgr(person.track_id)
            cv2.rectangle(image, (spot.x, spot.y), (spot.x + spot.w, spot.y + spot.h), color, cv2.FILLED)
            _text(image, tag, spot.x + sc.pad, spot.y + spot.h - sc.pad - 1, sc, (0, 0, 0), bold=True)
            taken.append(spot)
            self.last_tags.append((person.track_id, spot))

    def _level_rows(self, shown: EmotionResult) -> list[tuple[str, Level]]:
        rows: list[tuple[str, Level]] = []
        for level in (Level.VI, Level.HEAD, Level.BODY, Level.CONTEXT):
            if level in shown.scores and len(shown.scores) > 2:
                label, p = shown.top(1, level)[0]
                rows.append((f"{LEVEL_SHORT[level]}: {label} {100 * p:.0f}%", level))
        return rows

    def _chips_width(self, chips: tuple[Level, ...], sc: _Scale) -> int:
        if not chips:
            return 0
        return (
            sum(_text_width(LEVEL_SHORT[c], sc) + 3 * sc.pad for c in chips)
            + _text_width(" > ", sc) * (len(chips) - 1)
            + 2 * sc.pad
        )

    def _draw_chips(self, image: np.ndarray, chips: tuple[Level, ...], x: int, baseline: int, sc: _Scale) -> None:
        """The exclusion sequence: first excluded ... kept, left to right."""
        top = baseline - round(0.7 * sc.line)
        for position, level in enumerate(chips):
            name = LEVEL_SHORT[level]
            cw = _text_width(name, sc) + 2 * sc.pad
            kept = position == len(chips) - 1
            color = LEVEL_COLORS[level]
            if kept:
                cv2.rectangle(image, (x, top), (x + cw, baseline + sc.pad), color, cv2.FILLED)
                _text(image, name, x + sc.pad, baseline, sc, (0, 0, 0), bold=True)
            else:
                cv2.rectangle(image, (x, top), (x + cw, baseline + sc.pad), color, sc.thick)
                _text(image, name, x + sc.pad, baseline, sc, color)
                mid = (top + baseline + sc.pad) // 2
                cv2.line(image, (x, mid), (x + cw, mid), color, sc.thick)  # struck out: excluded
            x += cw + sc.pad
            if not kept:
                x += _text(image, ">", x, baseline, sc, DIM_COLOR) + sc.pad

    def _draw_stats(self, image: np.ndarray, result: FrameResult, stats: OverlayStats | None, sc: _Scale) -> None:
        parts = [f"frame {result.frame.index}", f"{len(result.persons)} people"]
        if stats is not None:
            parts.append(f"{stats.fps:.1f} fps")
            if stats.latency_ms is not None:
                parts.append(f"latency {stats.latency_ms:.0f} ms")
            if stats.dropped:
                parts.append(f"dropped {stats.dropped}")
        text = "  ".join(parts)
        _shade(image, 0, 0, _text_width(text, sc) + 2 * sc.pad, sc.line + sc.pad)
        _text(image, text, sc.pad, sc.line - sc.pad, sc, TEXT_COLOR)

    def _legend(self, image: np.ndarray, result: FrameResult, sc: _Scale) -> _Legend:
        h = image.shape[0]
        rows: list[list[tuple[str, tuple[int, int, int]]]] = []
        if self.model_description:
            rows.append([(self.model_description, TEXT_COLOR)])
        rows.append([("a colour per person: thick body, thin face", DIM_COLOR)])
        if any(s is not None and s.uncertain for s in result.smoothed):
            rows.append([("label? = a guess (low score or close second)", GUESS_COLOR)])
        if any(s is not None and s.exclusion for s in result.smoothed):
            rows.append(
                [("exclusion: first out > kept  ", DIM_COLOR)]
                + [(f"{LEVEL_SHORT[lv]} ", LEVEL_COLORS[lv]) for lv in (Level.HEAD, Level.BODY, Level.CONTEXT)]
            )
        width = max(sum(_text_width(t, sc) for t, _ in row) for row in rows) + 2 * sc.pad
        top = h - len(rows) * sc.line - sc.pad
        return _Legend(rows, Rect(0, top, width, h - top))

    def _draw_legend(self, image: np.ndarray, legend: _Legend, sc: _Scale) -> None:
        r = legend.rect
        _shade(image, r.x, r.y, r.x + r.w, r.y + r.h)
        baseline = r.y + sc.line - sc.pad
        for row in legend.rows:
            x = sc.pad
            for text, color in row:
                x += _text(image, text, x, baseline, sc, color)
            baseline += sc.line
