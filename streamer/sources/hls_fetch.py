"""HLS read through FFmpeg's own protocols, with a ceiling on the playlists a server may send.

FFmpeg's HLS demuxer reads a whole playlist and keeps a record per segment, about 8 bytes of memory for each
byte of playlist. Nothing bounds a playlist's length: a server that streams one without end grew our process
by 0.9 GB within the 5 s open timeout over loopback (`MAX_ALLOC_BYTES` bounds one allocation, and these are
many small ones). So HLS is opened with our own `io_open`: every fetch it makes (the playlists, each variant's,
the segments, AES keys) goes through it. Each fetch is still FFmpeg's: `avio_open2` on the same protocols,
with their redirects, TLS, credentials and byte ranges, reached through ctypes as `ffmpeg_limits` reaches
`av_max_alloc`. What is ours is the counting: a fetch that starts as a playlist (`#EXTM3U`) stops at
`MAX_PLAYLIST_BYTES`, the playlists held at once at `MAX_PLAYLISTS_BYTES`, a playlist must arrive within the
open timeout, and only web protocols are opened (a playlist naming `file:` segments is refused). The open
runs in a thread of its own (`Aside`), so that Ctrl+C never lands inside one of these Python callbacks.

Any other http(s) URL is opened by FFmpeg directly, with every demuxer but HLS allowed: one that turns out to
serve a playlist fails at once, is recognised by its first bytes, and is opened again here.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

# OpenCV before PyAV, in every module that loads PyAV (the other order makes cv2.imshow hang).
import cv2  # noqa: F401

import av

from streamer.redact import mask_url
from streamer.sources.aside import Aside, cancel_event
from streamer.sources.ffmpeg_limits import ffmpeg_libraries

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: The most one playlist may hold: a two-hour film cut in 2 s segments with long signed URLs is under 1 MB.
MAX_PLAYLIST_BYTES = 4 * 2**20
#: The most the latest copies of every playlist of one stream (a master and its variants) may hold together.
MAX_PLAYLISTS_BYTES = 16 * 2**20
#: What an HLS stream may fetch through: the web, TLS, decryption of AES-128 segments, inline `data:` URLs.
ALLOWED_PROTOCOLS = "http,https,tls,tcp,crypto,httpproxy,data"
PLAYLIST_MAGIC = b"#EXTM3U"

_AVIO_FLAG_READ = 1
_AVIO_FLAG_WRITE = 2
_AV_OPT_SEARCH_CHILDREN = 1
_AVERROR_EOF = -0x20464F45  # -MKTAG('E', 'O', 'F', ' ')
_AVERROR_EXIT = -0x54495845  # -MKTAG('E', 'X', 'I', 'T')


class _Ffmpeg:
    """The few libavformat/libavutil calls a fetch needs, typed."""

    def __init__(self) -> None:
        libraries = ffmpeg_libraries()

        def symbol(name: str, restype: Any, *argtypes: Any) -> Any:
            for library in libraries:
                function = getattr(library, name, None)
                if function is not None:
                    function.restype, function.argtypes = restype, list(argtypes)
                    return function
            raise OSError(f"{name} not found in PyAV's FFmpeg")

        p = ctypes.c_void_p
        self.avio_open2 = symbol("avio_open2", ctypes.c_int, ctypes.POINTER(p), ctypes.c_char_p, ctypes.c_int, p,
                                 ctypes.POINTER(p))  # fmt: skip
        self.avio_read_partial = symbol("avio_read_partial", ctypes.c_int, p, ctypes.c_void_p, ctypes.c_int)
        self.avio_closep = symbol("avio_closep", ctypes.c_int, ctypes.POINTER(p))
        self.av_dict_set = symbol("av_dict_set", ctypes.c_int, ctypes.POINTER(p), ctypes.c_char_p, ctypes.c_char_p,
                                  ctypes.c_int)  # fmt: skip
        self.av_dict_free = symbol("av_dict_free", None, ctypes.POINTER(p))
        self.av_opt_get = symbol("av_opt_get", ctypes.c_int, p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(p))
        self.av_free = symbol("av_free", None, p)


_ffmpeg: _Ffmpeg | None = None


def _calls() -> _Ffmpeg | None:
    """FFmpeg's calls, or None where PyAV's FFmpeg can't be reached (HLS then opens as FFmpeg alone would)."""
    global _ffmpeg
    if _ffmpeg is None:
        try:
            _ffmpeg = _Ffmpeg()
        except OSError as exc:
            logger.debug("HLS fetches are not bounded here (%s)", exc)
            return None
    return _ffmpeg


class Refused(OSError):
    """What a server sent is past a limit: a playlist too large, or a segment that is not on the web."""


_INTERRUPT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class _InterruptCallback(ctypes.Structure):
    _fields_ = [("callback", _INTERRUPT), ("opaque", ctypes.c_void_p)]


class _Deadline:
    """When FFmpeg should give up the call it is in: FFmpeg asks `callback` while it waits (for a connection,
    for bytes). PyAV's own deadline covers FFmpeg's fetches, not ours."""

    def __init__(self, cancelled: threading.Event) -> None:
        self.at = math.inf
        self._cancelled = cancelled
        self.callback = _InterruptCallback(_INTERRUPT(self._passed), None)

    def _passed(self, _opaque: int | None) -> int:
        return int(self._cancelled.is_set() or time.monotonic() > self.at)


class Fetch:
    """One fetch FFmpeg asked for (a file-like object for PyAV): its bytes, counted, each call to FFmpeg under a
    deadline. Without a context it is empty: a fetch that failed, which FFmpeg takes for an empty segment and
    skips, as it skips one it could not open (an exception would end the stream: PyAV raises it at its next
    call)."""

    def __init__(self, fetcher: HlsFetcher, url: str) -> None:
        self._fetcher, self._url = fetcher, url
        self.context = ctypes.c_void_p()
        # Not bound to the fetch, which is freed (its connection closed) as soon as PyAV lets go of it.
        self._due = _Deadline(fetcher.cancelled)
        self._started = time.monotonic()
        self._first = b""  # the first bytes, to tell a playlist by
        self.playlist: bool | None = None
        self.size = 0

    def open(self, options: dict[str, str], timeout_s: float) -> int:
        """FFmpeg's open of the URL: 0, or FFmpeg's error code."""
        ffmpeg = self._fetcher.ffmpeg
        dictionary = ctypes.c_void_p()
        self._due.at = time.monotonic() + timeout_s
        try:
            for key, value in options.items():
                ffmpeg.av_dict_set(ctypes.byref(dictionary), key.encode(), str(value).encode(), 0)
            code = ffmpeg.avio_open2(ctypes.byref(self.context), self._url.encode(), _AVIO_FLAG_READ,
                                     ctypes.byref(self._due.callback), ctypes.byref(dictionary))  # fmt: skip
        finally:
            ffmpeg.av_dict_free(ctypes.byref(dictionary))
        return int(code)

    def read(self, size: int = 65536) -> bytes:
        if not self.context or self._fetcher.refused or self._fetcher.cancelled.is_set():
            # Past a refusal every fetch ends at once: the stream stops instead of playing on from what was cut
            # short, and no second exception reaches PyAV (each would print a traceback).
            return b""
        fetcher = self._fetcher
        self._due.at = time.monotonic() + fetcher.read_timeout_s
        if self.playlist:
            self._due.at = min(self._due.at, self._started + fetcher.playlist_due_s)
        buffer = ctypes.create_string_buffer(size)
        got = fetcher.ffmpeg.avio_read_partial(self.context, buffer, size)  # what has come, not a full buffer
        if got < 0 and got != _AVERROR_EOF:
            if self.playlist and time.monotonic() > self._started + fetcher.playlist_due_s:
                fetcher.refuse(f"a playlist still arriving after {fetcher.playlist_due_s:g} s")
            logger.debug("HLS fetch %s ended: %s", mask_url(self._url), _reason(got))
        if got <= 0:
            return b""
        data = buffer.raw[:got]
        if self.playlist is None:
            self._first += data[: len(PLAYLIST_MAGIC) - len(self._first)]
            if len(self._first) == len(PLAYLIST_MAGIC):
                self.playlist = self._first == PLAYLIST_MAGIC
        self.size += got
        if self.playlist:
            fetcher.count_playlist(self._url, self.size)
        return data

    def starts_as_a_playlist(self) -> bool:
        while self.playlist is None and self.read(len(PLAYLIST_MAGIC)):
            pass
        return bool(self.playlist)

    def close(self) -> None:
        if self.context:
            self._fetcher.ffmpeg.avio_closep(ctypes.byref(self.context))

    def __del__(self) -> None:
        # With a custom io_open FFmpeg never closes the first playlist's fetch: it goes with the container.
        with contextlib.suppress(Exception):  # at interpreter exit, what close needs may be gone already
            self.close()


def _reason(code: int) -> str:
    try:
        av.error.err_check(code)
    except av.error.FFmpegError as exc:
        return str(exc.strerror)
    return str(code)


class HlsFetcher:
    """PyAV's `io_open` for one HLS container: each fetch opened by FFmpeg, with our limits."""

    def __init__(self, ffmpeg: _Ffmpeg, open_timeout_s: float, read_timeout_s: float) -> None:
        self.ffmpeg = ffmpeg
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s
        # A playlist arrives whole within the open timeout, as FFmpeg's own open of it had to: a server sending a
        # byte a second would pass every read timeout.
        self.playlist_due_s = max(open_timeout_s, read_timeout_s)
        self._playlists: dict[str, int] = {}  # bytes of the latest copy of each playlist, by URL less its query
        self._cookies: str | None = None
        self._opened = 0
        self.refused: str | None = None
        # Ctrl+C while opening, or the open given up on by whoever waited for it: every fetch ends at once.
        self.cancelled = cancel_event()

    def __call__(self, url: str, flags: int, options: dict[str, str]) -> Fetch:
        if flags & _AVIO_FLAG_WRITE:
            raise PermissionError("HLS fetches are read only")
        first = self._opened == 0
        self._opened += 1
        fetch = Fetch(self, url)
        if self.refused or self.cancelled.is_set():
            return fetch
        scheme = url.split(":", 1)[0].lower().removeprefix("crypto+")
        if scheme not in ("http", "https", "crypto", "data"):
            self.refuse(f"a playlist names a {scheme}: URL; HLS is fetched over http(s) only")
        timeout_us = str(max(1, round(self.read_timeout_s * 1e6)))
        settings = {**options, "protocol_whitelist": ALLOWED_PROTOCOLS, "rw_timeout": timeout_us,
                    "timeout": timeout_us}  # fmt: skip
        if self._cookies:
            settings["cookies"] = self._cookies
        code = fetch.open(settings, self.open_timeout_s)
        if code < 0:
            if first and code == _AVERROR_EXIT:
                raise TimeoutError(f"no answer within {self.open_timeout_s:g} s")
            if first:
                av.error.err_check(code)  # the stream's own URL: what FFmpeg's open raises (HTTPNotFoundError...)
            logger.debug("HLS fetch %s failed: %s", mask_url(url), _reason(code))
            return fetch
        self._remember_cookies(fetch)
        return fetch

    def _remember_cookies(self, fetch: Fetch) -> None:
        # FFmpeg's HLS passes the cookies a playlist's server set on to its segments; it reads them from its
        # own http connection, which a custom io_open hides from it.
        value = ctypes.c_void_p()
        if self.ffmpeg.av_opt_get(fetch.context, b"cookies", _AV_OPT_SEARCH_CHILDREN, ctypes.byref(value)) >= 0:
            if value.value:
                self._cookies = ctypes.string_at(value.value).decode("utf-8", "replace") or self._cookies
            self.ffmpeg.av_free(value)

    def count_playlist(self, url: str, size: int) -> None:
        self._playlists[url.split("?", 1)[0]] = size
        if size > MAX_PLAYLIST_BYTES:
            self.refuse(f"a playlist over {MAX_PLAYLIST_BYTES >> 20} MB")
        if sum(self._playlists.values()) > MAX_PLAYLISTS_BYTES:
            self.refuse(f"playlists over {MAX_PLAYLISTS_BYTES >> 20} MB together")

    def refuse(self, reason: str) -> None:
        """Stop the stream: one exception, which PyAV raises from the call it is in or its next one."""
        self.refused = reason
        raise Refused(reason)


def _cancellable(call: Callable[[], T], fetcher: HlsFetcher, dispose: Callable[[T], object] | None = None) -> T:
    """`call()` in a thread of its own (`Aside`), the caller waiting. Our fetches are Python called from FFmpeg:
    in the main thread, Ctrl+C's handler would run inside one of them, where ctypes and PyAV print the
    KeyboardInterrupt and drop it. Here it reaches the caller's wait: the fetches are cancelled and FFmpeg's
    open ends within a moment (so does it when an `Aside` this runs in is abandoned)."""
    opening = Aside(call, "hls-open", dispose)
    try:
        return opening.result()
    except KeyboardInterrupt:
        fetcher.cancelled.set()
        opening.wait(5.0)
        raise


def _is_playlist_url(url: str) -> bool:
    return url.split("?", 1)[0].split("#", 1)[0].lower().endswith(".m3u8")


@functools.cache
def _no_hls() -> str:
    """Every demuxer FFmpeg has but HLS's, for `format_whitelist`."""
    return ",".join(sorted(name for name in av.formats_available if name != "hls"))


def serves_a_playlist(url: str, open_timeout_s: float, read_timeout_s: float) -> bool:
    """Whether the URL answers with an HLS playlist (its first bytes say so)."""
    ffmpeg = _calls()
    if ffmpeg is None:
        return False
    fetcher = HlsFetcher(ffmpeg, open_timeout_s, read_timeout_s)

    def peek() -> bool:
        try:
            fetch = fetcher(url, _AVIO_FLAG_READ, {})
        except OSError:
            return False
        try:
            return fetch.starts_as_a_playlist()
        except OSError:
            return False
        finally:
            fetch.close()

    return _cancellable(peek, fetcher)


def open_hls(
    url: str, open_timeout_s: float, read_timeout_s: float, options: dict[str, str] | None = None
) -> av.container.InputContainer:
    """An HLS stream opened with every fetch bounded."""
    timeout = (open_timeout_s, read_timeout_s)
    # A fetch of ours is not FFmpeg's http connection, which a persistent HLS would reuse for the next segment.
    settings = {**(options or {}), "http_persistent": "0"}
    ffmpeg = _calls()
    if ffmpeg is None:
        return av.open(url, format="hls", options=settings, timeout=timeout)
    fetcher = HlsFetcher(ffmpeg, open_timeout_s, read_timeout_s)
    return _cancellable(
        lambda: av.open(url, format="hls", options=settings, timeout=timeout, io_open=fetcher),
        fetcher,
        dispose=lambda container: container.close(),
    )


def open_web(
    url: str, open_timeout_s: float, read_timeout_s: float, options: dict[str, str] | None = None, hls: bool = False
) -> av.container.InputContainer:
    """An http(s) URL opened: by FFmpeg alone unless it serves HLS (`hls`: it did last time), which `open_hls`
    opens."""
    if hls or _is_playlist_url(url):
        return open_hls(url, open_timeout_s, read_timeout_s, options)
    try:
        return av.open(url, options=options or {}, container_options={"format_whitelist": _no_hls()},
                       timeout=(open_timeout_s, read_timeout_s))  # fmt: skip
    except av.error.ArgumentError:
        # FFmpeg found a playlist (by its MIME type or first bytes) and refused it, before reading it whole.
        if not serves_a_playlist(url, open_timeout_s, read_timeout_s):
            raise
    return open_hls(url, open_timeout_s, read_timeout_s, options)
