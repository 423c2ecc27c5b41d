"""The status table (a row per source) and the display grid (every source in one window)."""

from __future__ import annotations

from pathlib import Path

import cv2

import numpy as np
from rich.console import Console

from streamer.view.display import grid
from streamer.view.progress import SourceStatus, StatusTable
from tests.conftest import media_file


def test_the_status_table_has_a_row_per_source_with_its_figures() -> None:
    rows = [
        SourceStatus("lobby", "running", 120, None, 24.5, 3, 17, 2),
        SourceStatus("day1", "done", 341, 341, 6.2, 0, 0, 0),
    ]
    console = Console(record=True, width=120)
    console.print(StatusTable.render(rows))
    text = console.export_text()
    lobby = next(line for line in text.splitlines() if line.startswith("lobby"))
    assert lobby.split() == ["lobby", "running", "120", "24.5", "3", "17", "2"]
    assert "341/341" in text


def test_the_table_is_printed_once_when_not_on_a_terminal() -> None:
    console = Console(record=True, width=100, force_terminal=False)
    with StatusTable(console) as table:
        table.update([SourceStatus("cam", "running", 1, None, 1.0, 0, 0, 0)])
        table.update([SourceStatus("cam", "done", 9, None, 2.0, 1, 0, 0)])
    lines = [line for line in console.export_text().splitlines() if line.startswith("cam")]
    assert len(lines) == 1 and "done" in lines[0]


def test_the_grid_shows_every_source_in_its_own_tile(shared_media: Path) -> None:
    a = cv2.imread(str(media_file(shared_media, "group_five_friends.jpg")))
    b = cv2.imread(str(media_file(shared_media, "expr_happy_man.png")))
    canvas = grid([a, None, b], size=(640, 480))
    assert canvas.shape == (480, 640, 3)
    tiles = [canvas[:240, :320], canvas[:240, 320:], canvas[240:, :320]]
    assert tiles[0].std() > 20 and tiles[1].max() == 0 and tiles[2].std() > 20, "two pictures, one black (no frame yet)"
    ys, xs = np.nonzero(tiles[2].max(axis=2) > 0)
    shown_w, shown_h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert shown_h == 240 and abs(shown_w / shown_h - b.shape[1] / b.shape[0]) < 0.02, "scaled to fit, aspect kept"
