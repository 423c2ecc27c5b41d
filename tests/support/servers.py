"""Real servers on 127.0.0.1 for tests: GStreamer's RTSP server and Python's HTTP server."""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"


def wait_for_live_view(process: subprocess.Popen[str], sources_url: str, frames: int, timeout_s: float = 300) -> None:
    """Until the run's live view (`/api/sources`, token in the URL if any) has published `frames` frames
    of its first source; AssertionError with the run's stderr if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(sources_url, timeout=2) as response:
                sources = json.loads(response.read())["sources"]  # empty until the models are loaded
            if sources and sources[0]["frames_published"] >= frames:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"the live view never came up: {process.communicate(timeout=30)[1]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rtsp_server_available() -> str | None:
    """None if the RTSP server can run here, else why not."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return "GStreamer's RTSP server is not installed (apt-get install gir1.2-gst-rtsp-server-1.0 ...; .ci/run does)"
    return None


class RtspServer:
    """One gst-rtsp-server process; restartable on the same port."""

    script = "rtsp_server.py"
    python = SYSTEM_PYTHON

    def __init__(self, args: list[str], port: int | None = None) -> None:
        self.args = args
        self.port = port or free_port()
        self.process: subprocess.Popen[str] | None = None

    def url(self, user: str | None = None, password: str | None = None, path: str = "/stream") -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{path}"

    def start(self, timeout_s: float = 15.0) -> RtspServer:
        self.process = subprocess.Popen(
            [self.python, str(SUPPORT / self.script), "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout_s
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready and self.process.stdout.readline().strip() == "READY":
                return self
            if self.process.poll() is not None:
                break
        err = self.process.stderr.read() if self.process.stderr else ""
        self.stop()
        raise RuntimeError(f"{self.script} did not start: {err}")

    def stop(self) -> None:
        """terminate -> wait -> kill (ENVIRONMENT.md)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def kill(self) -> None:
        """The server dies abruptly (no RTSP teardown)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture()
def rtsp_server():
    """Factory: rtsp_server(--file F | --pattern, [--user U --password P]) -> a started server."""
    reason = rtsp_server_available()
    if reason:
        pytest.skip(reason)
    servers: list[RtspServer] = []

    def start(*args: str) -> RtspServer:
        server = RtspServer(list(args)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process is not None:
            with contextlib.suppress(ProcessLookupError, AssertionError):
                server.resume()  # a paused server would not die on SIGTERM
        server.stop()


class TsServer(RtspServer):
    """An MPEG-TS stream from GStreamer (tests/support/ts_server.py): over UDP, or live HLS over HTTP."""

    script = "ts_server.py"

    def url(self, user: str | None = None, password: str | None = None, path: str = "/live.m3u8") -> str:
        if "--udp" in self.args:
            return f"udp://127.0.0.1:{self.port}"
        return f"http://127.0.0.1:{self.port}{path}"


def _serve(kind: type[RtspServer], timeout_s: float) -> Iterator[Callable[..., RtspServer]]:
    """A fixture's body: a factory that starts `kind` servers, each stopped afterwards."""
    servers: list[RtspServer] = []

    def start(*args: str) -> RtspServer:
        server = kind(list(args)).start(timeout_s=timeout_s)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture()
def ts_server():
    """Factory: ts_server(--udp | --hls, --file F, [--delay S]) -> a started server (see ts_server.py)."""
    reason = rtsp_server_available()  # the same GStreamer packages
    if reason:
        pytest.skip(reason)
    yield from _serve(TsServer, timeout_s=30)


class MjpegServer(RtspServer):
    """An MJPEG camera over HTTP (tests/support/mjpeg_server.py, in the project's Python); restartable."""

    script = "mjpeg_server.py"
    python = sys.executable

    def url(self, user: str | None = None, password: str | None = None, path: str = "/video") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture()
def mjpeg_server():
    """Factory: mjpeg_server(--file F, [--fps N]) -> a started server."""
    yield from _serve(MjpegServer, timeout_s=60)


@pytest.fixture()
def http_server(shared_media: Path):
    """Python's HTTP server on 127.0.0.1 serving the shared media folder."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(shared_media)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=5)


class HlsServer(RtspServer):
    """HLS over HTTP, honest and hostile (tests/support/hls_server.py, in the project's Python)."""

    script = "hls_server.py"
    python = sys.executable

    def url(self, user: str | None = None, password: str | None = None, path: str = "/vod.m3u8") -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"http://{auth}127.0.0.1:{self.port}{path}"


@pytest.fixture()
def hls_server():
    """Factory: hls_server(--file F, [--user NAME:PASSWORD] [--cookie]) -> a started server."""
    yield from _serve(HlsServer, timeout_s=60)


@dataclasses.dataclass
class Download:
    """What `download_server` serves: `body` under any path, its true length announced, the connection
    closed after `cut_after` bytes when set, each MB of it `pace_s` apart."""

    body: bytes
    cut_after: int | None = None
    pace_s: float = 0.0
    requests: int = 0


@pytest.fixture()
def download_server() -> Iterator[Callable[[Download], str]]:
    """Factory: download_server(Download(body, ...)) -> the base URL of an in-process HTTP server on 127.0.0.1
    serving it (a weights host, a registry, a mirror: one whose connection drops, or that is slow)."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(download: Download) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                download.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(download.body)))
                self.end_headers()
                sent = download.body[: download.cut_after]
                for at in range(0, len(sent), 1 << 20):
                    self.wfile.write(sent[at : at + (1 << 20)])
                    time.sleep(download.pace_s)
                self.close_connection = True

            def log_message(self, *args: object) -> None: ...

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (a camera whose service hangs, a firewall that
    swallows what follows the handshake); counts how many were open at once."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = threading.Event()
        self.open_now = 0
        self.most_at_once = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.open_now += 1
                self.most_at_once = max(self.most_at_once, self.open_now)
            self.accepted.set()
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        with connection:
            while connection.recv(4096):
                pass  # whatever the client says, no answer
        with self._lock:
            self.open_now -= 1


@pytest.fixture()
def silent_server() -> Iterator[SilentServer]:
    """A `SilentServer`, closed after the test."""
    server = SilentServer()
    yield server
    server.listener.close()
