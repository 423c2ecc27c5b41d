"""The overlay is drawn where it should be, in the right colours, at 480p and at 4K."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2

import numpy as np
import pytest

from cocoer_core.api import EmotionResult, Level
from cocoer_core.labels import EMOTIC_LABELS
from streamer.config import OverlayConfig
from streamer.types import Box, Frame, FrameResult, Person
from streamer.view.overlay import GUESS_COLOR, LEVEL_COLORS, SURE_BAR, OverlayRenderer, OverlayStats
from streamer.view.palette import track_bgr
from tests.conftest import media_file


def _near(image: np.ndarray, color: tuple[int, int, int], tol: int = 12) -> np.ndarray:
    return np.all(np.abs(image.astype(int) - np.array(color)) <= tol, axis=2)


def _shaded_fraction(out: np.ndarray, original: np.ndarray, y1: int, y2: int, x1: int, x2: int) -> float:
    """Share of pixels equal to the panel shade (70% dark grey over the original) in a region."""
    expected = original[y1:y2, x1:x2].astype(np.float32) * 0.3 + np.float32(24 * 0.7)
    return float(np.all(np.abs(out[y1:y2, x1:x2] - expected) <= 2, axis=2).mean())


def _cocoer_like() -> EmotionResult:
    rng = np.random.default_rng(0)
    scores = {level: rng.uniform(0, 0.4, 26).astype(np.float32) for level in Level}
    scores[Level.FINAL][16] = 0.93  # happiness
    scores[Level.FINAL][13] = 0.71  # excitement
    return EmotionResult(
        "cocoer",
        EMOTIC_LABELS,
        scores,
        pred=("excitement", "happiness"),
        exclusion=(Level.BODY, Level.HEAD, Level.CONTEXT),
    )


def _scene(shared_media: Path, width: int, height: int):
    photo = cv2.imread(str(media_file(shared_media, "face_single_portrait.jpg")))
    image = cv2.resize(photo, (width, height))
    s = width / 854
    person = Person(3, Box(200 * s, 60 * s, 420 * s, 470 * s), Box(260 * s, 80 * s, 340 * s, 180 * s), 0.9)
    frame = Frame("t", 12, 0.5, 0.0, image)
    result = _cocoer_like()
    return image, FrameResult(frame, (person,), (result,), (result,)), person


@pytest.mark.parametrize(("width", "height"), [(854, 480), (1920, 1080), (3840, 2160)], ids=["480p", "1080p", "4k"])
def test_overlay_draws_boxes_panel_and_chips(shared_media: Path, width: int, height: int) -> None:
    image, result, person = _scene(shared_media, width, height)
    original = image.copy()
    renderer = OverlayRenderer(OverlayConfig(), "CocoER test")
    out = renderer.annotate(image, result, OverlayStats(fps=12.5, latency_ms=80))
    scale = height / 480
    assert renderer.last_legend is not None
    # Body and face box edges: the left edge columns are the person's colour along most of their height.
    color = track_bgr(person.track_id)
    x1, y1, _x2, y2 = person.body_box.rounded()
    bottom = min(y2, renderer.last_legend.y)  # the legend is drawn over everything
    edge = _near(out[y1 + 40 : bottom - 10, x1 - 1 : x1 + 2], color).any(axis=1)
    assert edge.mean() > 0.9
    hx1, hy1, hx2, hy2 = person.head_box.rounded()  # type: ignore[union-attr]
    assert _near(out[hy1 + 5 : hy2 - 5, hx1 - 1 : hx1 + 2], color).any(axis=1).mean() > 0.9
    # The emotion panel sits right of the face: a translucent dark shade over the picture.
    assert (
        _shaded_fraction(out, original, hy1 + 2, hy1 + int(80 * scale), hx2 + int(8 * scale), hx2 + int(150 * scale))
        > 0.5
    )
    # The kept level (context) is a filled chip: a blob of its colour that grows with the frame.
    chip_pixels = _near(out, LEVEL_COLORS[Level.CONTEXT], tol=4).sum()
    assert chip_pixels > 150 * scale**2
    # Nothing drawn far from the person, the stats line and the legend.
    assert np.array_equal(
        out[height // 2 : height * 3 // 4, int(width * 0.8) :],
        original[height // 2 : height * 3 // 4, int(width * 0.8) :],
    )


def test_text_scales_with_the_frame(shared_media: Path) -> None:
    sizes = {}
    for width, height in ((854, 480), (3840, 2160)):
        image, result, _ = _scene(shared_media, width, height)
        original = image.copy()
        out = OverlayRenderer(OverlayConfig(show_legend=False), "").annotate(image, result, OverlayStats(fps=10))
        changed = np.any(out != original, axis=2)
        top_rows = np.where(changed[: height // 8, : width // 3].any(axis=1))[0]
        sizes[height] = top_rows.max() + 1  # height of the stats bar
    assert 3.0 < sizes[2160] / sizes[480] < 5.5


def test_panel_moves_left_when_the_face_is_at_the_right_edge(shared_media: Path) -> None:
    image, result, _ = _scene(shared_media, 854, 480)
    person = Person(1, Box(700, 60, 850, 470), Box(760, 80, 840, 180), 0.9)
    result = FrameResult(result.frame, (person,), result.raw, result.smoothed)
    original = image.copy()
    out = OverlayRenderer(OverlayConfig(), "").annotate(image, result)
    assert _shaded_fraction(out, original, 90, 140, 620, 740) > 0.5


def test_persons_without_emotion_get_boxes_only(shared_media: Path) -> None:
    image, result, person = _scene(shared_media, 854, 480)
    result = FrameResult(result.frame, result.persons, (None,), (None,))
    original = image.copy()
    out = OverlayRenderer(OverlayConfig(show_stats=False, show_legend=False), "").annotate(image, result)
    _hx1, hy1, hx2, _hy2 = person.head_box.rounded()  # type: ignore[union-attr]
    assert np.array_equal(
        out[hy1 + 5 : hy1 + 30, hx2 + 10 : hx2 + 60], original[hy1 + 5 : hy1 + 30, hx2 + 10 : hx2 + 60]
    )


def _panel_of(renderer: OverlayRenderer, out: np.ndarray) -> np.ndarray:
    ((_, rect),) = renderer.last_panels
    return out[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w]


@pytest.mark.parametrize("uncertain", [False, True], ids=["sure", "guess"])
def test_a_guess_is_drawn_muted_and_only_the_first_bar_is_highlighted(shared_media: Path, uncertain: bool) -> None:
    image, result, _ = _scene(shared_media, 854, 480)
    shown = replace(result.smoothed[0], uncertain=uncertain)
    result = FrameResult(result.frame, result.persons, result.raw, (shown,))
    renderer = OverlayRenderer(OverlayConfig(detail="full", show_levels=False, show_exclusion=False), "")
    panel = _panel_of(renderer, renderer.annotate(image, result))
    line = panel.shape[0] // 3  # three bars: top_k = 3
    highlighted = _near(panel, SURE_BAR, tol=10)
    if uncertain:
        assert not highlighted.any(), "a guess has no highlighted bar"
        assert _near(panel[:line], GUESS_COLOR, tol=10).sum() > 20, "its label is muted"
    else:
        assert highlighted[:line].sum() > 50, "the top score's bar is highlighted"
        assert not highlighted[line:].any(), "no other bar is, though 'excitement' is a label too"


def test_a_held_label_that_is_not_the_top_score_makes_the_headline_a_guess(shared_media: Path) -> None:
    """The panel's first bar is its top score: when the labels don't include it, the headline is not sure."""
    image, result, _ = _scene(shared_media, 854, 480)
    shown = replace(result.smoothed[0], pred=("excitement",))
    result = FrameResult(result.frame, result.persons, result.raw, (shown,))
    renderer = OverlayRenderer(OverlayConfig(detail="full", show_levels=False, show_exclusion=False), "")
    panel = _panel_of(renderer, renderer.annotate(image, result))
    assert not _near(panel, SURE_BAR, tol=10).any()


def test_the_notice_is_drawn_top_right_and_nothing_covers_it(shared_media: Path) -> None:
    image, result, _ = _scene(shared_media, 854, 480)
    original = image.copy()
    renderer = OverlayRenderer(OverlayConfig(), "", notice="Emotion recognition in use")
    out = renderer.annotate(image, result, OverlayStats(fps=10))
    notice = renderer.last_notice
    assert notice is not None and notice.x + notice.w == 854 and notice.y == 0 and notice.w > 150
    region = out[notice.y : notice.y + notice.h, notice.x : notice.x + notice.w]
    assert (region > 200).all(axis=2).sum() > 100, "white text on the shade"
    assert all(not rect.overlaps(notice) for _, rect in renderer.last_panels)
    assert np.array_equal(OverlayRenderer(OverlayConfig(), "").annotate(original.copy(), result)[0:20, 700:854],
                          original[0:20, 700:854]), "no notice: nothing drawn there"  # fmt: skip
