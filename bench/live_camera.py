"""Does every frame of a 25 fps 640x360 camera get analysed, with the default settings, on this machine?

    python bench/live_camera.py [--video NAME] [--fps 25] [--seconds 15] [--via rtsp|udp|hls]
                                [--variants "KEY=VALUE ..." ...]

A ../shared/media clip (default: the 640x360 woman talking to the camera) is
re-timed to `--fps` (the same frames re-encoded at that rate, crf 17, a
keyframe every 2 s as cameras send) and served from GStreamer on 127.0.0.1,
in real time, as a camera would: over RTSP (default), as MPEG-TS over UDP,
or as live HLS (2 s segments over HTTP); the whole pipeline runs on it as
`run_stream.py --source URL` does with no other flag (live policy: the newest frame, stale
ones dropped and counted; H.264 + JSONL written). For the defaults and each
variant (a space-separated list of config overrides) it prints frames
captured, analysed and dropped (in all, and after the stream's first 2 s:
the start, where a stream probed for long, e.g. `source.stream_probe_s=5`,
hands ~1 s of frames over at once and a live run drops them as stale), the
analysed rate, how many frames apart detections were after 2 s,
capture-to-overlay latency and each stage's busy time per frame.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

from common import MEDIA, ROOT, device_name, percentile

from streamer.api import Analyzer
from streamer.config import load_config

sys.path.insert(0, str(ROOT))
from tests.support.servers import RtspServer, TsServer, rtsp_server_available


def retimed(video: Path, fps: int, out: Path, min_frames: int) -> Path:
    """The clip's frames re-encoded at `fps` (H.264, crf 17, a keyframe every 2 s: HLS segments are cut at
    keyframes), played back and forth until `min_frames`:
    a camera of that rate showing them (a short clip would end the stream and reconnect every few seconds)."""
    import av

    with av.open(str(video)) as src:
        frames = [frame.to_ndarray(format="rgb24") for frame in src.decode(video=0)]
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    with av.open(str(out), "w") as dst:
        stream = dst.add_stream(
            "libx264", rate=fps, options={"crf": "17", "preset": "veryfast", "bf": "0", "g": str(2 * fps)}
        )
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for index in range(max(min_frames, len(frames))):
            image = av.VideoFrame.from_ndarray(frames[order[index % len(order)]], format="rgb24")
            image.pts = index  # in 1/fps: the camera's clock
            image.time_base = Fraction(1, fps)
            for packet in stream.encode(image.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out


def run(url: str, fps: int, overrides: list[str], seconds: float, out_dir: str) -> str:
    config = load_config(None, [f"source.spec={url}", "detector.allow_download=false", *overrides])
    config.sink.out_dir = out_dir
    config.sink.report = False
    latencies: list[float] = []
    seen: list[int] = []
    detected: list[bool] = []
    stop = threading.Event()
    started = {"at": 0.0}

    def opened() -> None:
        started["at"] = time.monotonic()

    def observe(record) -> None:  # type: ignore[no-untyped-def]
        latencies.append(record.latency_s)
        seen.append(record.frame)
        detected.append(record.detected)
        if time.monotonic() > started["at"] + seconds:
            stop.set()  # as Ctrl+C: the sinks are finalized

    report = Analyzer(config).run(config.source.spec, on_frame=observe, stop=stop, on_open=opened)
    elapsed = time.monotonic() - started["at"]
    s = report.sources[0]
    captured = s.frames + s.dropped
    # The start is counted apart: a long stream probe hands ~1 s of frames over at once (see the docstring).
    settled = sum(1 for index in set(range(max(seen, default=0) + 1)) - set(seen) if index >= 2 * fps)
    busy = ", ".join(f"{name} {ms:.1f}" for name, ms in report.stage_ms.items())
    # Frames analysed per detection after 2 s (`detector.interval`: auto adapts it live).
    later = [d for frame, d in zip(seen, detected, strict=True) if frame >= 2 * fps]
    every = len(later) / max(sum(later), 1)
    return (
        f"captured {captured:4d}  analysed {s.frames:4d}  dropped {s.dropped:3d} ({100 * s.dropped / max(captured, 1):4.1f}%)"
        f" after 2 s {settled:3d}  {s.frames / elapsed:5.1f} fps  latency p50 {1000 * percentile(latencies, 50):4.0f} ms"
        f" p95 {1000 * percentile(latencies, 95):4.0f} ms\n      detection every {every:.1f} frames;"
        f" busy ms per frame: {busy}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", default="face_woman_talking_pexels.mp4", help="a clip in ../shared/media")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=15.0, help="of each run, from the stream's opening")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[
            "detector.interval=2",
            "detector.interval=1",
            "detector.face_search=persons",
            "detector.runtime=torch",
        ],
        help="config overrides, one quoted space-separated list per extra row",
    )
    parser.add_argument("--via", choices=("rtsp", "udp", "hls"), default="rtsp", help="how the camera is served")
    args = parser.parse_args()
    reason = rtsp_server_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        clip = retimed(MEDIA / args.video, args.fps, Path(tmp) / "camera.mp4", int(args.fps * (args.seconds + 20)))
        via = {"rtsp": "RTSP/TCP", "udp": "MPEG-TS over UDP", "hls": "live HLS (2 s segments)"}[args.via]
        print(f"{args.video} re-timed to {args.fps} fps, as {via} from 127.0.0.1; device={device_name('auto')}")
        for variant in ["", *args.variants]:
            # RTSP plays the file from its start for each session; UDP and HLS play it once: one server a row.
            if args.via == "rtsp":
                server: RtspServer = RtspServer(["--file", str(clip)])
            else:
                server = TsServer([f"--{args.via}", "--file", str(clip), "--delay", "1"])
            server.start(timeout_s=30)
            try:
                print(f"  {variant or 'defaults':<34}", end=" ", flush=True)
                print(run(server.url(), args.fps, shlex.split(variant), args.seconds, tmp), flush=True)
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
