#!/usr/bin/python3
"""A real MPEG-TS stream on 127.0.0.1 for tests: over UDP, or as live HLS over HTTP (GStreamer).

Run it with Debian's python3 (PyGObject is not in the project's venv):

    /usr/bin/python3 tests/support/ts_server.py --udp --port 5000 --file video.mp4 [--delay 1]
    /usr/bin/python3 tests/support/ts_server.py --hls --port 8080 --file video.mp4 [--file other.mp4 ...]

Plays an H.264 file in real time without re-encoding, once. --udp sends it to
udp://127.0.0.1:PORT (the receiver listens there), starting `--delay` seconds
after READY. --hls writes 2 s segments (split at the file's keyframes) and a
live playlist, http://127.0.0.1:PORT/live.m3u8, and prints READY once the
first segment is listed. With several files, each is a variant (v0/, v1/,
...) of a master playlist, http://127.0.0.1:PORT/master.m3u8. GET /requests
lists the paths asked for so far, one a line.
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
gi.require_version("GstPbutils", "1.0")
from gi.repository import GLib, Gst, GstPbutils  # noqa: E402
from rtsp_server import DEMUXERS  # noqa: E402 (beside this script, run with the same Python)

REQUESTS: list[str] = []


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/requests":
            body = "".join(f"{path}\n" for path in REQUESTS).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        REQUESTS.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


def read(file: Path) -> str:
    """A file's H.264, parsed, with its parameter sets before every keyframe (a receiver may join anywhere)."""
    return f'filesrc location="{file}" ! {DEMUXERS[file.suffix.lower()]} ! h264parse config-interval=-1'


def variant(file: Path, folder: Path) -> str:
    """A pass-through HLS writer for one file into `folder` (its live.m3u8 and segments)."""
    folder.mkdir(parents=True, exist_ok=True)
    return (
        f"{read(file)} ! identity sync=true ! hlssink2 location={folder}/segment%05d.ts "
        f"playlist-location={folder}/live.m3u8 target-duration=2 playlist-length=6 max-files=12"
    )


def size_of(file: Path) -> tuple[int, int]:
    discoverer = GstPbutils.Discoverer.new(10 * Gst.SECOND)
    video = discoverer.discover_uri(file.as_uri()).get_video_streams()[0]
    return video.get_width(), video.get_height()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True, action="append", help="an H.264 video (.mp4/.mov/.avi/.mkv)")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--udp", action="store_true")
    kind.add_argument("--hls", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0, help="--udp: seconds between READY and the first packet")
    args = parser.parse_args()
    files = [Path(file).resolve() for file in args.file]
    Gst.init(None)
    playlists: list[Path] = []
    if args.udp:
        pipeline = Gst.parse_launch(
            f"{read(files[0])} ! mpegtsmux alignment=7 ! udpsink host=127.0.0.1 port={args.port} sync=true"
        )
    else:
        folder = Path(tempfile.mkdtemp(prefix="hls_"))
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        folders = [folder] if len(files) == 1 else [folder / f"v{index}" for index in range(len(files))]
        playlists = [to / "live.m3u8" for to in folders]
        pipeline = Gst.parse_launch(" ".join(variant(file, to) for file, to in zip(files, folders, strict=True)))
        if len(files) > 1:
            master = ["#EXTM3U"]
            for index, file in enumerate(files):
                width, height = size_of(file)
                master += [f"#EXT-X-STREAM-INF:BANDWIDTH={width * height * 4},RESOLUTION={width}x{height}"]
                master += [f"v{index}/live.m3u8"]
            (folder / "master.m3u8").write_text("\n".join(master) + "\n")
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

        def ready() -> bool:
            if all(listed.is_file() and ".ts" in listed.read_text() for listed in playlists):
                print("READY", flush=True)
                return False
            return True

        GLib.timeout_add(100, ready)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
