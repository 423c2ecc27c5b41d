"""Per-track temporal smoothing of emotion scores, and the track lifecycle.

Each level's probabilities follow an exponential moving average whose weight
depends on the time elapsed, not the frame count: after `half_life_s`
seconds an old value has half its weight, at any frame rate or inference
stride. Multi-label labels use hysteresis so they don't flicker; a
single-label model's label is always its top score (the first bar shown),
and when that barely beats the second the result is marked uncertain
instead of holding on to the previous label. The shown exclusion sequence
is the most frequent one over a short window.

Smoothing lives here, after the model: the model has no memory across frames.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from cocoer_core.api import EmotionResult, Level
from cocoer_core.postprocess import ConfidenceRule, LabelRule, labels_with_hysteresis
from streamer.config import SmoothingConfig
from streamer.types import Person, TrackEvent, TrackEventKind


def ema_weight(dt_s: float, half_life_s: float) -> float:
    """Weight of a new sample after dt seconds: 1 - 2^(-dt / half_life)."""
    if half_life_s <= 0:
        return 1.0
    return float(1.0 - 0.5 ** (max(dt_s, 0.0) / half_life_s))


class TrackSmoother:
    """The smoothed emotion state of one track."""

    def __init__(self, config: SmoothingConfig, rule: LabelRule) -> None:
        self.config = config
        self.rule = rule
        self.confidence = ConfidenceRule(config.uncertain_below, config.uncertain_margin)
        self._scores: dict[Level, np.ndarray] = {}
        self._last_t: float | None = None
        self._template: EmotionResult | None = None
        self._final_shown: tuple[str, ...] | None = None
        self._level_shown: dict[Level, tuple[str, ...]] = {}
        self._sequences: deque[tuple[Level, ...]] = deque(maxlen=config.exclusion_window)
        self.current: EmotionResult | None = None

    def update(self, raw: EmotionResult, t: float) -> EmotionResult:
        """Fold in one new model output taken at time t (seconds)."""
        if self._last_t is None:
            self._scores = {level: values.astype(np.float32).copy() for level, values in raw.scores.items()}
        else:
            w = ema_weight(t - self._last_t, self.config.half_life_s)
            for level, values in raw.scores.items():
                previous = self._scores.get(level)
                self._scores[level] = (
                    values.astype(np.float32) if previous is None else previous + w * (values - previous)
                )
        self._last_t = t
        self._template = raw
        if raw.exclusion:
            self._sequences.append(raw.exclusion)
        self.current = self._build()
        return self.current

    def _most_frequent_sequence(self) -> tuple[Level, ...]:
        if not self._sequences:
            return ()
        counts = Counter(self._sequences)
        best = max(counts.values())
        # Ties go to the most recent of the tied sequences.
        for sequence in reversed(self._sequences):
            if counts[sequence] == best:
                return sequence
        return ()  # pragma: no cover - the loop always returns

    def _build(self) -> EmotionResult:
        template = self._template
        if template is None:
            raise RuntimeError("nothing to smooth yet")
        labels = template.labels
        margin = self.config.hysteresis if self.rule.final_threshold is not None else 0.0
        self._final_shown = labels_with_hysteresis(
            labels, self._scores[Level.FINAL], self.rule.final_threshold, self._final_shown, margin
        )
        for level in self._scores:
            if level is not Level.FINAL:
                self._level_shown[level] = labels_with_hysteresis(
                    labels, self._scores[level], self.rule.level_threshold, self._level_shown.get(level), margin
                )
        return replace(
            template,
            scores={level: values.copy() for level, values in self._scores.items()},
            pred=self._final_shown,
            level_pred=dict(self._level_shown),
            exclusion=self._most_frequent_sequence(),
            level_losses={},
            uncertain=self.confidence.uncertain(self._scores[Level.FINAL], self.rule.final_threshold),
        )


@dataclass
class _TrackState:
    smoother: TrackSmoother
    last_seen_frame: int
    frames_since_inference: int | None = None


class SmoothingBank:
    """All tracks' smoothers, created on a track's birth and dropped at its end.

    A track missing from the frame (a short occlusion) keeps its state until
    the tracker says it ended: the tracker's `max_age` is the one rule.
    """

    def __init__(self, config: SmoothingConfig, rule: LabelRule) -> None:
        self.config = config
        self.rule = rule
        self._tracks: dict[int, _TrackState] = {}

    def __contains__(self, track_id: int) -> bool:
        return track_id in self._tracks

    @property
    def track_ids(self) -> list[int]:
        return sorted(self._tracks)

    def frames_since_inference(self, track_id: int) -> int | None:
        """Frames of this track processed since its last inference (0: inferred on the last one); None: never."""
        state = self._tracks.get(track_id)
        return state.frames_since_inference if state else None

    def update(
        self,
        t: float,
        frame_index: int,
        persons: Sequence[Person],
        raw: Sequence[EmotionResult | None],
        ended: Sequence[int] = (),
        final: bool = False,
    ) -> tuple[tuple[EmotionResult | None, ...], tuple[TrackEvent, ...]]:
        """Fold in one frame; return the smoothed view per person and lifecycle events.

        Args:
            t: the frame's timestamp in seconds.
            frame_index: the frame's index.
            persons: this frame's tracked persons.
            raw: model output per person (None where the model did not run).
            ended: track ids the tracker ended with this frame.
            final: the stream ends with this frame: every track ends here.
        """
        events: list[TrackEvent] = []
        smoothed: list[EmotionResult | None] = []
        # An id the tracker ended never comes back, so ends are handled first.
        for track_id in sorted(set(ended)):
            state = self._tracks.pop(track_id, None)
            if state is not None:
                events.append(TrackEvent(TrackEventKind.END, track_id, state.last_seen_frame))
        for person, result in zip(persons, raw, strict=True):
            state = self._tracks.get(person.track_id)
            if state is None:
                state = self._tracks[person.track_id] = _TrackState(TrackSmoother(self.config, self.rule), frame_index)
                events.append(TrackEvent(TrackEventKind.START, person.track_id))
            state.last_seen_frame = frame_index
            if result is not None:
                state.smoother.update(result, t)
                state.frames_since_inference = 0
            elif state.frames_since_inference is not None:
                state.frames_since_inference += 1
            smoothed.append(state.smoother.current)
        if final:
            for track_id in sorted(self._tracks):
                events.append(TrackEvent(TrackEventKind.END, track_id, self._tracks.pop(track_id).last_seen_frame))
        return tuple(smoothed), tuple(events)
