#!/usr/bin/python3
"""A real MPEG-TS stream on 127.0.0.1 for tests: over UDP, or as live HLS over HTTP (GStreamer).

Run it with Debian's python3 (PyGObject is not in the project's venv):

    /usr/bin/python3 tests/support/ts_server.py --udp --port 5000 --file video.mp4 [--delay 1]
    /usr/bin/python3 tests/support/ts_server.py --hls --port 8080 --file video.mp4

Plays an H.264 file in real time without re-encoding, once. --udp sends it to
udp://127.0.0.1:PORT (the receiver listens there), starting `--delay` seconds
after READY. --hls writes 2 s segments (split at the file's keyframes) and a
live playlist, http://127.0.0.1:PORT/live.m3u8, and prints READY once the
first segment is listed.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

DEMUXERS = {".mp4": "qtdemux", ".mov": "qtdemux", ".m4v": "qtdemux", ".avi": "avidemux", ".mkv": "matroskademux"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True, help="an H.264 video (.mp4/.mov/.avi/.mkv)")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--udp", action="store_true")
    kind.add_argument("--hls", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0, help="--udp: seconds between READY and the first packet")
    args = parser.parse_args()
    path = Path(args.file).resolve()
    read = f'filesrc location="{path}" ! {DEMUXERS[path.suffix.lower()]} ! h264parse config-interval=-1'
    Gst.init(None)
    playlist: Path | None = None
    if args.udp:
        pipeline = Gst.parse_launch(
            f"{read} ! mpegtsmux alignment=7 ! udpsink host=127.0.0.1 port={args.port} sync=true"
        )
    else:
        folder = Path(tempfile.mkdtemp(prefix="hls_"))
        playlist = folder / "live.m3u8"
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        pipeline = Gst.parse_launch(
            f"{read} ! identity sync=true ! hlssink2 location={folder}/segment%05d.ts "
            f"playlist-location={playlist} target-duration=2 playlist-length=6 max-files=12"
        )
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    signal.signal(signal.SIGINT, lambda *_: loop.quit())
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message::error", lambda _bus, message: (print(message.parse_error(), file=sys.stderr), loop.quit()))
    if args.udp:
        print("READY", flush=True)
        time.sleep(args.delay)
        pipeline.set_state(Gst.State.PLAYING)
    else:
        pipeline.set_state(Gst.State.PLAYING)
        assert playlist is not None
        listed = playlist

        def ready() -> bool:
            if listed.is_file() and ".ts" in listed.read_text():
                print("READY", flush=True)
                return False
            return True

        GLib.timeout_add(100, ready)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
