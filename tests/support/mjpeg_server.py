"""An MJPEG camera over HTTP on 127.0.0.1, as IP cameras and phone webcam apps serve one.

    python tests/support/mjpeg_server.py --port 8080 --file video.mp4 [--fps 25] [--endless-after N --endless-mb M]

http://127.0.0.1:PORT/video answers `multipart/x-mixed-replace` with one JPEG
part per frame of the file, in real time, looping, to each client from where
the camera is (the camera runs whether or not anyone watches). Prints READY
once listening.

A hostile camera (`--endless-after N`): after N frames a client gets a part with no Content-Length and M MB of
bytes that never reach a boundary, then nothing (the connection stays open).
"""

from __future__ import annotations

import argparse
import http.server
import sys
import threading
import time

import cv2  # before av (ENVIRONMENT.md)

import av

BOUNDARY = "cameraframe"


class Camera:
    """The file's frames as JPEGs, one every 1/fps seconds, looping; clients wait for the next one."""

    def __init__(self, path: str, fps: float) -> None:
        with av.open(path) as container:
            images = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
        self.jpegs = [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for image in images]
        self.fps = fps
        self.index = -1
        self.changed = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        started = time.monotonic()
        while True:
            with self.changed:
                self.index += 1
                self.changed.notify_all()
            time.sleep(max(0.0, started + (self.index + 1) / self.fps - time.monotonic()))

    def next_after(self, index: int) -> tuple[int, bytes]:
        with self.changed:
            self.changed.wait_for(lambda: self.index > index)
            return self.index, self.jpegs[self.index % len(self.jpegs)]


def handler(camera: Camera, endless_after: int, endless_mb: int) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/video":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            index = camera.index
            try:
                for _ in range(endless_after) if endless_after else iter(int, 1):
                    index, jpeg = camera.next_after(index)
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpeg + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode())
                filler = bytes(range(256)) * 4096  # 1 MB that holds no boundary
                for _ in range(endless_mb):
                    self.wfile.write(filler)
                self.wfile.flush()
                time.sleep(3600)
            except (BrokenPipeError, ConnectionResetError):
                return

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--endless-after", type=int, default=0)
    parser.add_argument("--endless-mb", type=int, default=0)
    args = parser.parse_args()
    camera = Camera(args.file, args.fps)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", args.port), handler(camera, args.endless_after, args.endless_mb)
    )
    server.daemon_threads = True
    print("READY", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
