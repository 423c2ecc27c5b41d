"""Sources decode real media, keep timestamps, and fail with one clear line on bad input."""

from __future__ import annotations

import itertools
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.sources import open_source
from streamer.sources.container import file_source, reorder_timestamps
from streamer.sources.demo import DemoSource
from tests.conftest import media_file


def _all_frames(source):
    return list(source.frames(threading.Event()))


def test_vtest_decodes_341_frames_not_the_header_682(shared_media: Path) -> None:
    source = open_source(str(media_file(shared_media, "pedestrians_vtest.avi")), SourceConfig())
    assert source.info.frame_count_hint == 682  # the header lies
    frames = _all_frames(source)
    source.close()
    assert len(frames) == 341
    assert [f.index for f in frames] == list(range(341))
    pts = [f.pts_s for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), "timestamps must increase"
    assert frames[0].image.shape == (720, 1280, 3) and frames[0].image.dtype == np.uint8
    assert frames[-1].is_last and not any(f.is_last for f in frames[:-1])


def test_hevc_in_mov_decodes_with_container_timestamps(shared_media: Path) -> None:
    import av

    path = media_file(shared_media, "cartoon_then_face_hevc.mov")
    with av.open(str(path)) as container:
        expected = sorted(float(f.time) for f in container.decode(video=0))
    frames = _all_frames(open_source(str(path), SourceConfig()))
    assert len(frames) == 169
    assert [f.pts_s for f in frames] == expected


def test_reorder_timestamps_sorts_permuted_pts_and_keeps_images_in_order() -> None:
    images = [np.full((2, 2, 3), i, np.uint8) for i in range(6)]
    pts = [0.08, 0.16, 0.04, 0.24, 0.20, 0.12]
    out = list(reorder_timestamps(iter(zip(images, pts, strict=True)), fps=25.0, window=3))
    assert [float(img[0, 0, 0]) for img, _ in out] == [0, 1, 2, 3, 4, 5]
    assert [t for _, t in out] == sorted(pts)


def test_reorder_timestamps_fills_missing_pts_from_the_frame_rate() -> None:
    images = [np.zeros((2, 2, 3), np.uint8)] * 3
    out = list(reorder_timestamps(iter(zip(images, [None, None, None], strict=True)), fps=10.0))
    assert [t for _, t in out] == pytest.approx([0.0, 0.1, 0.2])


def test_demo_is_the_astronaut_photo_panning() -> None:
    source = DemoSource(seconds=1.0, fps=10)
    frames = _all_frames(source)
    assert len(frames) == 10 and frames[-1].is_last
    assert frames[0].image.shape == (480, 640, 3)
    assert [f.pts_s for f in frames] == pytest.approx([i / 10 for i in range(10)])
    # It moves: consecutive frames differ, and it is a real photo (lots of distinct colours).
    assert np.abs(frames[5].image.astype(int) - frames[0].image.astype(int)).mean() > 5
    assert len(np.unique(frames[0].image.reshape(-1, 3), axis=0)) > 5000


def test_max_frames_stops_early(shared_media: Path) -> None:
    source = open_source(str(media_file(shared_media, "face_man_smiling_short.mp4")), SourceConfig(max_frames=7))
    assert len(_all_frames(source)) == 7


@pytest.fixture()
def bad_inputs(tmp_path: Path, shared_media: Path) -> dict[str, Path]:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    data = media_file(shared_media, "face_man_smiling_short.mp4").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    return {
        "missing": tmp_path / "nope.mp4",
        "text": text,
        "empty": empty,
        "truncated": truncated,
        "folder": folder,
    }


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        pytest.param("missing", "no such file", id="missing"),
        pytest.param("text", "not a readable video", id="text-named-mp4"),
        pytest.param("empty", "not a readable video", id="empty"),
        pytest.param("truncated", "truncated", id="truncated"),
        pytest.param("folder", "is a folder", id="folder"),
    ],
)
def test_bad_files_raise_one_line_source_errors(bad_inputs: dict[str, Path], kind: str, message: str) -> None:
    path = bad_inputs[kind]
    with pytest.raises(SourceError) as info:
        source = open_source(str(path), SourceConfig())
        _all_frames(source)
    text = str(info.value)
    assert "\n" not in text
    assert message in text or "no decodable" in text
    assert str(path.name) in text


def test_truncated_copy_of_a_real_video_fails_or_keeps_its_decodable_prefix(shared_media: Path, tmp_path: Path) -> None:
    """A file cut after its index (moov first) decodes what is there, never more."""
    original = media_file(shared_media, "person_signing_asl_again.mkv")
    cut = tmp_path / "cut.mkv"
    data = original.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    try:
        frames = _all_frames(file_source(cut, SourceConfig()))
    except SourceError as exc:
        assert "cut.mkv" in str(exc)
    else:
        assert 0 < len(frames) < 77


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("ftp://user:secret@example.com/x.mp4", "unsupported source scheme", id="ftp-scheme"),
        pytest.param("/dev/video99", "does not exist", id="no-camera"),
    ],
)
def test_unusable_specs(spec: str, message: str) -> None:
    with pytest.raises(SourceError) as info:
        open_source(spec, SourceConfig())
    assert message in str(info.value)
    assert "secret" not in str(info.value)


def test_copy_of_real_video_with_odd_name_opens(shared_media: Path, tmp_path: Path) -> None:
    odd = tmp_path / "my clip (1).MP4"
    shutil.copy(media_file(shared_media, "face_woman_head_pose.mp4"), odd)
    source = open_source(str(odd), SourceConfig())
    assert source.info.stem == "my clip (1)"
    assert len(_all_frames(source)) == 23
