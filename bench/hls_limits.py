"""What HLS from a hostile server costs, with our fetches (`streamer/sources/hls_fetch.py`) and with FFmpeg alone.

    python bench/hls_limits.py [--video NAME] [--repeats 3]

Serves a ../shared/media clip as HLS from tests/support/hls_server.py on
127.0.0.1 and, each opening in a process of its own (so its peak memory is
the playlist's alone), prints how much the process grew and what the open
said for:

- an endless playlist (`/endless.m3u8`), and 8 variants of 3 MB (`/many.m3u8`),
  opened by FFmpeg alone (`av.open`, the 5 s open timeout) and by `open_source`;
- demuxing the whole clip (`/vod.m3u8`): CPU seconds through our fetches against
  FFmpeg's own, the same packets (best of `--repeats`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import MEDIA, ROOT

sys.path.insert(0, str(ROOT))
from tests.support.servers import HlsServer

OPEN = """
import json, resource, sys
import cv2, av
from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.sources import open_source
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    if sys.argv[2] == "ffmpeg":
        av.open(sys.argv[1], timeout=(5.0, 5.0)).close()
    else:
        open_source(sys.argv[1], SourceConfig(open_timeout_s=5.0, read_timeout_s=5.0)).close()
    said = "opened"
except (SourceError, av.error.FFmpegError, OSError) as exc:
    said = getattr(exc, "strerror", None) or str(exc).rsplit(" (", 1)[-1].rstrip(")")
print(json.dumps({"grew_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before, "said": said}))
"""

DEMUX = """
import json, sys, time
import cv2, av
from streamer.sources.hls_fetch import open_hls
url, how = sys.argv[1], sys.argv[2]
started = time.process_time()
container = av.open(url, options={"http_persistent": "0"}) if how == "ffmpeg" else open_hls(url, 5.0, 5.0)
packets = size = 0
for packet in container.demux(video=0):
    if packet.size:
        packets, size = packets + 1, size + packet.size
container.close()
print(json.dumps({"cpu_s": time.process_time() - started, "packets": packets, "bytes": size}))
"""


def _run(script: str, url: str, how: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, url, how], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{how} on {url} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default="people_one_by_one_room.mp4")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    server = HlsServer(["--file", str(MEDIA / args.video)]).start(timeout_s=60)
    try:
        print(f"HLS of {args.video} from 127.0.0.1 (each open in its own process)")
        for path in ("/endless.m3u8", "/many.m3u8"):
            url = server.url(path=path)
            ffmpeg, ours = _run(OPEN, url, "ffmpeg"), _run(OPEN, url, "ours")
            ratio = ffmpeg["grew_mb"] / max(ours["grew_mb"], 1.0)
            print(f"{path:14} FFmpeg alone: +{ffmpeg['grew_mb']:.0f} MB ({ffmpeg['said']})")
            print(f"{'':14} ours:         +{ours['grew_mb']:.0f} MB ({ours['said']})  {ratio:.1f}x less")
        url = server.url(path="/vod.m3u8")
        runs = {how: [_run(DEMUX, url, how) for _ in range(args.repeats)] for how in ("ffmpeg", "ours")}
        best = {how: min(run["cpu_s"] for run in done) for how, done in runs.items()}
        same = {(run["packets"], run["bytes"]) for done in runs.values() for run in done}
        print(f"demux /vod.m3u8: FFmpeg alone {best['ffmpeg'] * 1000:.0f} ms CPU, ours {best['ours'] * 1000:.0f} ms "
              f"({best['ours'] / best['ffmpeg']:.2f}x); packets and bytes {'the same' if len(same) == 1 else same}")  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
