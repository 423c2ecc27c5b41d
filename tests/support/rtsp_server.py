#!/usr/bin/python3
"""A real RTSP server on 127.0.0.1 for tests and benchmarks: GStreamer's gst-rtsp-server.

Run it with Debian's python3 (PyGObject is not in the project's venv):

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --file video.mp4 [--user U --password P]
    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --pattern

Serves rtsp://127.0.0.1:PORT/stream: an H.264 file re-packetized without
re-encoding (played in real time, from the start for each new session), or a
live 25 fps test pattern encoded with x264. Prints READY once listening.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

DEMUXERS = {".mp4": "qtdemux", ".mov": "qtdemux", ".m4v": "qtdemux", ".avi": "avidemux", ".mkv": "matroskademux"}


def launch_line(args: argparse.Namespace) -> str:
    if args.pattern:
        return (
            "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 "
            "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    path = Path(args.file).resolve()
    demux = DEMUXERS[path.suffix.lower()]
    return f'( filesrc location="{path}" ! {demux} ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )'


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", help="an H.264 video (.mp4/.mov/.avi/.mkv)")
    parser.add_argument("--pattern", action="store_true", help="a live test pattern instead of a file")
    parser.add_argument("--mount", default="/stream")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    if not args.pattern and not args.file:
        parser.error("--file or --pattern is required")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, args.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(args.user, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        permissions.add_permission_for_role(args.user, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    signal.signal(signal.SIGINT, lambda *_: loop.quit())
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
