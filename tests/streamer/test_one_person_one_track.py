"""One person is one track: the default detect+track stage on real clips whose number of people is known.

Close to the camera CenterNet gives several near-identical body boxes for one
person, and the face sits in the middle of a body box cut by the frame: both
once made one person into 2-6 tracks.
"""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from streamer.backends.assembly import detect_track_stage_for
from streamer.config import load_config
from streamer.detectors import FacePersonDetector, build_detector
from streamer.detectors.association import associate
from streamer.detectors.base import ScoredBox
from streamer.sources import SourceKind
from streamer.types import Box, Frame
from tests.conftest import ROOT, media_file

pytestmark = pytest.mark.integration

#: Frames per clip: enough for a spurious second track to show (it did within the first 15).
FRAMES = 40


@pytest.fixture(scope="module")
def detector(centernet_dir: Path) -> FacePersonDetector:
    config = load_config(ROOT / "configs" / "default.yaml", ["detector.allow_download=false"])
    return build_detector(config.detector)


@pytest.mark.parametrize(
    ("clip", "people"),
    [
        ("face_selfie_expressions.mp4", 1),  # portrait, the face in the lower half of the body box
        ("face_woman_talking_pexels.mp4", 1),  # the body box fills the frame
        ("face_expressive_liveportrait_d9.mp4", 1),  # 3-6 near-identical body boxes a frame
        ("faces_two_people_head_pose.mp4", 2),
    ],
)
def test_each_person_is_one_track_for_the_whole_clip(
    detector: FacePersonDetector, shared_media: Path, clip: str, people: int
) -> None:
    config = load_config(ROOT / "configs" / "default.yaml", ["detector.allow_download=false"])
    stage = detect_track_stage_for(config, detector, SourceKind.FILE, config.source, "cpu")
    counts, ids = [], set()
    with av.open(str(media_file(shared_media, clip))) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            if i >= FRAMES:
                break
            image = decoded.to_ndarray(format="bgr24")
            tracked = stage.process(Frame(clip, i, float(decoded.time or 0.0), time.monotonic(), image))
            counts.append(len(tracked.persons))
            ids.update(p.track_id for p in tracked.persons)
    warm_up = config.tracker.n_init - 1  # a track is shown from its n_init-th detection
    assert counts[warm_up:] == [people] * (len(counts) - warm_up), counts
    assert len(ids) == people


def test_a_small_face_low_in_a_big_body_box_stays_its_own_person() -> None:
    """The close-up rule pairs a face in a body box's lower half only when the face is large in it: a person
    sitting behind another (a small face over the front person's chest) keeps a person of their own."""
    front = ScoredBox(Box(100, 50, 500, 700), 0.9)
    front_face = ScoredBox(Box(250, 70, 350, 190), 0.99)
    behind_face = ScoredBox(Box(380, 400, 420, 445), 0.95)  # centre at 0.6 of the front body's height
    persons = associate([front], [front_face, behind_face], 800, 700)
    assert [(p.head_box, p.body_source) for p in persons] == [
        (front_face.box, "person"),
        (behind_face.box, "face"),
    ]
    close_up = ScoredBox(Box(120, 380, 460, 690), 0.99)  # a selfie: half the box's height, centre at 0.82
    (person,) = associate([front], [close_up], 800, 700)
    assert person.head_box == close_up.box and person.body_source == "person"
