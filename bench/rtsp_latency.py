"""Glass-to-overlay latency and drop rate for a live RTSP stream, with the default model.

    python bench/rtsp_latency.py [--video NAME] [--seconds 20] [--policy latest|block]

Serves a ../shared/media clip over RTSP from GStreamer's server on 127.0.0.1
(real time, 25 fps for the default clip), runs the whole pipeline on it as
the CLI does, and reports, per rendered frame, the time from capture (the
frame leaving the decoder) to the overlay being drawn and written: p50/p95,
plus how many frames were dropped as stale. Run it with both policies to see
why live sources drop: with `block` the latency grows with the backlog.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time

from common import MEDIA, ROOT, device_name, percentile

from streamer.api import Analyzer
from streamer.config import load_config

sys.path.insert(0, str(ROOT))
from tests.support.servers import RtspServer, rtsp_server_available


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--video",
        default="face_expressive_liveportrait_d12.mp4",
        help="an H.264 clip in ../shared/media (d12 is 25 fps)",
    )
    parser.add_argument("--seconds", type=float, default=7.0)
    parser.add_argument("--policy", default="latest", choices=("latest", "block"))
    args = parser.parse_args()
    reason = rtsp_server_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    server = RtspServer(["--file", str(MEDIA / args.video)]).start()
    try:
        config = load_config(
            None, [f"source.spec={server.url()}", f"source.policy={args.policy}", "detector.allow_download=false"]
        )
        latencies: list[float] = []
        stop = threading.Event()
        deadline = 0.0

        def started() -> None:
            nonlocal deadline
            deadline = time.monotonic() + args.seconds

        def observe(record) -> None:  # type: ignore[no-untyped-def]
            latencies.append(record.latency_s)
            if time.monotonic() > deadline:
                stop.set()  # stop like Ctrl+C: sinks are finalized

        with tempfile.TemporaryDirectory() as out:
            config.sink.out_dir = out
            config.sink.report = False
            analyzer = Analyzer(config)
            report = analyzer.run(config.source.spec, on_frame=observe, stop=stop, on_open=started)
            summary = report.sources[0]
        captured = summary.frames + summary.dropped
        print(
            f"stream={args.video} over RTSP/TCP, policy={args.policy}, emotion.model={config.emotion.model}, "
            f"device={device_name(config.device)}"
        )
        print(
            f"frames captured {captured}, rendered {summary.frames}, dropped {summary.dropped} ({100 * summary.dropped / max(captured, 1):.0f}%)"
        )
        print(
            f"capture -> overlay latency: p50 {1000 * percentile(latencies, 50):.0f} ms, p95 {1000 * percentile(latencies, 95):.0f} ms, max {1000 * max(latencies):.0f} ms"
        )
        print("busy time per frame: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in report.stage_ms.items()))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
