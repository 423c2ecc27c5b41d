"""People detection and tracking on a real street camera, scored against MOT15 ground truth.

    python bench/mot.py [--frames 400]

On PETS09-S2L1 (../shared/media, 480x360, 10 fps; GT boxes for frames 1-400
in 768x576 pixels), for every person detector that needs no download (and
insightface's SCRFD person model when its file is present) and both
trackers, at detection interval 1 and 3, prints:
  MOTA, IDF1, ID switches, recall, precision (py-motmetrics, IoU >= 0.5),
  detection and tracking cost per frame, and detect+track fps.
Then the whole pipeline (run_stream's default config, JSONL only) at
interval 1, 2 and 3: its fps, their ratio, and its tracked recall/precision.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import MEDIA

from streamer.api import Analyzer
from streamer.config import AppConfig, DetectorConfig, SinkConfig, SourceConfig
from streamer.detectors import FacePersonDetector, build_detector
from streamer.detectors.centernet import CenterNetPeopleDetector
from streamer.detectors.faces import MtcnnFaceDetector
from streamer.detectors.people import HogPeopleDetector
from streamer.stages.detect_track import DetectTrackStage
from streamer.tools.mot import match_counts, read_jsonl_tracks, read_mot_gt, score
from streamer.types import Frame, PersonDetection
from trackers import TrackerConfig, build_tracker

CLIP = MEDIA / "pedestrians_pets09_s2l1_480x360.avi"
GT = MEDIA / "pedestrians_pets09_s2l1_gt_1-400.txt"
SCALE = 1.6  # GT pixels per pixel of our 480x360 copy


def decode(frames: int) -> list[Frame]:
    import av

    out = []
    with av.open(str(CLIP)) as container:
        for i, f in enumerate(container.decode(video=0)):
            if i >= frames:
                break
            out.append(Frame("pets09", i, float(f.time or i / 10.0), time.monotonic(), f.to_ndarray(format="bgr24")))
    return out


def detect_all(detector: FacePersonDetector, frames: list[Frame]) -> tuple[list[list[PersonDetection]], list[float]]:
    found, seconds = [], []
    for frame in frames:
        start = time.perf_counter()
        found.append(detector.detect(frame.image))
        seconds.append(time.perf_counter() - start)
    return found, seconds


def track(kind: str, interval: int, found, seconds, frames: list[Frame]):  # type: ignore[no-untyped-def]
    """Ids per frame and the detect/track cost, replaying the cached detections."""
    # With detections 3 frames apart, deep-sort's IoU gate (IoU >= 0.3) needs loosening; ByteTrack's (0.1) is.
    loose = {"max_iou_distance": 0.9} if kind == "deepsort" and interval > 1 else {}
    tracker = build_tracker(TrackerConfig(kind=kind, **loose), detection_interval=interval)
    cursor = {"i": 0, "det_s": 0.0}

    class Cached:
        def detect(self, image: np.ndarray) -> list[PersonDetection]:
            cursor["det_s"] += seconds[cursor["i"]]
            return found[cursor["i"]]

        def describe(self) -> str:
            return "cached"

        def close(self) -> None:
            pass

    stage = DetectTrackStage(Cached(), tracker, interval=interval)  # type: ignore[arg-type]
    tracked, track_s = {}, 0.0
    for frame in frames:
        cursor["i"] = frame.index
        start = time.perf_counter()
        out = stage.process(frame)
        track_s += time.perf_counter() - start  # the cached detection itself costs nothing here
        tracked[frame.index] = [(p.track_id, p.body_box) for p in out.persons]
    return tracked, cursor["det_s"], track_s


def pipeline_run(frames: int, interval: int, out_dir: Path) -> tuple[float, Path]:
    config = AppConfig(
        source=SourceConfig(spec=str(CLIP), max_frames=frames),
        detector=replace(DetectorConfig(), interval=interval, allow_download=False),
        sink=replace(SinkConfig(), out_dir=str(out_dir / f"k{interval}"), video=False, jsonl=True),
    )
    analyzer = Analyzer(config)
    start = time.perf_counter()
    report = analyzer.run(config.source.spec)
    elapsed = time.perf_counter() - start
    return report.sources[0].frames / elapsed, out_dir / f"k{interval}" / f"{CLIP.stem}.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    if not CLIP.exists() or not GT.exists():
        print(f"needs {CLIP} and {GT}")
        return 1
    frames = decode(args.frames)
    gt = read_mot_gt(GT, SCALE, len(frames))
    faces = MtcnnFaceDetector()
    detectors: dict[str, FacePersonDetector] = {
        "hog (1x)": FacePersonDetector(faces, HogPeopleDetector(max_side=0, tighten=False)),
        "hog 2x + tightened": FacePersonDetector(faces, HogPeopleDetector(max_side=0, upscale=2.0, tighten=True)),
    }
    default = build_detector(DetectorConfig(allow_download=False))
    runtime = getattr(default.bodies, "runtime", "torch")
    detectors[f"default ({default.bodies.name if default.bodies else 'none'}, {runtime})"] = default
    if runtime != "torch":  # the same detectors in our PyTorch interpreter: what the runtime changes
        detectors["default, torch runtime"] = build_detector(DetectorConfig(allow_download=False, runtime="torch"))
    if isinstance(default.bodies, CenterNetPeopleDetector):
        # The same CenterNet with its near-duplicate boxes kept: what merging them costs a crowd, if anything.
        unmerged = copy.copy(default.bodies)
        unmerged.nms_iou = 1.0
        detectors["centernet, unmerged"] = FacePersonDetector(default.faces, unmerged)
    scrfd = (
        build_detector(DetectorConfig(person="insightface", face="mtcnn", allow_download=False))
        if (Path("~/.insightface/models/scrfd_person_2.5g.onnx").expanduser().exists())
        else None
    )
    if scrfd is not None:
        detectors["insightface scrfd_person"] = scrfd
    print(f"PETS09-S2L1, {len(frames)} frames, {sum(len(v) for v in gt.values())} GT boxes; faces: MTCNN in every row")
    print(
        f"{'detector':<24}{'tracker':<11}{'k':>2}  {'MOTA':>6} {'IDF1':>6} {'IDsw':>5} {'recall':>7} {'prec':>6}"
        f"  {'det ms':>7} {'track ms':>8} {'fps':>6}"
    )
    for name, detector in detectors.items():
        found, seconds = detect_all(detector, frames)
        hits = sum(match_counts([b for _, b in gt.get(i, [])], [p.body_box for p in f]) for i, f in enumerate(found))
        n_found, n_gt = sum(len(f) for f in found), sum(len(v) for v in gt.values())
        print(
            f"{name:<24}{'(raw)':<11}{'':>2}  {'':>6} {'':>6} {'':>5} {hits / n_gt:7.3f} {hits / max(n_found, 1):6.3f}"
            f"  {1000 * np.mean(seconds):7.1f}"
        )
        for kind in ("deepsort", "bytetrack"):
            for interval in (1, 3):
                tracked, det_s, track_s = track(kind, interval, found, seconds, frames)
                s = score(gt, tracked, range(len(frames)))
                n = len(frames)
                print(
                    f"{'':<24}{kind:<11}{interval:>2}  {s.mota:6.1%} {s.idf1:6.1%} {s.id_switches:5d} "
                    f"{s.recall:7.3f} {s.precision:6.3f}  {1000 * det_s / n:7.1f} {1000 * track_s / n:8.2f} "
                    f"{n / (det_s + track_s):6.1f}"
                )
    if args.skip_pipeline:
        return 0
    print("\nwhole pipeline (default config, emotion model included, JSONL only):")
    with tempfile.TemporaryDirectory() as tmp:
        fps = {}
        for interval in (1, 2, 3):
            fps[interval], jsonl = pipeline_run(len(frames), interval, Path(tmp))
            s = score(gt, read_jsonl_tracks(jsonl), range(len(frames)))
            print(f"  interval {interval}: {fps[interval]:5.1f} fps   {s.line()}")
        print(
            f"  interval 2 / interval 1: {fps[2] / fps[1]:.2f}x fps, interval 3 / interval 1: {fps[3] / fps[1]:.2f}x fps"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
