"""Files replaced whole: a write cut short changes nothing; what a killed writer left is removed, nothing else is."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cocoer_core import whole_files
from cocoer_core.whole_files import remove_leftovers, replaced_whole, scratch_folder, write_text_whole
from tests.support.leftovers import age, ended_pid


def test_a_write_cut_short_leaves_the_old_file_and_nothing_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_text_whole(path, "old\n")
    with pytest.raises(OSError, match="No space left"), replaced_whole(path) as tmp:
        tmp.write_text("half a fi")
        raise OSError(28, "No space left on device")
    assert path.read_text() == "old\n" and list(tmp_path.iterdir()) == [path]
    write_text_whole(path, "new\n")
    assert path.read_text() == "new\n" and list(tmp_path.iterdir()) == [path]


def test_only_the_abandoned_temporary_files_of_that_export_are_removed(tmp_path: Path) -> None:
    gone = ended_pid()
    export = tmp_path / "cocoer.onnx"
    abandoned = [tmp_path / f".cocoer.onnx.{gone}-7.tmp", tmp_path / f".cocoer.onnx.{gone}.tmp"]
    kept = [
        tmp_path / f".cocoer.onnx.{os.getpid()}-1.tmp",  # a writer still running (this process)
        tmp_path / f".cocoer.onnx.data.{gone}-7.tmp",  # another file's
        tmp_path / f".baseline.onnx.{gone}-7.tmp",  # another export's
    ]
    fresh = tmp_path / f".cocoer.onnx.{gone}-8.tmp"  # written a moment ago: maybe a writer on another machine
    for file in [*abandoned, *kept]:
        file.write_bytes(b"partial")
        os.utime(file, (time.time() - 120, time.time() - 120))
    fresh.write_bytes(b"partial")
    assert sorted(remove_leftovers(export)) == sorted(abandoned)
    assert all(file.exists() for file in [*kept, fresh]) and not any(file.exists() for file in abandoned)
    for file in kept:
        os.utime(file, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    remove_leftovers(export)
    assert not kept[0].exists(), "two days untouched: forgotten, whoever wrote it"
    assert kept[1].exists() and kept[2].exists(), "never another file's"


def test_a_scratch_folder_is_removed_however_its_block_ends_and_a_killed_writers_is_cleared(tmp_path: Path) -> None:
    gone = ended_pid()
    abandoned = tmp_path / f".pkg-{gone}-7"
    (abandoned / "package" / "models").mkdir(parents=True)
    (abandoned / "package.tgz").write_bytes(b"half a tarball")
    kept = [
        tmp_path / f".pkg-{os.getpid()}-1",  # a writer still running (this process)
        tmp_path / f".other-{gone}-7",  # another download's
        tmp_path / ".pkg-notes",  # not a name scratch_folder gives
    ]
    fresh = tmp_path / f".pkg-{gone}-8"  # written a moment ago: maybe a writer on another machine
    for folder in kept:
        folder.mkdir()
        age(folder, 120)
    fresh.mkdir()
    (fresh / "package.tgz").write_bytes(b"arriving")
    age(abandoned, 120)
    os.utime(abandoned / "package" / "models", None)  # written deep inside a moment ago: still at work
    with scratch_folder(tmp_path, ".pkg-") as scratch:
        assert abandoned.exists(), "a file written a moment ago, however deep, keeps it"
    age(abandoned, 120)
    with pytest.raises(OSError, match="No space left"), scratch_folder(tmp_path, ".pkg-") as scratch:
        (scratch / "package.tgz").write_bytes(b"half")
        raise OSError(28, "No space left on device")
    assert not scratch.exists() and not abandoned.exists()
    assert all(folder.exists() for folder in [*kept, fresh])
    age(kept[0], 2 * 86400)
    with scratch_folder(tmp_path, ".pkg-"):
        pass
    assert not kept[0].exists(), "two days untouched: forgotten, whoever wrote it"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(path.name for path in [*kept[1:], fresh])


def test_a_folder_is_listed_for_leftovers_once_a_while_not_for_every_file_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Listed for every file, a run over a folder of N images (a JSON each) was O(N^2): 4.5 ms a write at 4,000
    # images and growing (bench/whole_writes.py).
    listed: list[str] = []
    scandir = os.scandir

    def counted(path):  # type: ignore[no-untyped-def]
        listed.append(str(path))
        return scandir(path)

    monkeypatch.setattr(whole_files.os, "scandir", counted)
    for n in range(50):
        write_text_whole(tmp_path / f"image_{n}.json", "{}")
    assert listed == [str(tmp_path)], "listed once for the 50 files"
    left = tmp_path / f".image_7.json.{ended_pid()}-1.tmp"  # a writer killed meanwhile
    left.write_text("{")
    age(left, 120)
    write_text_whole(tmp_path / "image_7.json", "{}")
    assert left.exists(), "seen at the next listing, not before"
    when, names = whole_files._listings[tmp_path]
    whole_files._listings[tmp_path] = (when - whole_files.LIST_EVERY_S, names)
    write_text_whole(tmp_path / "image_7.json", "{}")
    assert not left.exists() and len(listed) == 2


def test_a_path_that_is_a_folder_is_said_before_writing_naming_the_path(tmp_path: Path) -> None:
    # os.replace's error named the temporary file: "error: .../.model.onnx.123-456.tmp: Is a directory".
    folder = tmp_path / "model.onnx"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(IsADirectoryError) as raised, replaced_whole(folder) as tmp:
        tmp.write_text("never written")
    assert raised.value.filename == str(folder) and raised.value.strerror == "it is a folder"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["inside", "model.onnx"]
