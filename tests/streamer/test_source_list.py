"""Which sources a run gets: repeated --source, globs, folders, and a sources file with per-source settings."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from streamer.config import SourceConfig
from streamer.errors import UserError
from streamer.sources import entries as entries_module
from streamer.sources.entries import entries_from_file, entries_from_specs, unique_names
from tests.conftest import media_file


@pytest.fixture()
def videos(shared_media: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("face_woman_head_pose.mp4", "face_man_head_pose.mp4", "group_five_friends.jpg"):
        shutil.copy(media_file(shared_media, name), folder / name)
    (folder / "notes.txt").write_text("not a video")
    return folder


def test_a_glob_and_a_folder_mean_every_video_in_them(videos: Path) -> None:
    by_glob = entries_from_specs([str(videos / "*.mp4")], SourceConfig())
    assert [Path(e.spec).name for e in by_glob] == ["face_man_head_pose.mp4", "face_woman_head_pose.mp4"]
    by_folder = entries_from_specs([str(videos)], SourceConfig())
    assert [Path(e.spec).name for e in by_folder] == [
        "face_man_head_pose.mp4",
        "face_woman_head_pose.mp4",
        "group_five_friends.jpg",
    ]
    assert entries_from_specs(["rtsp://cam/stream", "demo"], SourceConfig())[0].spec == "rtsp://cam/stream"
    with pytest.raises(UserError, match="no videos or images match"):
        entries_from_specs([str(videos / "*.mkv")], SourceConfig())


def test_a_sources_file_gives_names_and_per_source_settings(videos: Path, tmp_path: Path) -> None:
    listing = tmp_path / "cameras.yaml"
    listing.write_text(
        "sources:\n"
        "  - {name: lobby, spec: 'rtsp://user:pw@127.0.0.1:9/stream', rtsp_transport: udp, read_timeout_s: 9}\n"
        f"  - {videos / 'face_man_head_pose.mp4'}\n"
        f"  - spec: '{videos}/*.mp4'\n"
        "    max_frames: 5\n"
    )
    base = SourceConfig(read_timeout_s=2.0)
    entries = entries_from_file(listing, base)
    assert [e.name for e in entries] == ["lobby", None, None, None]
    assert entries[0].config.rtsp_transport == "udp" and entries[0].config.read_timeout_s == 9
    assert entries[1].config == SourceConfig(read_timeout_s=2.0, spec=entries[1].spec)
    assert [e.config.max_frames for e in entries[2:]] == [5, 5]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("- {name: x}\n", "source 1: needs a 'spec'", id="no-spec"),
        pytest.param("- {spec: demo, rtsp_transprt: udp}\n", "source 1: Key 'rtsp_transprt' not in", id="typo"),
        pytest.param("- {spec: demo, max_frames: -1}\n", "source 1: source.max_frames must be >= 0", id="bad-value"),
        pytest.param("sources: {a: 1}\n", "must hold a non-empty list", id="not-a-list"),
        pytest.param("- [demo\n", "is not valid YAML", id="bad-yaml"),
    ],
)
def test_a_bad_sources_file_is_one_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    listing = tmp_path / "bad.yaml"
    listing.write_text(text)
    with pytest.raises(UserError, match=None) as raised:
        entries_from_file(listing, SourceConfig())
    assert needle in str(raised.value) and str(listing) in str(raised.value)


def test_output_names_are_unique() -> None:
    assert unique_names(["clip", "clip", "cam", "clip", "clip-2"]) == ["clip", "clip-2", "cam", "clip-3", "clip-2-2"]


BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{before}'] * 9) if before else ', '.join(['lol'] * 9)}]\n"
    for before, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def test_a_sources_file_that_aliases_expand_to_billions_is_refused_at_once(tmp_path: Path) -> None:
    # Ten lines of YAML aliases (9^9 values once expanded) as one camera's mask: building its settings ran for
    # minutes, holding the CPU, before any error.
    listing = tmp_path / "cameras.yaml"
    listing.write_text(BILLION_LAUGHS + "sources:\n  - {spec: demo, mask: *i}\n")
    started = time.monotonic()
    with pytest.raises(UserError) as raised:
        entries_from_file(listing, SourceConfig())
    assert str(raised.value) == (
        f"sources file {listing} repeats itself through YAML aliases beyond 10x its own size "
        "(a 'billion laughs'): refusing it"
    )
    assert time.monotonic() - started < 5


def test_settings_shared_by_many_sources_through_an_alias_are_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(entries_module, "ALIAS_FLOOR", 100)  # the growth rule, not the floor, decides here
    cameras = "".join(f"  - {{<<: *common, spec: 'rtsp://10.0.0.{n}/live', mask: *door}}\n" for n in range(60))
    listing = tmp_path / "cameras.yaml"
    listing.write_text(
        "common: &common {rtsp_transport: udp, read_timeout_s: 10, keep_tracks_s: 3}\n"
        "door: &door [[[0.1, 0.1], [0.3, 0.1], [0.3, 0.9], [0.1, 0.9]]]\nsources:\n" + cameras
    )
    entries = entries_from_file(listing, SourceConfig())
    assert len(entries) == 60 and all(e.config.rtsp_transport == "udp" and e.config.mask for e in entries)


def test_many_sources_of_one_name_are_numbered_in_order() -> None:
    names = unique_names(["frame"] * 2000 + ["frame-7", "frame"])
    assert names[:3] == ["frame", "frame-2", "frame-3"] and names[1999] == "frame-2000"
    assert names[2000:] == ["frame-7-2", "frame-2001"] and len(set(names)) == 2002
