"""An HTTP response's body copied out whole, or an error saying it was cut short.

`urllib` reports a connection closed early only sometimes: `read()` with no
size raises `http.client.IncompleteRead` (not an OSError, so a handler for
network errors let it through as a traceback), while `read(n)`, the way a
large file is streamed, returns what came and then `b""`, the end of a whole
body. A 3 GB archive cut at 1 GB was then unpacked as if it were all there.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import BinaryIO

CHUNK = 1 << 20


class CutShort(OSError):
    """The connection ended before the body the server announced had arrived (a network error, like others)."""


def _mb(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count} bytes"


def copy_body(response: http.client.HTTPResponse, out: BinaryIO, seen: Callable[[bytes], object] | None = None) -> int:
    """Write the body to `out` (each block also to `seen`, say a hash's update); the bytes written.

    CutShort when fewer bytes came than the Content-Length header said, or the
    chunked encoding stopped mid-way.
    """
    written = 0
    try:
        while block := response.read(CHUNK):
            if seen is not None:
                seen(block)
            out.write(block)
            written += len(block)
    except http.client.HTTPException as exc:  # IncompleteRead, a damaged chunk header
        raise CutShort(f"the connection ended after {_mb(written)} ({type(exc).__name__})") from None
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and written < int(announced):
        raise CutShort(f"the connection ended after {_mb(written)} of {_mb(int(announced))}")
    return written
