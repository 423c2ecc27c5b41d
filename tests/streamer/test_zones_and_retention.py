"""Zones (masked, ignored) on real frames and detections; retention's manifest: only its own files go."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.backends.assembly import zones_for
from streamer.config import load_config
from streamer.detectors.faces import MtcnnFaceDetector
from streamer.errors import UserError
from streamer.privacy.declaration import video_tags
from streamer.privacy.retention import IN_USE_S, MANIFEST, RetentionKeeper, manifest_for, parse_age, parse_bytes, sweep
from streamer.privacy.zones import MASK_BGR, ZoneFilter, parse_zones
from streamer.sources.entries import entries_from_file
from streamer.types import Box, Frame
from tests.conftest import ROOT, media_file

CLIP = "faces_two_people_head_pose.mp4"  # 480x270: one face left (x < 140), one right (x > 290)
LEFT = [[0, 0], [0.45, 0], [0.45, 1], [0, 1]]


def _frame(shared_media: Path) -> Frame:
    with av.open(str(media_file(shared_media, CLIP))) as container:
        image = next(container.decode(video=0)).to_ndarray(format="bgr24")
    return Frame("clip", 0, 0.0, 0.0, image)


def test_a_masked_zone_is_flat_and_its_face_is_gone_before_detection(shared_media: Path) -> None:
    frame = _frame(shared_media)
    faces = MtcnnFaceDetector()
    assert len(faces.detect(frame.image)) == 2, "the input shows both faces"
    original = frame.image.copy()
    masked = ZoneFilter(parse_zones([LEFT], "privacy.mask")).masked(frame)
    left = masked.image[:, : int(0.45 * 480) - 1]
    assert (left == np.array(MASK_BGR, np.uint8)).all(), "every pixel of the zone is the mask colour"
    assert np.array_equal(masked.image[:, 218:], original[:, 218:]), "the rest is untouched"
    assert np.array_equal(frame.image, original), "the decoder's buffer is left alone"
    found = faces.detect(masked.image)
    assert len(found) == 1 and found[0].box.x1 > 200, "only the face outside the zone is found"


def test_pixel_and_fraction_zones_agree_and_ignore_is_by_box_centre() -> None:
    pixels = ZoneFilter(ignore=parse_zones([[[240, 0], [480, 0], [480, 270], [240, 270]]], "analysis.ignore"))
    fractions = ZoneFilter(ignore=parse_zones([[[0.5, 0], [1, 0], [1, 1], [0.5, 1]]], "analysis.ignore"))
    for zones in (pixels, fractions):
        assert zones.ignores(Box(300, 50, 400, 200), 480, 270)
        assert not zones.ignores(Box(30, 50, 140, 200), 480, 270)
        assert not zones.ignores(Box(150, 50, 320, 200), 480, 270), "centre x 235: outside"
    assert fractions.ignores(Box(1000, 0, 1200, 500), 1280, 720), "a fraction zone fits any resolution"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[[[0,0],[1,0]]]", "zone 1 must be a list of 3"),
        ("[[[0,0],[1,0],[-1,1]]]", "x, y >= 0"),
        ("[[[0,0],[1,0],[1,x]]]", "x, y >= 0"),
        ("5", "must be a list"),
    ],
)
def test_a_bad_zone_is_one_line_naming_the_key(value: str, message: str) -> None:
    for key in ("privacy.mask", "analysis.ignore"):
        with pytest.raises(UserError, match=rf"{key}.*{message}"):
            load_config(ROOT / "configs" / "default.yaml", [f"{key}={value}"])


def test_a_sources_file_adds_its_own_zones_to_the_runs(tmp_path: Path) -> None:
    listing = tmp_path / "cams.yaml"
    listing.write_text(
        "sources:\n"
        "  - {name: door, spec: demo, mask: [[[0, 0], [100, 0], [100, 100]]], ignore: [[[0.5, 0], [1, 0], [1, 1]]]}\n"
        "  - {name: hall, spec: demo}\n"
    )
    config = load_config(ROOT / "configs" / "default.yaml", ["privacy.mask=[[[0.9,0.9],[1,0.9],[1,1]]]"])
    door, hall = entries_from_file(listing, config.source)
    assert len(zones_for(config, door.config).mask) == 2 and len(zones_for(config, door.config).ignore) == 1
    assert len(zones_for(config, hall.config).mask) == 1 and not zones_for(config, hall.config).ignore
    tags = json.loads(video_tags(config, zones_for(config, door.config))["description"])
    assert tags["privacy"]["masked_zones"] == 2, "a video's metadata counts its source's own zones too"
    listing.write_text("- {spec: demo, mask: [[[0, 0], [1, 0]]]}\n")
    with pytest.raises(UserError, match=r"cams.yaml, source 1: source.mask zone 1"):
        entries_from_file(listing, config.source)


def test_faces_off_is_off_in_yaml_and_on_the_command_line(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("privacy:\n  faces: off\n")  # YAML 1.1 reads a bare off as false
    assert load_config(config_file).privacy.faces == "off"
    assert load_config(None, ["privacy.faces=off"]).privacy.faces == "off"


def test_durations_and_sizes_parse_and_bad_ones_name_the_key() -> None:
    assert parse_age("7d") == 7 * 86400 and parse_age("90s") == 90 and parse_age("") is None
    assert parse_bytes("50GB") == 50 * 10**9 and parse_bytes("2MiB") == 2 * 2**20 and parse_bytes("") is None
    for key, value in (("retention.max_age", "7 days"), ("retention.max_bytes", "-5MB")):
        with pytest.raises(UserError, match=key):
            load_config(None, [f"{key}={value}"])


def _aged(path: Path, seconds_ago: float, size: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = time.time() - seconds_ago
    os.utime(path, (stamp, stamp))
    return path


def test_retention_deletes_only_listed_files_past_their_age(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old = _aged(out / "old.mp4", 10 * 86400)
    old_csv = _aged(out / "old_persons" / "track_1.csv", 10 * 86400)
    young = _aged(out / "young.jsonl", 3600)
    mine_but_busy = _aged(out / "live.jsonl", 1)
    stranger = _aged(out / "holiday.mp4", 30 * 86400)  # the user's own file, in the same folder
    outside = _aged(tmp_path / "elsewhere.txt", 30 * 86400)
    manifest_for(out).add([old, old_csv, young, mine_but_busy, stranger.parent / "gone.mp4", outside])
    with (out / MANIFEST).open("a") as handle:  # a damaged or hostile manifest
        handle.write('{"path": "../elsewhere.txt"}\n{"path": "/etc/hostname"}\nnot json\n')
    swept = sweep(out, parse_age("7d"), None)
    assert swept.files == 2 and not old.exists() and not old_csv.exists() and not old_csv.parent.exists()
    assert young.exists() and mine_but_busy.exists() and stranger.exists() and outside.exists()
    listed = [json.loads(line)["path"] for line in (out / MANIFEST).read_text().splitlines()]
    assert sorted(listed) == ["live.jsonl", "young.jsonl"], "the manifest lists what is left"


def test_retention_keeps_the_folder_under_its_budget_oldest_first(tmp_path: Path) -> None:
    files = [_aged(tmp_path / f"seg_{k}.mp4", 3600 * (10 - k), size=1000) for k in range(10)]
    busy = _aged(tmp_path / "seg_now.mp4", IN_USE_S / 4, size=5000)
    stranger = _aged(tmp_path / "notes.txt", 99 * 86400, size=1000)
    manifest_for(tmp_path).add([*files, busy])
    keeper = RetentionKeeper(tmp_path, "", "8kB", every_s=3600).start()
    keeper.stop()
    assert [f.exists() for f in files] == [False] * 7 + [True] * 3, "the oldest go first"
    assert busy.exists() and stranger.exists()
    assert sum(f.stat().st_size for f in [*files, busy] if f.exists()) <= 8000
