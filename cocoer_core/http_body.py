"""Downloads whole or not at all: an HTTP response's body copied out whole, or an error saying it was cut short.

`urllib` reports a connection closed early only sometimes: `read()` with no
size raises `http.client.IncompleteRead` (not an OSError, so a handler for
network errors let it through as a traceback), while `read(n)`, the way a
large file is streamed, returns what came and then `b""`, the end of a whole
body. A 3 GB archive cut at 1 GB was then unpacked as if it were all there.
"""

from __future__ import annotations

import contextlib
import http.client
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from cocoer_core.whole_files import replaced_whole

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


@contextlib.contextmanager
def opened(url: str, timeout_s: float) -> Iterator[http.client.HTTPResponse]:
    """`url`'s response (http(s) only), closed when the block ends; OSError for whatever fails in reaching it or
    reading it (offline, a malformed URL: `ValueError`/`InvalidURL`, a garbled answer: one kind of error to
    catch). An http.client error raised in the block, say `IncompleteRead` from the caller's own `read()`, is
    turned into OSError too."""
    try:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise OSError(f"the URL must be http(s): {url[:60]!r}")
        response = urllib.request.urlopen(url, timeout=timeout_s)  # noqa: S310 - http(s) checked above
    except (ValueError, http.client.HTTPException) as exc:  # a malformed URL (a mirror's), a garbled answer
        raise OSError(f"{type(exc).__name__}: {str(exc)[:120]}") from None
    with response:
        try:
            yield response
        except http.client.HTTPException as exc:
            raise OSError(f"{type(exc).__name__}: {str(exc)[:120]}") from None


def fetch_into(url: str, out: BinaryIO, timeout_s: float, seen: Callable[[bytes], object] | None = None) -> int:
    """`url`'s body written to `out` (http(s) only), the bytes written; OSError when it can't be had whole
    (see `opened`; CutShort when the connection ended early)."""
    with opened(url, timeout_s) as response:
        return copy_body(response, out, seen)


def download_to(url: str, path: Path, timeout_s: float, seen: Callable[[bytes], object] | None = None) -> None:
    """`url`'s body as the file `path` (a temporary name: see `download_whole`); OSError as `fetch_into`."""
    with path.open("wb") as out:
        fetch_into(url, out, timeout_s, seen)


def download_whole(
    url: str,
    target: Path,
    timeout_s: float,
    seen: Callable[[bytes], object] | None = None,
    accept: Callable[[], None] | None = None,
) -> Path:
    """`url`'s body as `target`, whole or not at all: written beside it, moved into place once it has all come
    and `accept()` (a checksum's test, say) raised nothing; a failure leaves `target` as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with replaced_whole(target) as partial:
        download_to(url, partial, timeout_s, seen)
        if accept is not None:
            accept()
    return target
