"""The live view's HTTP server: aiohttp on its own event loop, in its own thread.

    GET /                                  the page (streamer/web/static/index.html, no CDN)
    GET /api/sources                       per source: state, fps, persons with their top labels, timelines, events
    GET /api/sources/<name>/frame.jpg      the newest annotated frame
    GET /api/sources/<name>/stream.mjpg    the annotated frames as MJPEG (a viewer that lags gets fewer)
    GET /api/events                        Server-Sent Events: {"source", "record"} per written frame (a JSONL line)

Binds 127.0.0.1 by default. Any other address needs a token, checked on every
endpoint (`?token=` or `Authorization: Bearer`). Nothing served contains a
source's URL: sources are known by their output names.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import secrets
import threading
from pathlib import Path
from typing import Any

import cv2

from aiohttp import web

from streamer import html_safe
from streamer.errors import UserError
from streamer.view.web.board import LiveBoard

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MJPEG_BOUNDARY = "cocoerframe"
#: How often a stream checks for a newer frame (it sends only new ones).
STREAM_POLL_S = 0.04
JPEG_QUALITY = 80


#: Only the page's own script runs (its per-response nonce); it talks to this server only.
PAGE_CSP = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


#: Headers every response carries: no type sniffing, and no token leaking through a Referer.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    """`SECURITY_HEADERS` on a response not sent yet (the streams set theirs before they start)."""
    if not response.prepared:
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
    return response


def parse_bind(text: str, token: str | None) -> tuple[str, int]:
    """`PORT` or `HOST:PORT`; refuses a non-loopback address without a token (one line, exit 2)."""
    host, _, port_text = text.rpartition(":")
    host = (host or "127.0.0.1").strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise UserError(f"--serve expects [HOST:]PORT, got {text!r}") from None
    if not 0 < port < 65536:
        raise UserError(f"--serve port must be 1..65535, got {port}")
    if not _is_loopback(host) and not token:
        raise UserError(
            f"--serve {host}:{port} is reachable from other machines: give a token (--serve-token or COCOER_SERVE_TOKEN)"
        )
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebServer:
    """Serves a `LiveBoard` until `stop()`."""

    def __init__(self, board: LiveBoard, host: str = "127.0.0.1", port: int = 8080, token: str | None = None) -> None:
        self.board = board
        self.host = host
        self.port = port
        self.token = token
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="web", daemon=True)
        self._runner: web.AppRunner | None = None
        self._jpeg: dict[str, tuple[int, bytes]] = {}
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> WebServer:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=15)
        except OSError as exc:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise UserError(f"cannot serve on {self.host}:{self.port} ({exc.strerror or exc})") from None
        return self

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._index)
        app.router.add_get("/api/sources", self._sources)
        app.router.add_get("/api/sources/{name}/frame.jpg", self._frame)
        app.router.add_get("/api/sources/{name}/stream.mjpg", self._stream)
        app.router.add_get("/api/events", self._events)
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            self._closing.set()
            if self._runner is not None:
                await self._runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # -- handlers -------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.token:
            given = request.query.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return _secured(web.json_response({"error": "a valid token is needed (?token=...)"}, status=401))
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # e.g. an unknown source: a JSON error, never a page echoing the name
            return _secured(web.json_response({"error": exc.reason}, status=exc.status))
        return _secured(response)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        # The state at request time sits in a JSON data block, escaped so that no source name or label can
        # end it or open a comment in it; only the page's own script (its nonce) may run.
        nonce = secrets.token_urlsafe(16)
        page = (STATIC / "index.html").read_text(encoding="utf-8").replace("/*NONCE*/", nonce)
        page = page.replace("/*INITIAL*/null", html_safe.script_json(self.board.snapshot()))
        return web.Response(
            text=page,
            content_type="text/html",
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": PAGE_CSP.format(nonce=nonce)},
        )

    async def _sources(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.board.snapshot())

    def _name(self, request: web.Request) -> str:
        name = request.match_info["name"]
        if name not in self.board.sources:
            raise web.HTTPNotFound(reason="no such source")
        return name

    def _jpeg_of(self, name: str) -> tuple[bytes | None, int]:
        image, seq = self.board.frame(name)
        cached = self._jpeg.get(name)
        if cached is not None and cached[0] == seq:
            return cached[1], seq
        if image is None:
            return None, seq
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return None, seq
        self._jpeg[name] = (seq, data.tobytes())
        return self._jpeg[name][1], seq

    def _image_name(self, request: web.Request) -> str:
        name = self._name(request)
        if self.board.aggregate:
            raise web.HTTPNotFound(reason="aggregate-only mode: no frames are served")
        return name

    async def _frame(self, request: web.Request) -> web.StreamResponse:
        jpeg, seq = self._jpeg_of(self._image_name(request))
        if jpeg is None:
            return web.json_response({"error": "no frame yet"}, status=503)
        return web.Response(
            body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store", "X-Frame-Seq": str(seq)}
        )

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        name = self._image_name(request)
        response = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
                "Cache-Control": "no-store",
                **SECURITY_HEADERS,
            }
        )
        await response.prepare(request)
        last = -1
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            while not self._closing.is_set():
                jpeg, seq = self._jpeg_of(name)
                if jpeg is not None and seq != last:
                    head = f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    await response.write(head.encode() + jpeg + b"\r\n")  # a gone viewer raises here: its loop ends
                    last = seq
                await asyncio.sleep(STREAM_POLL_S)
        return response

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", **SECURITY_HEADERS}
        )
        await response.prepare(request)
        queue = self.board.subscribe(asyncio.get_running_loop())
        try:
            with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
                await response.write(b": connected\n\n")
                while not self._closing.is_set():
                    try:
                        message = await asyncio.wait_for(queue.get(), timeout=1.0)
                    except TimeoutError:
                        await response.write(b": keep-alive\n\n")
                        continue
                    await response.write(f"data: {json.dumps(message, separators=(',', ':'))}\n\n".encode())
        finally:
            self.board.unsubscribe(queue)
        return response
