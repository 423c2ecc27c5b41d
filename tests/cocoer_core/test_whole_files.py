"""Files replaced whole: a write cut short changes nothing; what a killed writer left is removed, nothing else is."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cocoer_core.whole_files import remove_leftovers, replaced_whole, write_text_whole


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
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(dead.stdout)  # a process that has ended
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
