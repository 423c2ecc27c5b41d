"""A ceiling on what PyAV's FFmpeg allocates at once, so a hostile stream cannot grow one packet without end.

FFmpeg reads a packet of no declared length (an MJPEG camera's part without Content-Length) or of a declared
one (a part that claims terabytes) by growing it as the bytes arrive, up to its own ceiling of 2 GB per
allocation. A camera that never ends its part grew our process to 1.7 GB within the 5 s read timeout over
loopback, per stream. FFmpeg's `av_max_alloc` lowers that ceiling for every allocation of its library: the
packet fails with ENOMEM at `MAX_ALLOC_BYTES` and the stream reconnects. The largest legitimate allocations stay
well under it: an 8K UHD frame converted to BGR is 100 MB, a decoded 8K plane at most 66 MB (4:4:4, 16 bit).

The setting is PyAV's own FFmpeg, process-wide (OpenCV's bundled FFmpeg is a separate library, untouched). It is
reached through PyAV's extension module: the dynamic linker resolves the symbol in the libavutil that module
was linked against, whatever its file is named.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import sys
from pathlib import Path

# OpenCV before PyAV, in every module that loads PyAV (the other order makes cv2.imshow hang).
import cv2  # noqa: F401

import av

logger = logging.getLogger(__name__)

#: The most FFmpeg allocates at once: one packet, one decoded plane, one converted frame.
MAX_ALLOC_BYTES = 256 * 2**20


def ffmpeg_libraries() -> list[ctypes.CDLL]:
    """PyAV's FFmpeg, to look its functions up in (libavutil's and libavformat's)."""
    if sys.platform == "win32":
        # GetProcAddress looks in one DLL only: delvewheel puts PyAV's FFmpeg beside the package.
        folder = Path(av.__file__).parent.parent / "av.libs"
        found = [sorted(folder.glob(f"{name}-*.dll")) for name in ("avutil", "avformat")]
        if not all(found):
            raise OSError("avutil-*.dll or avformat-*.dll not found beside PyAV")
        return [ctypes.CDLL(str(dlls[0])) for dlls in found]
    # dlsym on a library's handle searches the libraries it was linked against, in load order.
    core = importlib.import_module("av._core")  # an extension module of PyAV linked against its FFmpeg
    return [ctypes.CDLL(str(core.__file__))]


def limit_allocations(limit: int = MAX_ALLOC_BYTES) -> bool:
    """Set the ceiling; False (FFmpeg's 2 GB stands) where PyAV's libavutil can't be reached."""
    try:
        set_max = ffmpeg_libraries()[0].av_max_alloc
    except (OSError, AttributeError, ImportError) as exc:
        logger.debug("FFmpeg's allocation ceiling not set (%s)", exc)
        return False
    set_max.argtypes = [ctypes.c_size_t]
    set_max.restype = None
    set_max(limit)
    return True
