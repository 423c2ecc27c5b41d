"""One person, one track: persons per frame and distinct track ids against the true counts.

    python bench/person_counts.py [--frames 300] [--every 1]

On the shared clips whose number of people is known and constant (one
person close to the camera, two side by side), runs the default
detect+track stage (run_stream's default config) on every decoded frame up
to `--frames` and prints, per clip: frames, the true count, mean tracked
persons per frame and its ratio to the truth, frames with the wrong count,
and distinct track ids (ideal: the true count). A person who leaves and
comes back may rightly get a new id; these clips have no such exit.
"""

from __future__ import annotations

import argparse
import time

import av
from common import MEDIA, ROOT

from streamer.backends.assembly import detect_track_stage_for
from streamer.config import load_config
from streamer.detectors import build_detector
from streamer.sources import SourceKind
from streamer.types import Frame

#: Clip -> the number of people in every frame (../shared/media/SOURCES.md).
CLIPS = {
    "face_selfie_expressions.mp4": 1,
    "face_man_smiling_short.mp4": 1,
    "face_expressive_liveportrait_d9.mp4": 1,
    "face_woman_talking_pexels.mp4": 1,
    "face_woman_talking_shutterstock_preview.mp4": 1,
    "face_man_head_pose.mp4": 1,
    "face_woman_head_pose.mp4": 1,
    "faces_two_people_head_pose.mp4": 2,
}


def count(clip: str, frames: int, config_overrides: list[str]) -> tuple[int, float, int, int, float]:
    """(frames, mean persons per frame, frames with the wrong count, distinct ids, seconds per frame)."""
    config = load_config(ROOT / "configs" / "default.yaml", ["detector.allow_download=false", *config_overrides])
    stage = detect_track_stage_for(config, build_detector(config.detector), SourceKind.FILE, config.source, "cpu")
    truth = CLIPS[clip]
    persons, wrong, ids, seconds, n = 0, 0, set(), 0.0, 0
    with av.open(str(MEDIA / clip)) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            if i >= frames:
                break
            frame = Frame(clip, i, float(decoded.time or 0.0), time.monotonic(), decoded.to_ndarray(format="bgr24"))
            start = time.perf_counter()
            tracked = stage.process(frame)
            seconds += time.perf_counter() - start
            persons += len(tracked.persons)
            wrong += len(tracked.persons) != truth
            ids.update(p.track_id for p in tracked.persons)
            n += 1
    return n, persons / max(n, 1), wrong, len(ids), seconds / max(n, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="at most this many frames per clip")
    parser.add_argument("--set", action="append", default=[], help="config override, as run_stream.py --set")
    args = parser.parse_args()
    print(
        f"{'clip':44} {'frames':>6} {'true':>4} {'persons/fr':>10} {'ratio':>6} {'wrong fr':>8} {'ids':>4} {'ms/fr':>6}"
    )
    ratios = []
    for clip, truth in CLIPS.items():
        if not (MEDIA / clip).exists():
            print(f"{clip:44} (not in {MEDIA})")
            continue
        n, mean, wrong, ids, spf = count(clip, args.frames, args.set)
        ratios.append(mean / truth)
        print(f"{clip:44} {n:6d} {truth:4d} {mean:10.2f} {mean / truth:6.2f} {wrong:8d} {ids:4d} {spf * 1000:6.0f}")
    if ratios:
        print(
            f"worst persons-per-frame ratio: {max(ratios, key=lambda r: abs(r - 1)):.2f} (ideal 1.00, within 0.95-1.05)"
        )


if __name__ == "__main__":
    main()
