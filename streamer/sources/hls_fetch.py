"""HLS read through FFmpeg's own protocols, with a ceiling on the playlists a server may send.

FFmpeg's HLS demuxer reads a whole playlist and keeps a record per segment, about 12 bytes of memory for each
byte of playlist. Nothing bounds a playlist's length: a server that streams one without end grew our process
by 0.9 GB within the 5 s open timeout over loopback (`MAX_ALLOC_BYTES` bounds one allocation, and these are
many small ones). So HLS is opened with our own `io_open`: every fetch it makes (the playlists, each variant's,
the segments, AES keys) goes through it. Each fetch is still FFmpeg's: `avio_open2` on the same protocols,
with their redirects, TLS, credentials and byte ranges, reached through ctypes as `ffmpeg_limits` reaches
`av_max_alloc`. What is ours is the counting: a fetch that starts as a playlist (`#EXTM3U`) stops at
`MAX_PLAYLIST_BYTES`, the playlists held at once at `MAX_PLAYLISTS_BYTES`, and only web protocols are opened
(a playlist naming `file:` segments is refused).

Any other http(s) URL is opened by FFmpeg directly, with every demuxer but HLS allowed: one that turns out to
serve a playlist fails at once, is recognised by its first bytes, and is opened again here.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

# OpenCV before PyAV, in every module that loads PyAV (the other order makes cv2.imshow hang).
import cv2  # noqa: F401

import av

from streamer.redact import mask_url
from streamer.sources.ffmpeg_limits import ffmpeg_libraries

logger = logging.getLogger(__name__)

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


class _Ffmpeg:
    """The few libavformat/libavutil calls a fetch needs, typed."""

    def __init__(self) -> None:
        def symbol(name: str, restype: Any, *argtypes: Any) -> Any:
            for library in ffmpeg_libraries():
                function = getattr(library, name, None)
                if function is not None:
                    function.restype, function.argtypes = restype, list(argtypes)
                    return function
            raise OSError(f"{name} not found in PyAV's FFmpeg")

        p = ctypes.c_void_p
        self.avio_open2 = symbol("avio_open2", ctypes.c_int, ctypes.POINTER(p), ctypes.c_char_p, ctypes.c_int, p,
                                 ctypes.POINTER(p))  # fmt: skip
        self.avio_read = symbol("avio_read", ctypes.c_int, p, ctypes.c_void_p, ctypes.c_int)
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


class Fetch:
    """One fetch FFmpeg asked for (a file-like object for PyAV): its bytes, counted. Without a context it is
    empty: a fetch that failed, which FFmpeg takes for an empty segment and skips, as it skips one it could not
    open (an exception would end the stream instead: PyAV raises it at its next call)."""

    def __init__(self, fetcher: HlsFetcher, url: str, context: ctypes.c_void_p | None = None) -> None:
        self._fetcher, self._url, self._context = fetcher, url, context
        self._first = b""  # the first bytes, to tell a playlist by
        self.playlist: bool | None = None
        self.size = 0

    def read(self, size: int = 65536) -> bytes:
        if not self._context or self._fetcher.refused:
            # Past a refusal every fetch ends at once: the stream stops instead of playing on from what was cut
            # short, and no second exception reaches PyAV (each would print a traceback).
            return b""
        ffmpeg = self._fetcher.ffmpeg
        buffer = ctypes.create_string_buffer(size)
        got = ffmpeg.avio_read(self._context, buffer, size)
        if got < 0 and got != _AVERROR_EOF:
            logger.debug("HLS fetch %s ended: %s", mask_url(self._url), _reason(got))
        if got <= 0:
            return b""
        data = buffer.raw[:got]
        if self.playlist is None:
            self._first += data[: len(PLAYLIST_MAGIC)]
            if len(self._first) >= len(PLAYLIST_MAGIC) or len(data) < size:
                self.playlist = self._first.startswith(PLAYLIST_MAGIC)
        self.size += got
        if self.playlist:
            self._fetcher.count_playlist(self._url, self.size)
        return data

    def close(self) -> None:
        if self._context:
            self._fetcher.ffmpeg.avio_closep(ctypes.byref(self._context))
            self._context = None

    def __del__(self) -> None:
        # With a custom io_open FFmpeg never closes the first playlist's fetch: it goes with the container.
        self.close()


def _reason(code: int) -> str:
    try:
        av.error.err_check(code)
    except av.error.FFmpegError as exc:
        return str(exc.strerror)
    return str(code)


class HlsFetcher:
    """PyAV's `io_open` for one HLS container: each fetch opened by FFmpeg, with our limits."""

    def __init__(self, read_timeout_s: float, ffmpeg: _Ffmpeg) -> None:
        self.ffmpeg = ffmpeg
        self._timeout_us = str(max(1, round(read_timeout_s * 1e6)))
        self._playlists: dict[str, int] = {}  # bytes of the latest copy of each playlist, by URL less its query
        self._cookies: str | None = None
        self._opened = 0
        self.refused: str | None = None

    def __call__(self, url: str, flags: int, options: dict[str, str]) -> Fetch:
        if flags & _AVIO_FLAG_WRITE:
            raise PermissionError("HLS fetches are read only")
        first = self._opened == 0
        self._opened += 1
        if self.refused:
            return Fetch(self, url)
        scheme = url.split(":", 1)[0].lower().removeprefix("crypto+")
        if scheme not in ("http", "https", "crypto", "data"):
            self._refuse(f"a playlist names a {scheme}: URL; HLS is fetched over http(s) only")
        settings = {**options, "protocol_whitelist": ALLOWED_PROTOCOLS, "rw_timeout": self._timeout_us,
                    "timeout": self._timeout_us}  # fmt: skip
        if self._cookies:
            settings["cookies"] = self._cookies
        dictionary, context = ctypes.c_void_p(), ctypes.c_void_p()
        try:
            for key, value in settings.items():
                self.ffmpeg.av_dict_set(ctypes.byref(dictionary), key.encode(), str(value).encode(), 0)
            code = self.ffmpeg.avio_open2(ctypes.byref(context), url.encode(), _AVIO_FLAG_READ, None,
                                          ctypes.byref(dictionary))  # fmt: skip
        finally:
            self.ffmpeg.av_dict_free(ctypes.byref(dictionary))
        if code < 0:
            if first:
                av.error.err_check(code)  # the stream's own URL: what FFmpeg's open raises (HTTPNotFoundError...)
            logger.debug("HLS fetch %s failed: %s", mask_url(url), _reason(code))
            return Fetch(self, url)
        self._remember_cookies(context)
        return Fetch(self, url, context)

    def _remember_cookies(self, context: ctypes.c_void_p) -> None:
        # FFmpeg's HLS passes the cookies a playlist's server set on to its segments; it reads them from its
        # own http connection, which a custom io_open hides from it.
        value = ctypes.c_void_p()
        if self.ffmpeg.av_opt_get(context, b"cookies", _AV_OPT_SEARCH_CHILDREN, ctypes.byref(value)) >= 0:
            if value.value:
                self._cookies = ctypes.string_at(value.value).decode("utf-8", "replace") or self._cookies
            self.ffmpeg.av_free(value)

    def count_playlist(self, url: str, size: int) -> None:
        self._playlists[url.split("?", 1)[0]] = size
        if size > MAX_PLAYLIST_BYTES:
            self._refuse(f"a playlist over {MAX_PLAYLIST_BYTES >> 20} MB")
        if sum(self._playlists.values()) > MAX_PLAYLISTS_BYTES:
            self._refuse(f"playlists over {MAX_PLAYLISTS_BYTES >> 20} MB together")

    def _refuse(self, reason: str) -> None:
        """Stop the stream: one exception, which PyAV raises from the call it is in or its next one."""
        self.refused = reason
        raise Refused(reason)


def _is_playlist_url(url: str) -> bool:
    return url.split("?", 1)[0].split("#", 1)[0].lower().endswith(".m3u8")


def _no_hls() -> str:
    """Every demuxer FFmpeg has but HLS's, for `format_whitelist`."""
    global _NO_HLS
    if _NO_HLS is None:
        _NO_HLS = ",".join(sorted(name for name in av.formats_available if name != "hls"))
    return _NO_HLS


_NO_HLS: str | None = None


def serves_a_playlist(url: str, read_timeout_s: float) -> bool:
    """Whether the URL answers with an HLS playlist (its first bytes say so)."""
    ffmpeg = _calls()
    if ffmpeg is None:
        return False
    try:
        fetch = HlsFetcher(read_timeout_s, ffmpeg)(url, _AVIO_FLAG_READ, {})
    except OSError:
        return False
    try:
        return fetch.read(len(PLAYLIST_MAGIC)) == PLAYLIST_MAGIC
    except OSError:
        return False
    finally:
        fetch.close()


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
    return av.open(url, format="hls", options=settings, timeout=timeout, io_open=HlsFetcher(read_timeout_s, ffmpeg))


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
        if not serves_a_playlist(url, read_timeout_s):
            raise
    return open_hls(url, open_timeout_s, read_timeout_s, options)
