"""Damaged, cut-short, rotated and tiny videos, made by the tests from the shared media."""

from __future__ import annotations

import random
from pathlib import Path

import cv2

import av
import numpy as np


def remux(
    src: Path, out: Path, fmt: str | None = None, options: dict[str, str] | None = None, rotation: float = 0.0
) -> Path:
    """Copy the video packets into a new container (no re-encode), optionally with a display rotation."""
    with av.open(str(src)) as reader, av.open(str(out), "w", format=fmt, options=options or {}) as writer:
        stream = writer.add_stream_from_template(reader.streams.video[0])
        if rotation:
            stream.set_display_rotation(rotation)
        for packet in reader.demux(reader.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            writer.mux(packet)
    return out


def corrupt_middle(src: Path, out: Path, length: int = 20000, seed: int = 1) -> Path:
    """Overwrite `length` bytes in the middle of the file with random bytes."""
    data = bytearray(src.read_bytes())
    rng = random.Random(seed)  # noqa: S311 - reproducible damage, not security
    start = len(data) // 2
    for i in range(start, min(start + length, len(data))):
        data[i] = rng.randrange(256)
    out.write_bytes(bytes(data))
    return out


def cut_short(src: Path, out: Path, keep: float = 0.6) -> Path:
    """An MP4 whose index is up front (faststart) with the tail of its data cut off: it opens and partly decodes."""
    whole = remux(src, out.with_name(out.stem + "_whole.mp4"), "mp4", {"movflags": "faststart"})
    data = whole.read_bytes()
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def encode(frames: list[np.ndarray], out: Path, fps: int = 25, rotation: float = 0.0) -> Path:
    """BGR frames as H.264 MP4 (sizes padded to even), optionally with a display rotation (phone style)."""
    with av.open(str(out), "w") as writer:
        stream = writer.add_stream("libx264", rate=fps)
        h, w = frames[0].shape[:2]
        stream.width, stream.height = w + w % 2, h + h % 2
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for image in frames:
            image = cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_CONSTANT)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")):
                writer.mux(packet)
        for packet in stream.encode():
            writer.mux(packet)
    return out


def phone_portrait(src: Path, out: Path, frames: int = 12) -> Path:
    """A portrait clip stored as a phone stores it: landscape pixels plus a display matrix that turns them upright."""
    with av.open(str(src)) as reader:
        upright = [f.to_ndarray(format="bgr24") for _, f in zip(range(frames), reader.decode(video=0), strict=False)]
    sideways = [np.ascontiguousarray(np.rot90(image, k=1)) for image in upright]  # stored turned 90 degrees left
    return encode(sideways, out, rotation=-90.0)  # players turn it 90 degrees clockwise to show it upright
