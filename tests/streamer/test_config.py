"""Settings: a number that is not one (`nan`, `inf`) is refused in one line naming the key."""

from __future__ import annotations

import pytest

from streamer.config import AppConfig, SourceConfig, load_config
from streamer.errors import UserError
from trackers import TrackerConfig


@pytest.mark.parametrize(
    ("override", "key"),
    [("source.open_timeout_s=nan", "source.open_timeout_s"), ("smoothing.half_life_s=inf", "smoothing.half_life_s"),
     ("tracker.min_iou=nan", "tracker.min_iou"), ("emotion.final_threshold=-inf", "emotion.final_threshold")],
)  # fmt: skip
def test_a_number_that_is_not_finite_is_refused_naming_its_key(override: str, key: str) -> None:
    # nan passed every `<` and `>` check: a timeout of nan reached FFmpeg, a threshold of nan matched nothing.
    with pytest.raises(UserError) as info:
        load_config(overrides=[override])
    assert str(info.value).startswith(f"bad configuration: {key} must be a finite number; got ")


def test_the_python_api_refuses_it_too() -> None:
    with pytest.raises(ValueError, match=r"^tracker\.min_iou must be a finite number; got nan$"):
        AppConfig(tracker=TrackerConfig(min_iou=float("nan")))
    assert AppConfig(source=SourceConfig(open_timeout_s=1e9)).source.open_timeout_s == 1e9, "large is fine"


@pytest.mark.parametrize(
    ("override", "said"),
    [("emotion.final_threshold=7", "emotion.final_threshold must be within 0..1; got 7.0"),
     ("emotion.level_threshold=-1", "emotion.level_threshold must be within 0..1; got -1.0"),
     ("emotion.face_margin=-5", "emotion.face_margin must be within 0..2; got -5.0"),
     ("emotion.inside_lr=-3", "emotion.inside_lr must be >= 0.0; got -3.0"),
     ("detector.face_min_score=2", "detector.face_min_score must be within 0..1; got 2.0"),
     ("detector.max_side=-5", "detector.max_side must be >= 0; got -5"),
     ("detector.min_face_px=-3", "detector.min_face_px must be >= 0; got -3"),
     ("smoothing.hysteresis=-1", "smoothing.hysteresis must be within 0..1; got -1.0"),
     ("tracker.min_iou=1.5", "tracker.min_iou must be within 0..1; got 1.5"),
     ("tracker.nn_budget=0", "tracker.nn_budget must be >= 1; got 0")],
)  # fmt: skip
def test_a_number_out_of_its_range_is_refused_naming_its_key(override: str, said: str) -> None:
    # Each was accepted and ran: a threshold of 7 showed no emotion ever, a negative max_side searched no face.
    with pytest.raises(UserError) as info:
        load_config(overrides=[override])
    assert str(info.value) == f"bad configuration: {said}"
    assert load_config(overrides=["detector.person_min_score=-0.5"]).detector.person_min_score == -0.5, "HOG's margin"
