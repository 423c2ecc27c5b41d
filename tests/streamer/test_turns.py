"""A folder of files runs `source.files_at_once` at a time: bounded threads and memory, names for the whole run.

Before, every file of a folder opened at once, each with its own threads, queues, decoder and encoder (~40 MB
each here): 40 short clips peaked at 2.6 GB, and a folder of a thousand would take more than the machine has.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from streamer import Analyzer
from streamer.backends import local
from streamer.backends.base import RunReport
from streamer.backends.turns import in_turns, run_in_turns
from streamer.config import SourceConfig
from streamer.sources.entries import SourceEntry
from tests.conftest import media_file

PHOTOS = {
    "a/face.png": "expr_happy_man.png",
    "b/face.png": "expr_sad_woman.png",  # the same stem as a/face.png: it must not replace its outputs
    "angry.png": "expr_angry_man.png",
    "portrait.jpg": "face_single_portrait.jpg",
    "selfie.jpg": "face_woman_selfie_office.jpg",
}


@pytest.fixture()
def photos(shared_media: Path, tmp_path: Path) -> list[str]:
    for name, photo in PHOTOS.items():
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(media_file(shared_media, photo), tmp_path / "in" / name)
    return [str(tmp_path / "in" / name) for name in PHOTOS]


def _opened_per_turn(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counts: list[int] = []
    real = local.open_sources

    def counted(entries: Sequence[SourceEntry]):  # type: ignore[no-untyped-def]
        counts.append(len(entries))
        return real(entries)

    monkeypatch.setattr(local, "open_sources", counted)
    return counts


def test_files_run_a_few_at_a_time_and_are_named_for_the_whole_run(
    photos: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = _opened_per_turn(monkeypatch)
    out = tmp_path / "out"
    analyzer = Analyzer(overrides=[f"sink.out_dir={out}", "source.files_at_once=2", "detector.allow_download=false"])
    report = analyzer.run(photos)
    assert turns == [2, 2, 1], "two at a time, in the order given"
    names = ["face", "face-2", "angry", "portrait", "selfie"]
    assert [done.name for done in report.sources] == names and not report.errors
    for name in names:
        written = json.loads((out / f"{name}.json").read_text())
        assert written["persons"], f"{name}: its face was analysed"
    assert json.loads((out / "face.json").read_text())["image"].endswith("a/face.png")
    assert json.loads((out / "face-2.json").read_text())["image"].endswith("b/face.png"), "not over a/face's"
    assert json.loads((out / "run.json").read_text())["sources"] == names, "run.json lists the whole run"


def test_a_stop_in_one_turn_starts_no_other_and_says_how_many_never_ran(
    photos: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = _opened_per_turn(monkeypatch)
    stop = threading.Event()
    analyzer = Analyzer(overrides=[f"sink.out_dir={tmp_path / 'out'}", "source.files_at_once=2"])
    report = analyzer.run(photos, stop=stop, on_frame=lambda record: stop.set())  # Ctrl+C at the first frame
    assert turns == [2] and report.interrupted and report.not_started == 3


def test_a_stop_as_a_turn_ends_starts_no_other(photos: list[str], tmp_path: Path) -> None:
    stop = threading.Event()
    ran: list[int] = []

    def run_turn(entries: Sequence[SourceEntry]) -> RunReport:  # a turn that ends normally, then Ctrl+C
        ran.append(len(entries))
        stop.set()
        return RunReport([])

    entries = [SourceEntry(photo, None, SourceConfig()) for photo in photos]
    report = run_in_turns(in_turns(entries, 2), run_turn, stop)
    assert ran == [2] and report.interrupted and report.not_started == 3


def test_only_a_run_of_local_files_goes_in_turns() -> None:
    files = [SourceEntry(f"/data/day{n}.mp4", None, SourceConfig()) for n in range(5)]
    assert [len(turn) for turn in in_turns(files, 2)] == [2, 2, 1]
    camera = SourceEntry("rtsp://10.0.0.5/live", None, SourceConfig())
    assert [len(turn) for turn in in_turns([*files, camera], 2)] == [6], "a live source never ends: all at once"
    assert [len(turn) for turn in in_turns(files, 0)] == [5] and [len(t) for t in in_turns(files, 8)] == [5]
