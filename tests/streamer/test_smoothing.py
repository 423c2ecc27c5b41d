"""Smoothing maths (half-life, frame-rate independence, hysteresis) and track lifecycle."""

from __future__ import annotations

import numpy as np
import pytest

from cocoer_core.api import EmotionResult, Level
from cocoer_core.postprocess import LabelRule, labels_with_hysteresis
from streamer.config import SmoothingConfig
from streamer.stages.smoothing import SmoothingBank, TrackSmoother, ema_weight
from streamer.types import Box, Person, TrackEventKind

LABELS = ("a", "b", "c")
MULTI = LabelRule(final_threshold=0.5, level_threshold=0.5)
SINGLE = LabelRule(None, None)


def _result(final, head=None, exclusion=()) -> EmotionResult:
    scores = {Level.FINAL: np.asarray(final, np.float32)}
    if head is not None:
        scores[Level.HEAD] = np.asarray(head, np.float32)
    return EmotionResult("test", LABELS, scores, pred=(), exclusion=tuple(exclusion))


def _step_response(fps: float, seconds: float, half_life: float) -> float:
    smoother = TrackSmoother(SmoothingConfig(half_life_s=half_life, hysteresis=0.0), MULTI)
    smoother.update(_result([0, 0, 0]), 0.0)
    n = round(seconds * fps)
    for i in range(1, n + 1):
        out = smoother.update(_result([1, 0, 0]), i / fps)
    return float(out.scores[Level.FINAL][0])


@pytest.mark.parametrize("fps", [4, 10, 30, 60])
def test_half_life_is_in_seconds_whatever_the_frame_rate(fps: float) -> None:
    assert _step_response(fps, 0.5, half_life=0.5) == pytest.approx(0.5, abs=1e-5)
    assert _step_response(fps, 1.0, half_life=0.5) == pytest.approx(0.75, abs=1e-5)


def test_ema_weight_edges() -> None:
    assert ema_weight(1.0, 0.0) == 1.0  # no smoothing
    assert ema_weight(0.0, 1.0) == 0.0
    assert ema_weight(-1.0, 1.0) == 0.0  # a clock going backwards never extrapolates


def test_irregular_sampling_matches_regular_sampling() -> None:
    regular = TrackSmoother(SmoothingConfig(half_life_s=0.3), MULTI)
    irregular = TrackSmoother(SmoothingConfig(half_life_s=0.3), MULTI)
    regular.update(_result([0, 0, 0]), 0.0)
    irregular.update(_result([0, 0, 0]), 0.0)
    for t in np.arange(0.1, 1.01, 0.1):
        out_r = regular.update(_result([1, 0, 0]), float(t))
    for t in (0.35, 0.4, 1.0):
        out_i = irregular.update(_result([1, 0, 0]), t)
    assert out_r.scores[Level.FINAL][0] == pytest.approx(out_i.scores[Level.FINAL][0], abs=1e-5)


def test_multilabel_hysteresis_does_not_flicker() -> None:
    smoother = TrackSmoother(SmoothingConfig(half_life_s=0.0, hysteresis=0.05), MULTI)
    shown = [
        smoother.update(_result([p, 0, 0]), i * 0.1).pred
        for i, p in enumerate([0.6, 0.48, 0.52, 0.47, 0.44, 0.53, 0.56])
    ]
    assert shown == [("a",), ("a",), ("a",), ("a",), (), (), ("a",)]


def test_single_label_switches_only_when_clearly_beaten() -> None:
    previous = ("a",)
    assert labels_with_hysteresis(LABELS, np.array([0.45, 0.48, 0.07]), None, previous, 0.05) == ("a",)
    assert labels_with_hysteresis(LABELS, np.array([0.40, 0.50, 0.10]), None, previous, 0.05) == ("b",)
    assert labels_with_hysteresis(LABELS, np.array([0.40, 0.50, 0.10]), None, None, 0.05) == ("b",)


def test_a_single_label_model_shows_its_top_score_and_marks_a_close_call_uncertain() -> None:
    """The shown label is the first bar; when it barely leads, it is a guess, not a held answer."""
    smoother = TrackSmoother(SmoothingConfig(half_life_s=0.0), SINGLE)
    sure = smoother.update(_result([0.8, 0.15, 0.05]), 0.0)
    assert sure.pred == ("a",) and not sure.uncertain
    close = smoother.update(_result([0.45, 0.48, 0.07]), 0.1)
    assert close.pred == ("b",) and close.uncertain, "the top score is shown, as a guess"
    low = smoother.update(_result([0.42, 0.2, 0.38]), 0.2)
    assert low.pred == ("a",) and low.uncertain, "below uncertain_below"
    clear = smoother.update(_result([0.1, 0.75, 0.15]), 0.3)
    assert clear.pred == ("b",) and not clear.uncertain


def test_a_multi_label_model_is_uncertain_when_its_top_score_barely_clears_the_threshold() -> None:
    smoother = TrackSmoother(SmoothingConfig(half_life_s=0.0, uncertain_margin=0.15), MULTI)
    assert not smoother.update(_result([0.9, 0.85, 0.1]), 0.0).uncertain, "two labels: a close second is no doubt"
    assert smoother.update(_result([0.6, 0.1, 0.1]), 0.1).uncertain
    assert smoother.update(_result([0.3, 0.1, 0.1]), 0.2).uncertain


def test_shown_exclusion_is_the_most_frequent_recent_sequence() -> None:
    h, b, c = Level.HEAD, Level.BODY, Level.CONTEXT
    smoother = TrackSmoother(SmoothingConfig(exclusion_window=4), MULTI)
    for i, seq in enumerate([(h, b, c), (h, b, c), (c, b, h), (h, b, c), (c, b, h), (c, b, h), (c, b, h)]):
        out = smoother.update(_result([0.1, 0.1, 0.1], exclusion=seq), i * 0.1)
    assert out.exclusion == (c, b, h)
    tie = TrackSmoother(SmoothingConfig(exclusion_window=4), MULTI)
    for i, seq in enumerate([(h, b, c), (c, b, h)]):
        out = tie.update(_result([0.1, 0.1, 0.1], exclusion=seq), i * 0.1)
    assert out.exclusion == (c, b, h), "ties go to the most recent"


def test_all_levels_are_smoothed_independently() -> None:
    smoother = TrackSmoother(SmoothingConfig(half_life_s=1.0), MULTI)
    smoother.update(_result([0, 0, 0], head=[1, 1, 1]), 0.0)
    out = smoother.update(_result([1, 1, 1], head=[0, 0, 0]), 1.0)
    np.testing.assert_allclose(out.scores[Level.FINAL], 0.5, atol=1e-6)
    np.testing.assert_allclose(out.scores[Level.HEAD], 0.5, atol=1e-6)


def _person(track_id: int) -> Person:
    return Person(track_id, Box(0, 0, 10, 20), None, 0.9)


def test_lifecycle_birth_short_gap_and_death() -> None:
    bank = SmoothingBank(SmoothingConfig(half_life_s=0.2), MULTI)
    r = _result([0.9, 0.1, 0.1])
    _, events = bank.update(0.0, 0, [_person(1)], [r])
    assert [(e.kind, e.track_id) for e in events] == [(TrackEventKind.START, 1)]
    # Occluded: however long, the state is kept while the tracker keeps the track.
    _, events = bank.update(4.0, 40, [], [])
    assert events == () and 1 in bank
    smoothed, events = bank.update(5.0, 50, [_person(1)], [None])
    assert events == () and smoothed[0] is not None, "the carried result survives the gap"
    # The tracker ends it: it ends here, recording where it was last seen.
    _, events = bank.update(5.1, 51, [_person(2)], [r], ended=[1])
    kinds = {(e.kind, e.track_id, e.last_frame) for e in events}
    assert kinds == {(TrackEventKind.START, 2, None), (TrackEventKind.END, 1, 50)}
    assert 1 not in bank
    # The stream ends: every live track ends in the last frame.
    _, events = bank.update(1.3, 13, [_person(2)], [None], final=True)
    assert [(e.kind, e.track_id) for e in events] == [(TrackEventKind.END, 2)]
    assert bank.track_ids == []


def test_a_new_track_without_inference_shows_nothing_yet() -> None:
    bank = SmoothingBank(SmoothingConfig(), MULTI)
    smoothed, _ = bank.update(0.0, 0, [_person(7)], [None])
    assert smoothed == (None,)
    assert bank.frames_since_inference(7) is None
