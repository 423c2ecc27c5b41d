"""HLS from a server we don't control: playlists have a ceiling, segments come from the web only, and honest
streams (credentials in the URL, a session cookie, no .m3u8 in the URL) play as FFmpeg alone played them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2

import av
import numpy as np
import pytest

from streamer.errors import SourceError
from streamer.sources import open_source
from streamer.sources.hls_fetch import MAX_PLAYLIST_BYTES, MAX_PLAYLISTS_BYTES
from streamer.sources.live import StreamSource
from tests.conftest import media_file
from tests.streamer.test_live import FAST

CLIP = "face_expressive_liveportrait_d6.mp4"  # 480x480, 30 fps, 34 s: 1 s segments

# In its own process, so that its peak memory is the playlist's alone.
OPEN_AND_MEASURE = """
import json, resource, sys
from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.sources import open_source
config = SourceConfig(open_timeout_s=5.0, read_timeout_s=5.0)
before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    open_source(sys.argv[1], config).close()
    error = None
except SourceError as exc:
    error = str(exc)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"grew_mb": peak_mb - before_mb, "error": error}))
"""


def _opened(url: str) -> dict:
    done = subprocess.run([sys.executable, "-c", OPEN_AND_MEASURE, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("path", ["/endless.m3u8", "/endless"], ids=["m3u8", "found-by-its-type"])
def test_a_playlist_that_never_ends_stops_at_its_ceiling(shared_media: Path, hls_server, path: str) -> None:
    # FFmpeg read it whole, ~8 bytes of memory per byte: 0.9 GB within the 5 s open timeout over loopback,
    # and the error said only "Immediate exit requested". Without .m3u8 in the URL, FFmpeg took it for HLS by
    # its MIME type, in the same way.
    server = hls_server("--file", str(media_file(shared_media, CLIP)))
    result = _opened(server.url(path=path))
    assert result["error"] == f"cannot open {server.url(path=path)} (a playlist over {MAX_PLAYLIST_BYTES >> 20} MB)"
    assert result["grew_mb"] < 150, result


def test_playlists_over_their_joint_ceiling_are_refused(shared_media: Path, hls_server) -> None:
    # A master playlist of 8 variants of 3 MB each: every one under the ceiling of one playlist, all of them
    # FFmpeg reads at the start over it.
    server = hls_server("--file", str(media_file(shared_media, CLIP)))
    result = _opened(server.url(path="/many.m3u8"))
    assert result["error"].endswith(f"(playlists over {MAX_PLAYLISTS_BYTES >> 20} MB together)"), result
    assert result["grew_mb"] < 300, result


def test_a_playlist_naming_files_on_this_machine_is_refused(shared_media: Path, hls_server) -> None:
    # A remote playlist's segments are fetched over the web only, never from our own disk (file:// URLs: here
    # the server's real segments, which would otherwise play).
    server = hls_server("--file", str(media_file(shared_media, CLIP)))
    with pytest.raises(SourceError) as caught:
        open_source(server.url(path="/local.m3u8"), FAST)
    assert "a playlist names a file: URL; HLS is fetched over http(s) only" in str(caught.value)


def _first_image(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="bgr24")


@pytest.mark.parametrize(
    ("args", "path"),
    [(("--cookie",), "/stream"), (("--user", "cam:s3cr%t"), "/vod.m3u8"), ((), "/aes.m3u8")],
    ids=["session-cookie-no-extension", "credentials-in-the-url", "aes-128-encrypted"],
)
def test_honest_hls_plays_the_files_own_frames(shared_media: Path, hls_server, args: tuple, path: str) -> None:
    # The segments need the cookie the playlist's answer set (a custom io_open hides it from FFmpeg: we pass it
    # on), or the credentials in the URL (FFmpeg's http answers the 401 for every fetch), or the key the
    # playlist names (fetched, then each segment decrypted by FFmpeg's crypto protocol).
    clip = media_file(shared_media, CLIP)
    server = hls_server("--file", str(clip), *args)
    url = server.url(path=path) if "--user" not in args else server.url("cam", "s3cr%25t", path)
    source = open_source(url, FAST)
    assert isinstance(source, StreamSource) and (source.info.width, source.info.height) == (480, 480)
    stop = threading.Event()
    frames = source.frames(stop)
    images = [next(frames).image for _ in range(45)]
    stop.set()
    source.close()
    assert float(np.abs(images[0].astype(int) - _first_image(clip)).mean()) < 1.0
    assert cv2.absdiff(images[0], images[-1]).mean() > 1.0, "the video moves on"


def test_a_playlist_sent_a_byte_at_a_time_is_given_up_at_the_open_timeout(shared_media: Path, hls_server) -> None:
    # Every read gets a byte before the read timeout, so only a deadline on the whole playlist ends it, as
    # FFmpeg's open timeout ended it when FFmpeg fetched it alone. Without one, opening hung for ~30 s here and
    # for hours on a longer playlist.
    server = hls_server("--file", str(media_file(shared_media, CLIP)))
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        open_source(server.url(path="/slow.m3u8"), FAST)
    assert time.monotonic() - started < FAST.open_timeout_s + 5
    assert str(caught.value).endswith(f"(a playlist still arriving after {FAST.open_timeout_s:g} s)")


# Opening as the CLI does before its run starts: in the main thread, a signal raising KeyboardInterrupt.
CTRL_C_WHILE_OPENING = """
import os, signal, sys, threading, time
from streamer.config import SourceConfig
from streamer.shutdown import GracefulStop
from streamer.sources import open_source
GracefulStop().install()
threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
started = time.monotonic()
try:
    open_source(sys.argv[1], SourceConfig(open_timeout_s=30.0, read_timeout_s=30.0))
    print("opened")
except KeyboardInterrupt:
    print(f"interrupted after {time.monotonic() - started:.1f} s")
"""


def test_ctrl_c_while_a_playlist_arrives_stops_the_open_at_once(shared_media: Path, hls_server) -> None:
    # Our fetches are Python called from FFmpeg; in the main thread Ctrl+C's handler ran inside one, where
    # ctypes printed the KeyboardInterrupt and dropped it: the open went on to its end, 30 s here.
    server = hls_server("--file", str(media_file(shared_media, CLIP)))
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_WHILE_OPENING, server.url(path="/slow.m3u8")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.startswith("interrupted after"), (done.stdout, done.stderr)
    assert float(done.stdout.split()[2]) < 4.0
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr
