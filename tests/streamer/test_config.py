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
