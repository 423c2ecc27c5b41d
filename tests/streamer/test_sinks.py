"""Sinks write playable H.264 with the input's timestamps, and JSONL that is readable mid-run."""

from __future__ import annotations

import json
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.config import SourceConfig
from streamer.errors import UserError
from streamer.outputs.base import ensure_writable_dir
from streamer.outputs.records import JsonlOutput
from streamer.outputs.video import Mp4Writer
from streamer.sources import open_source
from tests.conftest import media_file


def _decode(path: Path) -> tuple[list[float], list[np.ndarray], str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return (
            [float(f.time) for f in frames],
            [f.to_ndarray(format="bgr24") for f in frames],
            stream.codec_context.name,
        )


def test_video_sink_keeps_every_frame_and_timestamp(shared_media: Path, tmp_path: Path) -> None:
    source = open_source(str(media_file(shared_media, "face_woman_head_pose.mp4")), SourceConfig())
    out = tmp_path / "copy.mp4"
    written = []
    with Mp4Writer(out, source.info.time_base, source.info.fps) as sink:
        for frame in source.frames(threading.Event()):
            sink.write(frame.image, frame.pts_s)
            written.append(frame)
    times, images, codec = _decode(out)
    assert codec == "h264"
    assert times == [f.pts_s for f in written]
    # Lossy but faithful: the decoded picture is close to what was written.
    assert np.abs(images[10].astype(int) - written[10].image.astype(int)).mean() < 4.0


def test_odd_frame_sizes_are_padded_not_rejected(tmp_path: Path, shared_media: Path) -> None:
    import cv2

    image = cv2.imread(str(media_file(shared_media, "face_single_portrait.jpg")))[:301, :451]
    out = tmp_path / "odd.mp4"
    with Mp4Writer(out, Fraction(1, 25), 25.0) as sink:
        for i in range(5):
            sink.write(image, i / 25)
    times, images, _ = _decode(out)
    assert len(times) == 5
    assert images[0].shape == (302, 452, 3)
    assert images[0][301].mean() < 8 and images[0][:, 451].mean() < 8  # the padding is black


def test_a_sink_closed_early_leaves_a_playable_file(tmp_path: Path, shared_media: Path) -> None:
    source = open_source(str(media_file(shared_media, "face_man_smiling_short.mp4")), SourceConfig())
    out = tmp_path / "partial.mp4"
    sink = Mp4Writer(out, source.info.time_base, source.info.fps)
    for frame in source.frames(threading.Event()):
        sink.write(frame.image, frame.pts_s)
        if frame.index == 29:
            break
    sink.close()  # what the CLI does on Ctrl+C
    times, _, _ = _decode(out)
    assert len(times) == 30


def test_non_increasing_timestamps_are_nudged_forward(tmp_path: Path) -> None:
    out = tmp_path / "dup.mp4"
    image = np.zeros((64, 64, 3), np.uint8)
    with Mp4Writer(out, Fraction(1, 100), 25.0) as sink:
        for t in (0.0, 0.04, 0.04, 0.08):
            sink.write(image, t)
    times, _, _ = _decode(out)
    assert len(times) == 4 and times == sorted(set(times))


def test_jsonl_lines_are_readable_before_close(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    sink = JsonlOutput(path)
    sink.write_line({"frame": 0, "persons": []})
    sink.write_line({"frame": 1, "persons": [{"track_id": 1}]})
    lines = path.read_text().splitlines()  # still open
    assert [json.loads(line)["frame"] for line in lines] == [0, 1]
    sink.close()


def test_output_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create output folder"):
        ensure_writable_dir(blocker / "sub")
    with pytest.raises(UserError, match="not a folder"):
        ensure_writable_dir(blocker)
