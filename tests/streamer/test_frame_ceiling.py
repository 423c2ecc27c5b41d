"""Frames and photos over `MAX_FRAME_PIXELS` are analysed scaled down, a decompression bomb is one line, and
no packet a stream sends may grow past `MAX_ALLOC_BYTES`."""

from __future__ import annotations

import itertools
import json
import logging
import struct
import subprocess
import sys
import threading
from pathlib import Path

import cv2

import av
import numpy as np
import pytest

from streamer.errors import SourceError
from streamer.sources import open_source, pixels
from streamer.sources.container import file_source
from streamer.sources.ffmpeg_limits import MAX_ALLOC_BYTES
from streamer.sources.live import StreamSource
from streamer.sources.still import ImageSource
from tests.conftest import media_file
from tests.streamer.test_live import FAST
from tests.support.png_bomb import png_bomb

CLIP = "face_man_smiling_short.mp4"  # 640x360


def _first_frames(path: Path, count: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in itertools.islice(container.decode(video=0), count)]


def _close_to(image: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of the two, both brought to the reference's size."""
    size = (reference.shape[1], reference.shape[0])
    return float(np.abs(cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(int) - reference).mean())


def test_fitted_keeps_what_fits_and_scales_the_rest_to_even_sides_of_the_same_shape() -> None:
    assert pixels.fitted(7680, 4320) == (7680, 4320)
    assert pixels.fitted(0, 0) == (0, 0)
    width, height = pixels.fitted(16384, 16384)
    assert width == height and width % 2 == 0 and width * height <= pixels.MAX_FRAME_PIXELS
    assert width * height > 0.99 * pixels.MAX_FRAME_PIXELS
    width, height = pixels.fitted(15361, 4321)
    assert width % 2 == 0 and height % 2 == 0 and abs(width / height - 15361 / 4321) < 0.01


def test_a_video_over_the_ceiling_is_decoded_to_it(
    shared_media: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two real frames upscaled to 7936x4464 (35.4 M pixels, over 8K UHD's 33.2) and encoded as H.264: what a
    # camera declaring huge frames sends. Each frame comes out at the ceiling, never at full size.
    originals = _first_frames(media_file(shared_media, CLIP), 2)
    big = tmp_path / "big.mp4"
    with av.open(str(big), "w") as writer:
        stream = writer.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 7936, 4464, "yuv420p"
        for image in originals:
            frame = av.VideoFrame.from_ndarray(cv2.resize(image, (7936, 4464)), format="bgr24")
            writer.mux(stream.encode(frame))
        writer.mux(stream.encode())
    caplog.set_level(logging.WARNING)
    source = file_source(big, FAST)
    expected = pixels.fitted(7936, 4464)
    assert (source.info.width, source.info.height) == expected
    images = [frame.image for frame in source.frames(threading.Event())]
    source.close()
    assert [image.shape[1::-1] for image in images] == [expected, expected]
    assert all(_close_to(image, original) < 4 for image, original in zip(images, originals, strict=True))
    assert [r.getMessage() for r in caplog.records if "M pixels" in r.getMessage()] == [
        f"{big}: frames of 7936x4464 are over 33.2 M pixels; analysed and written at {expected[0]}x{expected[1]}"
    ]


def test_a_live_stream_over_the_ceiling_is_probed_and_decoded_at_it(
    shared_media: Path, mjpeg_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pixels, "MAX_FRAME_PIXELS", 240 * 135)  # the camera's 480x270 is over it
    server = mjpeg_server("--file", str(media_file(shared_media, "face_woman_head_pose.mp4")))
    source = open_source(server.url(), FAST)
    assert isinstance(source, StreamSource)
    assert (source.info.width, source.info.height) == (240, 134)
    stop = threading.Event()
    frames = source.frames(stop)
    images = [next(frames).image for _ in range(3)]
    stop.set()
    source.close()
    assert {image.shape for image in images} == {(134, 240, 3)} and images[-1].std() > 10


@pytest.mark.parametrize("name", ["face_single_portrait.jpg", "expr_happy_man.png"])
def test_a_photo_over_the_ceiling_is_read_at_it(shared_media: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    path = media_file(shared_media, name)
    whole = cv2.imread(str(path))
    monkeypatch.setattr(pixels, "MAX_FRAME_PIXELS", whole.shape[0] * whole.shape[1] // 5)
    source = ImageSource(path)
    image = next(iter(source.frames(threading.Event()))).image
    assert (source.info.width, source.info.height) == image.shape[1::-1]
    assert image.shape[0] * image.shape[1] <= pixels.MAX_FRAME_PIXELS
    assert abs(image.shape[1] / image.shape[0] - whole.shape[1] / whole.shape[0]) < 0.02
    assert _close_to(image, cv2.resize(whole, image.shape[1::-1], interpolation=cv2.INTER_AREA)) < 6


def test_a_phone_sized_jpeg_is_decoded_reduced(shared_media: Path, tmp_path: Path) -> None:
    # 48 M pixels, as a phone's main camera takes: decoded at half size by libjpeg, never whole.
    portrait = cv2.imread(str(media_file(shared_media, "face_single_portrait.jpg")))
    path = tmp_path / "phone.jpg"
    cv2.imwrite(str(path), cv2.resize(portrait, (8000, 6000)))
    source = ImageSource(path)
    assert (source.info.width, source.info.height) == (4000, 3000)
    image = next(iter(source.frames(threading.Event()))).image
    assert _close_to(image, cv2.resize(portrait, (800, 600), interpolation=cv2.INTER_AREA)) < 4


def test_a_decompression_bomb_is_refused_in_one_line_before_it_is_decoded(tmp_path: Path) -> None:
    path = png_bomb(tmp_path / "bomb.png", 20000, 10000)
    with pytest.raises(SourceError) as caught:
        ImageSource(path)
    assert str(caught.value) == f"{path} is too large an image (over 179 M pixels)"


def test_a_jpeg_over_the_bomb_limit_is_still_read_reduced(shared_media: Path, tmp_path: Path) -> None:
    # A real photo whose header says 60000x60000 (3.6 G pixels, over Pillow's limit): libjpeg decodes it at 1/8
    # (the missing data as grey), then it is shrunk to the ceiling. Read whole it would be 10.8 GB.
    data = bytearray(media_file(shared_media, "face_single_portrait.jpg").read_bytes())
    at = 2
    while data[at + 1] not in (0xC0, 0xC1, 0xC2):  # walk the markers to the frame header
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    data[at + 5 : at + 9] = struct.pack(">HH", 60000, 60000)
    path = tmp_path / "declared_huge.jpg"
    path.write_bytes(bytes(data))
    source = ImageSource(path)
    assert (source.info.width, source.info.height) == pixels.fitted(7500, 7500)


# In its own process, so that its peak memory is the stream's alone.
ENDLESS_PART_READER = """
import json, logging, resource, sys, threading
from streamer.config import SourceConfig
from streamer.sources import open_source
logging.basicConfig(level=logging.WARNING, format="%(message)s")
config = SourceConfig(open_timeout_s=3.0, read_timeout_s=3.0, backoff_initial_s=0.2, backoff_max_s=0.2)
source = open_source(sys.argv[1], config)
before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
stop = threading.Event()
images = []
for frame in source.frames(stop):
    images.append(frame.image)
    if source.reconnects >= 2 or len(images) >= 40:
        break
source.close()
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"grew_mb": peak_mb - before_mb, "frames": len(images), "reconnects": source.reconnects,
                  "last_std": float(images[-1].std())}))
"""


def test_a_camera_whose_part_never_ends_is_reconnected_at_the_allocation_ceiling(
    shared_media: Path, mjpeg_server
) -> None:
    # A hostile camera: after 4 real frames, a part with no length and 700 MB of bytes without a boundary, then
    # silence. FFmpeg grew that one packet as the bytes came, to all 700 MB (1.7 GB before the read timeout
    # when they never stop); now it stops at MAX_ALLOC_BYTES and the stream reconnects.
    clip = str(media_file(shared_media, "face_woman_head_pose.mp4"))
    server = mjpeg_server("--file", clip, "--endless-after", "4", "--endless-mb", "700")
    done = subprocess.run(
        [sys.executable, "-c", ENDLESS_PART_READER, server.url()], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reconnects"] == 2 and result["frames"] >= 8 and result["last_std"] > 10
    assert result["grew_mb"] < 500, result
    assert f"over FFmpeg's {MAX_ALLOC_BYTES >> 20} MB limit" in done.stderr and "Traceback" not in done.stderr
