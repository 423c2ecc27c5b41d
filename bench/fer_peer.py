"""The peer a webcam user would pick: the `fer` package against our default run, on one face at 640x360.

    python bench/fer_peer.py --fer-python /path/to/fer-venv/bin/python [--video NAME]

`fer` (FER2013 mini-Xception on MTCNN faces; it needs TensorFlow, so it
lives in its own venv: `python3 -m venv fer-venv && fer-venv/bin/pip install
fer`) analyses each decoded frame of the clip with `FER(mtcnn=True)
.detect_emotions`, in its process, with nothing written. Ours runs the whole
pipeline on the same file (decode, detect, track, emotion, overlay, H.264
and JSONL written) as `run_stream.py --source FILE` does: every frame
(`detector.interval` 1, a file's default), and as a live camera gets it
(interval 2, where `auto` starts on a live source before it adapts to the
machine: 2-3 for this clip on 2 cores), and so with faces only
(`detector.person: none`, as fer: no person detector). Prints frames per second
of each and the ratio to fer, and how many frames each found a face in.
Model loading is not timed on either side (fer: its first frame is not timed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import MEDIA, device_name

from streamer.api import Analyzer
from streamer.config import load_config

#: Run in fer's venv: prints {"frames", "seconds", "with_face"} for every frame after the first.
FER_SCRIPT = """
import json, sys, time
sys.modules["triton"] = None  # torch's optional GPU compiler segfaults on import beside TensorFlow; fer needs none
import cv2
from fer.fer import FER  # 25.x: the package no longer re-exports it

detector = FER(mtcnn=True)
capture = cv2.VideoCapture(sys.argv[1])
frames = []
while True:
    ok, image = capture.read()
    if not ok:
        break
    frames.append(image)
detector.detect_emotions(frames[0])  # loads and warms the models: not timed, as our model loading is not
start = time.perf_counter()
with_face = sum(bool(detector.detect_emotions(image)) for image in frames[1:])
print(json.dumps({"frames": len(frames) - 1, "seconds": time.perf_counter() - start, "with_face": with_face}))
"""


def fer_run(python: str, video: Path) -> dict:
    done = subprocess.run([python, "-c", FER_SCRIPT, str(video)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"fer failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def our_run(video: Path, overrides: list[str], out_dir: str) -> dict:
    config = load_config(None, [f"source.spec={video}", "detector.allow_download=false", *overrides])
    config.sink.out_dir = out_dir
    config.sink.report = False
    times: list[float] = []
    faces = {"n": 0}

    def observe(record) -> None:  # type: ignore[no-untyped-def]
        times.append(time.perf_counter())
        faces["n"] += any(p.head_box is not None for p in record.persons)

    Analyzer(config).run(config.source.spec, on_frame=observe)
    # From the first frame's output to the last: model loading and the first frame are not timed.
    return {"frames": len(times) - 1, "seconds": times[-1] - times[0], "with_face": faces["n"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fer-python", required=True, help="the python of a venv with `fer` installed")
    parser.add_argument("--video", default="face_woman_talking_pexels.mp4", help="a clip in ../shared/media")
    args = parser.parse_args()
    video = MEDIA / args.video
    if not Path(args.fer_python).is_file() or not video.is_file():
        print(f"cannot run: {args.fer_python} or {video} is missing", file=sys.stderr)
        return 2
    print(f"{args.video}, device={device_name('auto')}")
    fer = fer_run(args.fer_python, video)
    rows = [("fer (detect_emotions per frame)", fer)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in (
            ("ours, every frame (a file's default)", []),
            ("ours, as a live camera (interval 2)", ["detector.interval=2"]),
            ("ours, live, faces only (as fer)", ["detector.interval=2", "detector.person=none"]),
        ):
            rows.append((name, our_run(video, overrides, tempfile.mkdtemp(dir=tmp))))
    fer_fps = fer["frames"] / fer["seconds"]
    for name, row in rows:
        fps = row["frames"] / row["seconds"]
        print(f"  {name:<40} {fps:5.1f} fps  {fps / fer_fps:4.2f}x fer  face in {row['with_face']}/{row['frames'] + 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
