"""End-to-end pipeline speed against decode-only and decode+detect, in the same run.

    python bench/pipeline.py [--video NAME] [--frames 150] [--model baseline|cocoer] [--weights DIR] [--device auto]

For one of ../shared/media's videos this measures, on the same frames:
1. decode only (the capture stage alone);
2. decode + detect + track, sequentially (no emotion model, no rendering);
3. the whole threaded pipeline as the CLI runs it (detect+track, emotion
   worker, overlay, H.264 + JSONL sinks), with per-stage busy time, queue
   occupancy and peak memory.
It prints frames per second and the pipeline's ratio to (1) and (2). The
target for the baseline model is a ratio of at least 0.8 to decode+detect.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import threading
import time

from common import MEDIA, PeakRss, device_name

from streamer.api import Analyzer
from streamer.backends.assembly import build_components
from streamer.config import AppConfig, load_config
from streamer.sources import open_source
from trackers import build_tracker


def decode_only(config: AppConfig) -> tuple[float, int]:
    source = open_source(config.source.spec, config.source)
    start = time.perf_counter()
    count = sum(1 for _ in source.frames(threading.Event()))
    source.close()
    return count / (time.perf_counter() - start), count


def decode_detect(config: AppConfig, components) -> float:  # type: ignore[no-untyped-def]
    source = open_source(config.source.spec, config.source)
    tracker = build_tracker(config.tracker, components.device)
    start = time.perf_counter()
    count = 0
    for frame in source.frames(threading.Event()):
        tracker.update(frame, components.detector.detect(frame.image))
        count += 1
    source.close()
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", default="face_woman_talking_pexels.mp4", help="a file in ../shared/media")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--model", default="baseline", choices=("baseline", "cocoer", "none"))
    parser.add_argument("--weights", default="checkpoints")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument(
        "--detector-runtimes", nargs="+", default=["torch", "onnxruntime"], help="one set of rows per runtime"
    )
    args = parser.parse_args()
    for runtime in args.detector_runtimes:
        measure(args, runtime)
    return 0


def measure(args: argparse.Namespace, runtime: str) -> None:
    config = load_config(
        None,
        [
            f"source.spec={MEDIA / args.video}",
            f"source.max_frames={args.frames}",
            f"emotion.model={args.model}",
            f"emotion.weights={args.weights}",
            f"emotion.stride={args.stride}",
            f"device={args.device}",
            "detector.allow_download=false",
            "emotion.allow_download=false",
            f"detector.runtime={runtime}",
        ],
    )
    components = build_components(config)
    model = components.model.description if components.model else "none"
    print(f"\n== detector.runtime={runtime}")
    print(f"video={args.video} frames={args.frames} model={model} device={device_name(components.device)}")
    print(components.detector.describe())

    warm = open_source(config.source.spec, config.source)
    first = next(iter(warm.frames(threading.Event())))
    components.detector.detect(first.image)  # warm-up: an ONNX runtime traces its input size once, cached
    warm.close()
    decode_fps, count = decode_only(config)
    detect_fps = decode_detect(config, components)
    del components  # the pipeline builds its own (through the API, as the CLI does)
    gc.collect()

    persons: list[int] = []

    with tempfile.TemporaryDirectory() as out, PeakRss() as memory:
        config.sink.out_dir = out
        config.sink.report = False
        report = Analyzer(config).run(config.source.spec, on_frame=lambda record: persons.append(len(record.persons)))
    summary = report.sources[0]
    pipeline_fps = summary.frames / summary.seconds

    print(f"{'stage':<28}{'fps':>8}")
    print(f"{'decode only':<28}{decode_fps:>8.1f}")
    print(f"{'decode + detect + track':<28}{detect_fps:>8.1f}")
    print(f"{'whole pipeline':<28}{pipeline_fps:>8.1f}")
    print(
        f"pipeline / decode+detect = {pipeline_fps / detect_fps:.2f}x   pipeline / decode = {pipeline_fps / decode_fps:.2f}x"
    )
    print("busy time per frame: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in report.stage_ms.items()))
    print(
        f"persons per frame: mean {sum(persons) / max(len(persons), 1):.1f}, max {max(persons, default=0)}; frames {summary.frames}/{count}"
    )
    print(f"peak memory (RSS): {memory.peak_mb:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
