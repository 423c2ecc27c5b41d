"""Damaged, cut-short, rotated and tiny inputs: every good frame is kept, nothing crashes."""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path

import cv2

import av
import numpy as np
import pytest

from streamer.config import DetectorConfig, SourceConfig
from streamer.detectors import build_detector
from streamer.sources import open_source
from streamer.sources.container import reorder_timestamps
from tests.conftest import media_file
from tests.support.damaged import corrupt_middle, cut_short, encode, phone_portrait, remux

CLIP = "face_expressive_liveportrait_d12.mp4"  # 183 frames, 512x512


def _all_frames(path: Path):
    source = open_source(str(path), SourceConfig())
    frames = list(source.frames(threading.Event()))
    source.close()
    return source, frames


def test_corrupt_bytes_mid_file_skip_the_bad_packets_and_keep_every_good_frame(
    shared_media: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = corrupt_middle(media_file(shared_media, CLIP), tmp_path / "damaged.mp4")
    with caplog.at_level(logging.WARNING, logger="streamer.sources"):
        _, frames = _all_frames(damaged)
    assert 160 <= len(frames) < 183, "only the damaged stretch is lost; decoding goes on to the end"
    assert frames[-1].is_last and [f.index for f in frames] == list(range(len(frames)))
    assert all(b.pts_s > a.pts_s for a, b in itertools.pairwise(frames))
    skipping = [r.message for r in caplog.records if "undecodable" in r.message]
    assert len(skipping) == 2, "warned once when it starts, and once with the count at the end"
    assert f"kept all {len(frames)} good frames" in skipping[-1]


def test_a_file_cut_short_warns_with_decoded_and_header_counts(
    shared_media: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cut = cut_short(media_file(shared_media, CLIP), tmp_path / "cut.mp4")
    with caplog.at_level(logging.WARNING, logger="streamer.sources"):
        _, frames = _all_frames(cut)
    assert 60 <= len(frames) < 183 and frames[-1].is_last
    early = [r.message for r in caplog.records if "ends early" in r.message]
    assert len(early) == 1 and f"decoded {len(frames)} frames" in early[0] and "header lists 183 frames" in early[0]


def test_a_whole_file_gives_no_damage_warning(shared_media: Path, caplog: pytest.LogCaptureFixture) -> None:
    """pedestrians_vtest.avi's header claims 682 frames and it decodes 341: that is not damage."""
    with caplog.at_level(logging.WARNING, logger="streamer.sources"):
        _, frames = _all_frames(media_file(shared_media, "pedestrians_vtest.avi"))
    assert len(frames) == 341 and not caplog.records


def test_frames_held_for_reordering_survive_a_decoding_error() -> None:
    def decoded():
        for i in range(10):
            yield np.full((2, 2, 3), i, np.uint8), i / 25
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    got = []
    with pytest.raises(av.error.InvalidDataError):
        for image, _ in reorder_timestamps(decoded(), 25.0, window=16):
            got.append(int(image[0, 0, 0]))
    assert got == list(range(10)), "the 10 frames still in the reorder window are delivered before the error"


@pytest.mark.parametrize("rotation", [-90.0, 90.0, 180.0], ids=["phone-portrait", "ccw", "upside-down"])
def test_rotation_metadata_is_applied_like_a_player(shared_media: Path, tmp_path: Path, rotation: float) -> None:
    src = media_file(shared_media, "face_man_smiling_short.mp4")  # 640x360
    rotated = remux(src, tmp_path / "rotated.mp4", rotation=rotation)
    source, frames = _all_frames(rotated)
    player = tmp_path / "player.png"  # what FFmpeg's own autorotation shows, through PyAV's filter graph
    with av.open(str(rotated)) as container:
        first = next(container.decode(video=0))
        turns = {-90.0: "clock", 90.0: "cclock"}
        graph = av.filter.Graph()
        chain = [graph.add_buffer(template=container.streams.video[0])]
        if rotation == 180.0:
            chain += [graph.add("hflip"), graph.add("vflip")]
        else:
            chain.append(graph.add("transpose", turns[rotation]))
        chain.append(graph.add("buffersink"))
        graph.link_nodes(*chain).configure()
        graph.push(first)
        expected = graph.pull().to_ndarray(format="bgr24")
    cv2.imwrite(str(player), expected)
    assert len(frames) == 72
    assert frames[0].image.shape == expected.shape
    np.testing.assert_array_equal(frames[0].image, expected)
    if rotation != 180.0:
        assert (source.info.width, source.info.height) == (360, 640)


def test_a_phone_portrait_clip_is_analysed_upright(shared_media: Path, tmp_path: Path) -> None:
    phone = phone_portrait(media_file(shared_media, "person_in_context_liveportrait_s20.mp4"), tmp_path / "phone.mp4")
    _, frames = _all_frames(phone)
    detector = build_detector(DetectorConfig(face="mtcnn", person="none", allow_download=False))
    assert frames[0].image.shape == (908, 480, 3)
    assert any(d.head_box is not None for d in detector.detect(frames[0].image)), "the face is found upright"
    sideways = np.ascontiguousarray(np.rot90(frames[0].image, k=1))  # what the analysis saw before
    assert sideways.shape == (480, 908, 3)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (16, 16), (23, 40), (40, 23)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_tiny_frames_have_no_persons_and_no_crash(shared_media: Path, tmp_path: Path, size: tuple[int, int]) -> None:
    photo = cv2.imread(str(media_file(shared_media, "face_single_portrait.jpg")))
    tiny = encode([cv2.resize(photo, size, interpolation=cv2.INTER_AREA)] * 3, tmp_path / "tiny.mp4")
    _, frames = _all_frames(tiny)
    detector = build_detector(DetectorConfig(face="mtcnn", person="hog", allow_download=False))
    assert len(frames) == 3
    assert all(detector.detect(f.image) == [] for f in frames)
