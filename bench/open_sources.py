"""Opening sources when some do not answer: one after the other (as before) against `open_sources` (together).

    python bench/open_sources.py [--dead 4] [--timeout 5] [--video NAME]

Dead cameras are `SilentServer` URLs on 127.0.0.1 (connections accepted, never
answered: RTSP, HTTP and HLS); beside them a ../shared/media clip. Prints:

- the wall time to open them all, each in turn in this thread (`opened_here`:
  what a run did before) against `open_sources` (files and URLs in threads of
  their own, up to 8 at once);
- Ctrl+C while a dead source opens, each way in a process of its own: the
  seconds from the signal to the process's end, and how it ended.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

from common import MEDIA, ROOT

from streamer.backends.assembly import open_sources
from streamer.config import SourceConfig
from streamer.errors import UserError
from streamer.sources import opened_here
from streamer.sources.entries import SourceEntry
from tests.support.servers import SilentServer

INTERRUPTED = """
import sys, time
import cv2, av
from streamer.backends.assembly import open_sources
from streamer.config import SourceConfig
from streamer.errors import UserError
from streamer.sources import opened_here
from streamer.sources.entries import SourceEntry
config = SourceConfig(open_timeout_s=float(sys.argv[3]), read_timeout_s=float(sys.argv[3]))
print("opening", flush=True)
try:
    if sys.argv[2] == "in-turn":
        opened_here(sys.argv[1], config)  # the open in this (the main) thread, as before
    else:
        open_sources([SourceEntry(sys.argv[1], None, config)])
    print("opened")
except UserError as exc:
    print(f"ended: {exc}")
except KeyboardInterrupt:
    print("interrupted")
"""


def _dead_urls(server: SilentServer, count: int) -> list[str]:
    kinds = (
        "rtsp://127.0.0.1:{port}/cam{n}",
        "http://127.0.0.1:{port}/cam{n}.mp4",
        "http://127.0.0.1:{port}/cam{n}.m3u8",
    )
    return [kinds[n % len(kinds)].format(port=server.port, n=n) for n in range(count)]


def _in_turn(specs: list[str], config: SourceConfig) -> tuple[float, int]:
    started, opened = time.monotonic(), 0
    for spec in specs:
        try:
            opened_here(spec, config).close()
            opened += 1
        except UserError:
            pass
    return time.monotonic() - started, opened


def _together(specs: list[str], config: SourceConfig) -> tuple[float, int]:
    started = time.monotonic()
    opened, _ = open_sources([SourceEntry(spec, None, config) for spec in specs])
    took = time.monotonic() - started
    for source in opened:
        source.source.close()
    return took, len(opened)


def _ctrl_c(url: str, how: str, timeout_s: float) -> tuple[float, str]:
    process = subprocess.Popen([sys.executable, "-c", INTERRUPTED, url, how, str(timeout_s)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert process.stdout is not None
    process.stdout.readline()  # "opening"
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    out, _ = process.communicate(timeout=timeout_s + 60)
    said = out.strip().splitlines()[-1] if out.strip() else f"exit {process.returncode}"
    return time.monotonic() - sent, said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dead", type=int, default=4, help="sources that do not answer")
    parser.add_argument("--timeout", type=float, default=5.0, help="source.open_timeout_s")
    parser.add_argument("--video", default="face_man_smiling_short.mp4")
    args = parser.parse_args()
    server = SilentServer()
    try:
        config = SourceConfig(open_timeout_s=args.timeout, read_timeout_s=args.timeout)
        specs = [*_dead_urls(server, args.dead), str(MEDIA / args.video)]
        print(f"{args.dead} sources that do not answer and {args.video}, open timeout {args.timeout:g} s")
        turn_s, turn_opened = _in_turn(specs, config)
        together_s, together_opened = _together(specs, config)
        print(f"one after the other: {turn_s:5.1f} s ({turn_opened} opened)")
        print(f"open_sources:        {together_s:5.1f} s ({together_opened} opened)  {turn_s / together_s:.1f}x sooner")
        url = _dead_urls(server, 1)[0]
        for how in ("in-turn", "together"):
            took, said = _ctrl_c(url, how, args.timeout)
            label = "opened in the main thread" if how == "in-turn" else "open_sources"
            print(f"Ctrl+C 1 s into opening {url} ({label}): ended {took:.1f} s later, {said[:90]}")
    finally:
        server.listener.close()


if __name__ == "__main__":
    main()
