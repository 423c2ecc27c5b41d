"""Frame sources: video files, the demo clip, still images, local cameras and network streams.

`open_source(spec, config)` turns what the user typed into a `Source`; every
source yields `Frame`s from `frames(stop)`.

- Finite sources (files, the demo, http(s) links to video files) deliver
  every frame in order with the container's timestamps (`container`, `demo`).
  An http(s) URL that turns out to serve a stream (an MJPEG camera, HLS,
  MPEG-TS of no length) is live.
- An image is a one-frame source (`still`).
- Live sources (cameras, RTSP/RTMP/UDP/SRT, HLS playlists, http cameras) run in real time
  and reconnect when they break (`live`).
- `entries` turns `--source` (globs and folders too) and `--sources FILE`
  into the list of sources a run opens, each with its own settings.

Errors a user can fix become `SourceError`: one line, credentials masked.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.redact import mask_url, printable, url_name
from streamer.sources.aside import Aside
from streamer.sources.base import IMAGE_SUFFIXES, Source, SourceInfo, SourceKind
from streamer.sources.container import ContainerSource, file_source, open_container, serves_a_stream
from streamer.sources.demo import DemoSource
from streamer.sources.ffmpeg_limits import limit_allocations
from streamer.sources.live import CameraSource, StreamSource
from streamer.sources.still import ImageSource

logger = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "srt")
NETWORK_SCHEMES = (*LIVE_SCHEMES, "http", "https")

# Every source reads through PyAV's FFmpeg: no single allocation of it may grow past the ceiling (a hostile
# stream's endless packet), in this process and in every worker that imports the sources.
limit_allocations()

__all__ = [
    "IMAGE_SUFFIXES",
    "Source",
    "SourceInfo",
    "SourceKind",
    "close_source",
    "is_image_path",
    "open_source",
    "opened_here",
    "opens_in_calling_thread",
    "when_slow",
]


def is_image_path(spec: str) -> bool:
    """Whether the spec names a still image (a one-frame source)."""
    return "://" not in spec and Path(spec).suffix.lower() in IMAGE_SUFFIXES


def _url_is_live(url: str, config: SourceConfig) -> bool:
    if config.live != "auto":
        return config.live == "yes"
    scheme = url.split("://", 1)[0].lower()
    path = url.split("?", 1)[0].lower()
    return scheme in LIVE_SCHEMES or path.endswith(".m3u8")


def opens_in_calling_thread(spec: str) -> bool:
    """Whether `open_source(spec)` belongs in the calling thread: `demo` (nothing to wait for) and cameras
    (OpenCV on macOS asks for camera access from the main thread only). Files and URLs may block (a network
    that does not answer, a FIFO with no writer) and can open in a thread of their own."""
    return spec == "demo" or spec.isdigit() or spec.startswith("/dev/video")


def open_source(spec: str, config: SourceConfig) -> Source:
    """Turn a `--source` value into a source, failing with one clear line.

    Accepts `demo`, a camera index (`0`) or device (`/dev/video0`), a network
    URL (`rtsp://`, `http(s)://`, ...) or a video file path. Files and URLs
    open in a thread of their own, this one waiting (`aside.py`): Ctrl+C
    while FFmpeg's open blocks reaches the caller at once.
    """
    if opens_in_calling_thread(spec):
        return opened_here(spec, config)
    opening = Aside(functools.partial(opened_here, spec, config), "open-source", close_source)
    return opening.result(when_slow(spec))


def when_slow(spec: str) -> Callable[[], None] | None:
    """What to say when opening `spec` takes long and has no timeout of its own: a FIFO waits for a writer,
    and then for data, for as long as it takes (a network source gives up at `source.open_timeout_s`)."""
    if "://" in spec:
        return None
    path = Path(os.path.expanduser(spec))
    try:
        fifo = stat.S_ISFIFO(path.stat().st_mode)
    except (OSError, ValueError):
        return None  # missing or unreadable: the open says so
    if not fifo:
        return None
    return lambda: logger.info("%s is a FIFO: waiting for its writer's data (Ctrl+C stops)", printable(str(path)))


def close_source(source: Source) -> None:
    source.close()


def opened_here(spec: str, config: SourceConfig) -> Source:
    """`open_source` in the calling thread, however long the open blocks (for callers that wait aside)."""
    if spec == "demo":
        return DemoSource(config.demo_seconds, config.demo_fps, config.max_frames)
    if spec.isdigit():
        return CameraSource(int(spec), config)
    if spec.startswith("/dev/video"):
        return CameraSource(spec, config)
    if is_image_path(spec):
        return ImageSource(Path(os.path.expanduser(spec)))
    if "://" not in spec:
        return file_source(Path(os.path.expanduser(spec)), config)
    scheme = spec.split("://", 1)[0].lower()
    if scheme == "file":
        return file_source(Path(spec.split("://", 1)[1]), config)
    if scheme not in NETWORK_SCHEMES:
        raise SourceError(
            f"unsupported source scheme '{scheme}://' in {mask_url(spec)} "
            f"(use a file, a camera index, demo, or one of: {', '.join(NETWORK_SCHEMES)})"
        )
    if _url_is_live(spec, config):
        return StreamSource(spec, config)
    name = mask_url(spec)
    stem = re.sub(r"[^A-Za-z0-9]+", "_", Path(url_name(spec)).stem).strip("_") or "stream"
    container = open_container(spec, name, config, is_url=True)
    if config.live == "auto" and serves_a_stream(container):
        # What the URL serves decides, before a frame is decoded (a stream joined between keyframes has none
        # yet): an http camera (MJPEG) is live, reconnects and keeps the newest frame.
        container.close()
        return StreamSource(spec, config)
    return ContainerSource(spec, name, stem, config, is_url=True, container=container)
