"""The overlay renderer: boxes, track ids, emotions with score bars, exclusion chips.

Everything scales with the frame's shorter side, so the same overlay reads at
480p and at 4K. Colours are BGR; body boxes green and face boxes yellow, as in
the official CocoER output.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2

import numpy as np

from cocoer_core.api import EmotionResult, Level
from streamer.config import OverlayConfig
from streamer.types import Box, FrameResult, Person
from streamer.view.panel_layout import Rect, place

BODY_COLOR = (0, 255, 0)
HEAD_COLOR = (0, 255, 255)
TEXT_COLOR = (255, 255, 255)
DIM_COLOR = (170, 170, 170)
PANEL_COLOR = (24, 24, 24)
GAP_COLOR = (0, 0, 200)
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
class _Panel:
    """One person's label panel: what it says and how big it is."""

    lines: list[tuple[str, float, bool]]
    level_rows: list[tuple[str, Level]]
    chips: tuple[Level, ...]
    label_w: int
    bar_w: int
    width: int
    height: int


def _rect(box: Box) -> Rect:
    x1, y1, x2, y2 = box.rounded()
    return Rect(x1, y1, max(x2 - x1, 1), max(y2 - y1, 1))


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


class OverlayRenderer:
    """Draws a `FrameResult` onto its frame."""

    #: How long the "reconnected" banner stays up after a gap (stream seconds).
    GAP_BANNER_S = 2.0

    def __init__(self, config: OverlayConfig, model_description: str = "") -> None:
        self.config = config
        self.model_description = model_description
        self._gap: tuple[float, float] | None = None  # (pts when it ended, its length)
        #: Where the last frame's label panels went (track id, rectangle): for tests and the web view.
        self.last_panels: list[tuple[int, Rect]] = []

    def annotate(self, image: np.ndarray, result: FrameResult, stats: OverlayStats | None = None) -> np.ndarray:
        """Draw onto `image` (modified in place and returned)."""
        sc = _Scale.for_frame(image.shape[1], image.shape[0])
        # Status and legend first: what belongs to a person is drawn on top of them.
        if self.config.show_stats:
            self._draw_stats(image, result, stats, sc)
        if self.config.show_legend:
            self._draw_legend(image, result, sc)
        for person in result.persons:
            self._draw_boxes(image, person, sc)
        self._draw_panels(image, result, sc)
        self._draw_gap_banner(image, result, sc)
        return image

    def _draw_panels(self, image: np.ndarray, result: FrameResult, sc: _Scale) -> None:
        """Lay out every panel first (no overlap with each other or any face), then draw them."""
        h, w = image.shape[:2]
        faces = [_rect(p.head_box) for p in result.persons if p.head_box is not None]
        anchors = [_rect(p.head_box or p.body_box) for p in result.persons]
        top = sc.line + sc.pad if self.config.show_stats else 0
        full = [self._panel(shown, sc, compact=False) if shown else None for shown in result.smoothed]
        spots = place(
            [(c.width, c.height) if c else None for c in full],
            anchors,
            faces,
            (w, h),
            top=top,
            gap=sc.pad,
            step=max(sc.line // 2, 2),
        )
        content: list[_Panel | None] = [c if spot else None for c, spot in zip(full, spots, strict=True)]
        # The ones that fit nowhere try again smaller: top label only, no level rows or chips.
        retry = [i for i, (c, spot) in enumerate(zip(full, spots, strict=True)) if c is not None and spot is None]
        if retry:
            compact = {i: self._panel(result.smoothed[i], sc, compact=True) for i in retry}  # type: ignore[arg-type]
            placed = [spot for spot in spots if spot is not None]
            again = place(
                [(compact[i].width, compact[i].height) for i in retry],
                [anchors[i] for i in retry],
                faces,
                (w, h),
                placed,
                top=top,
                gap=sc.pad,
                step=max(sc.line // 2, 2),
            )
            for i, spot in zip(retry, again, strict=True):
                spots[i], content[i] = spot, compact[i] if spot else None
        self.last_panels = []
        for person, panel, spot in zip(result.persons, content, spots, strict=True):
            if panel is not None and spot is not None:
                self._draw_panel(image, panel, spot, sc)
                self.last_panels.append((person.track_id, spot))

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
        x1, y1, x2, y2 = person.body_box.rounded()
        cv2.rectangle(image, (x1, y1), (x2, y2), BODY_COLOR, sc.thick, cv2.LINE_8)
        if person.head_box is not None:
            hx1, hy1, hx2, hy2 = person.head_box.rounded()
            cv2.rectangle(image, (hx1, hy1), (hx2, hy2), HEAD_COLOR, sc.thick, cv2.LINE_8)
        tag = f"#{person.track_id}"
        tw = _text_width(tag, sc)
        # Above the box's top edge; inside it, below the status bar, when there's no room above.
        reserved = sc.line + sc.pad if self.config.show_stats else 0
        top = y1 if y1 - sc.line - sc.pad >= reserved else max(y1, reserved) + sc.line + sc.pad
        cv2.rectangle(image, (x1, top - sc.line - sc.pad), (x1 + tw + 2 * sc.pad, top), BODY_COLOR, cv2.FILLED)
        _text(image, tag, x1 + sc.pad, top - sc.pad - 1, sc, (0, 0, 0), bold=True)

    def _panel_lines(self, shown: EmotionResult) -> list[tuple[str, float, bool]]:
        chosen = set(shown.pred)
        return [(label, p, label in chosen) for label, p in shown.top(self.config.top_k)]

    def _panel(self, shown: EmotionResult, sc: _Scale, compact: bool) -> _Panel:
        """A panel's content and size; compact: the top label only."""
        lines = self._panel_lines(shown)[: 1 if compact else None]
        bar_w = round(60 * sc.font / 0.5)
        label_w = max(_text_width(label, sc) for label, _, _ in lines)
        level_rows = self._level_rows(shown) if self.config.show_levels and not compact else []
        chips = shown.exclusion if self.config.show_exclusion and not compact else ()
        width = max(
            label_w + bar_w + _text_width("100%", sc) + 4 * sc.pad,
            max((_text_width(row, sc) + 2 * sc.pad for row, _ in level_rows), default=0),
            self._chips_width(chips, sc),
        )
        height = sc.line * (len(lines) + len(level_rows) + (1 if chips else 0)) + 2 * sc.pad
        return _Panel(lines, level_rows, chips, label_w, bar_w, width, height)

    def _draw_panel(self, image: np.ndarray, panel: _Panel, spot: Rect, sc: _Scale) -> None:
        x, y = spot.x, spot.y
        _shade(image, x, y, x + spot.w, y + spot.h)
        baseline = y + sc.pad + sc.line - round(0.3 * sc.line)
        for label, p, chosen in panel.lines:
            color = TEXT_COLOR if chosen else DIM_COLOR
            _text(image, label, x + sc.pad, baseline, sc, color, bold=chosen)
            bx = x + 2 * sc.pad + panel.label_w
            bar_top = baseline - round(0.55 * sc.line)
            cv2.rectangle(image, (bx, bar_top), (bx + panel.bar_w, baseline), (90, 90, 90), cv2.FILLED)
            cv2.rectangle(
                image,
                (bx, bar_top),
                (bx + round(panel.bar_w * float(np.clip(p, 0, 1))), baseline),
                (0, 200, 255) if chosen else (140, 140, 140),
                cv2.FILLED,
            )
            _text(image, f"{100 * p:.0f}%", bx + panel.bar_w + sc.pad, baseline, sc, color)
            baseline += sc.line
        for row, level in panel.level_rows:
            _text(image, row, x + sc.pad, baseline, sc, LEVEL_COLORS[level])
            baseline += sc.line
        if panel.chips:
            self._draw_chips(image, panel.chips, x + sc.pad, baseline, sc)

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

    def _draw_legend(self, image: np.ndarray, result: FrameResult, sc: _Scale) -> None:
        h = image.shape[0]
        rows: list[list[tuple[str, tuple[int, int, int]]]] = []
        if self.model_description:
            rows.append([(self.model_description, TEXT_COLOR)])
        rows.append([("body", BODY_COLOR), ("  face", HEAD_COLOR)])
        if any(s is not None and s.exclusion for s in result.smoothed):
            rows.append(
                [("exclusion: first out > kept  ", DIM_COLOR)]
                + [(f"{LEVEL_SHORT[lv]} ", LEVEL_COLORS[lv]) for lv in (Level.HEAD, Level.BODY, Level.CONTEXT)]
            )
        width = max(sum(_text_width(t, sc) for t, _ in row) for row in rows) + 2 * sc.pad
        top = h - len(rows) * sc.line - sc.pad
        _shade(image, 0, top, width, h)
        baseline = top + sc.line - sc.pad
        for row in rows:
            x = sc.pad
            for text, color in row:
                x += _text(image, text, x, baseline, sc, color)
            baseline += sc.line
