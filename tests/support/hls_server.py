"""HLS over HTTP on 127.0.0.1, honest and hostile, in the project's Python.

    python tests/support/hls_server.py --port 8080 --file video.mp4 [--user NAME:PASSWORD] [--cookie]

The file is cut into MPEG-TS segments (1 s, at its keyframes) (its packets copied, not re-encoded) and served as a finished
(VOD) playlist at /vod.m3u8, and at /stream with HLS's MIME type and no extension; encrypted (AES-128, its
key fetched from /aes.key) at /aes.m3u8. Prints READY once
listening. Hostile playlists beside it:

- /endless.m3u8 and /endless: a media playlist that never ends (segment lines without end, at loopback speed);
- /slow.m3u8: the real playlist, a byte every 0.2 s;
- /local.m3u8: a playlist whose segments are files on the server's disk (`file://` URLs);
- /many.m3u8: a master playlist of 8 variants, each a real playlist of about 3 MB.

--user makes every path ask for HTTP Basic credentials; --cookie makes the playlists set a session cookie that
every segment then needs (403 without it), as some CDNs do. GET /requests lists the paths asked for.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.server
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import cv2  # noqa: F401  (before av: ENVIRONMENT.md)

import av

HLS_TYPE = "application/vnd.apple.mpegurl"
SESSION = "session=7f3a"


def segmented(video: Path, folder: Path, name: str = "vod", key: bytes | None = None) -> Path:
    """The video's packets copied into MPEG-TS segments (1 s, cut at keyframes) and a VOD playlist in
    `folder`: `name`.m3u8 and `name`000.ts..., encrypted with AES-128 under `key` (served as `name`.key)."""
    playlist = folder / f"{name}.m3u8"
    options = {"hls_time": "1", "hls_playlist_type": "vod", "hls_segment_filename": str(folder / f"{name}%03d.ts")}
    if key is not None:  # FFmpeg writes the key to the key URL, relative to the working folder: ours is `folder`
        options |= {"hls_enc": "1", "hls_enc_key": key.decode(), "hls_enc_key_url": f"{name}.key"}
    with av.open(str(video)) as source, av.open(str(playlist), "w", format="hls", options=options) as target:
        stream = source.streams.video[0]
        copied = target.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = copied
            target.mux(packet)
    return playlist


def big_playlist(approx_bytes: int) -> bytes:
    line = b"#EXTINF:1.000,\nvod000.ts\n"
    head = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n"
    return head + line * (approx_bytes // len(line)) + b"#EXT-X-ENDLIST\n"


def _endless(wfile: BinaryIO) -> None:
    wfile.write(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n")
    lines = b"#EXTINF:1.000,\nvod000.ts\n" * 4096
    while True:
        wfile.write(lines)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    folder: Path
    playlists: dict[str, bytes]
    authorization: str | None
    cookie: bool
    requests: list[str]

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, body: bytes | None, kind: str, set_cookie: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        if body is not None:
            self.send_header("Content-Length", str(len(body)))
        if set_cookie:
            self.send_header("Set-Cookie", f"{SESSION}; Path=/")
        self.end_headers()
        self.wfile.write(body or b"")

    def _ask_credentials(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="camera"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/requests":
            self.requests.append(path)
            if self.authorization and self.headers.get("Authorization") != self.authorization:
                self._ask_credentials()
                return
        segment = self.folder / path.lstrip("/")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if path == "/requests":
                self._send("\n".join(self.requests).encode(), "text/plain")
            elif path in self.playlists:
                self._send(self.playlists[path], HLS_TYPE, set_cookie=self.cookie)
            elif path in ("/endless.m3u8", "/endless"):
                self._send(None, HLS_TYPE)
                _endless(self.wfile)
            elif path == "/slow.m3u8":
                self._send(None, HLS_TYPE)
                _slow(self.wfile, self.playlists["/vod.m3u8"])
            elif path.startswith(("/vod", "/aes")) and segment.is_file():
                if self.cookie and SESSION not in (self.headers.get("Cookie") or ""):
                    self.send_error(403)
                else:
                    self._send(segment.read_bytes(), "video/mp2t")
            else:
                self.send_error(404)


def _slow(wfile: BinaryIO, playlist: bytes) -> None:
    """A real playlist, a byte every 0.2 s (each read waits less than any read timeout)."""
    for at in range(len(playlist)):
        wfile.write(playlist[at : at + 1])
        wfile.flush()
        time.sleep(0.2)


def handler(folder: Path, user: str | None, cookie: bool) -> type[Handler]:
    vod = (folder / "vod.m3u8").read_bytes()
    variants = b"".join(
        f"#EXT-X-STREAM-INF:BANDWIDTH={100000 + i},RESOLUTION=640x360\nbig{i}.m3u8\n".encode() for i in range(8)
    )
    playlists = {
        "/vod.m3u8": vod,
        "/aes.m3u8": (folder / "aes.m3u8").read_bytes(),
        "/stream": vod,
        "/local.m3u8": vod.replace(b"vod0", f"file://{folder}/vod0".encode()),
        "/many.m3u8": b"#EXTM3U\n" + variants,
        **{f"/big{i}.m3u8": big_playlist(3 * 2**20) for i in range(8)},
    }
    authorization = "Basic " + base64.b64encode(user.encode()).decode() if user else None
    settings = {"folder": folder, "playlists": playlists, "authorization": authorization, "cookie": cookie,
                "requests": []}  # fmt: skip
    return type("Bound", (Handler,), settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--user")
    parser.add_argument("--cookie", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the segments' folder is removed
    with tempfile.TemporaryDirectory(prefix="hls_server_") as folder:
        args.file = args.file.resolve()
        os.chdir(folder)  # where FFmpeg writes the AES key, not the checkout
        segmented(args.file, Path(folder))
        segmented(args.file, Path(folder), "aes", key=b"0123456789abcdef")
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", args.port), handler(Path(folder), args.user, args.cookie)
        )
        server.daemon_threads = True
        print("READY", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
