"""Shared fixtures: the real media folder, and the project root on sys.path."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["tests.support.servers"]  # the RTSP and HTTP server fixtures
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# OpenCV before PyAV, always (see ENVIRONMENT.md: the other order hangs cv2.imshow).
import cv2  # noqa: E402, F401

import av  # noqa: E402, F401

#: Real media lives next to the checkout, never inside it.
MEDIA = Path(os.environ.get("COCOER_MEDIA", ROOT.parent / "shared" / "media"))


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The `../shared/media` folder; tests that need it skip with a reason when it's absent."""
    if not MEDIA.is_dir():
        pytest.skip(f"real test media not found at {MEDIA} (set COCOER_MEDIA)")
    return MEDIA


def media_file(shared_media: Path, name: str) -> Path:
    path = shared_media / name
    if not path.is_file():
        pytest.skip(f"{name} is missing from {shared_media}")
    return path


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def _checkout_changes() -> set[str] | None:
    """What `git status` lists in the checkout (untracked files one by one), or None without git."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(done.stdout.splitlines()) if done.returncode == 0 else None


@pytest.fixture(scope="session", autouse=True)
def checkout_left_as_found() -> Iterator[None]:
    """Tests write under tmp_path only: a file left in the checkout (a server's key file written to its
    working folder, say) would go into the next commit. Ignored paths (recordings/, caches) are not listed."""
    before = _checkout_changes()
    yield
    after = _checkout_changes()
    if before is not None and after is not None:
        added = sorted(after - before)
        assert not added, f"the tests changed the checkout: {added}"


@pytest.fixture(scope="session")
def single_source_runs(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """Two shared clips, each alone through the CLI: what a many-source or Ray run must reproduce."""
    from tests.support.runs import single_source_runs as run

    return run(shared_media, tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="session")
def centernet_dir() -> Path:
    """The default person detector's files (`python -m streamer.tools.fetch_models`; `.ci/run` fetches them)."""
    from streamer.detectors.npm_models import DEFAULT_ROOT, ModelFilesUnavailable, ensure

    try:
        return ensure(DEFAULT_ROOT, allow_download=False)
    except ModelFilesUnavailable as exc:
        pytest.skip(f"CenterNet's files are not fetched: {exc}")


@pytest.fixture
def models_without_exports(centernet_dir: Path, tmp_path: Path) -> Path:
    """A `detector.models_dir` with CenterNet's files and a file where its ONNX exports' folder goes: every
    export fails, and the interpreter runs each input size."""
    models = tmp_path / "models"
    models.mkdir()
    (models / centernet_dir.name).symlink_to(centernet_dir)
    (models / "onnx").write_text("a file where the exports' folder goes")
    return models


@pytest.fixture(scope="session")
def pets09(shared_media: Path) -> tuple[list, dict]:
    """The first 60 frames of MOT15 PETS09-S2L1 (480x360) and their ground-truth boxes."""
    import threading

    from streamer.config import SourceConfig
    from streamer.sources import open_source
    from streamer.tools.mot import read_mot_gt

    clip = media_file(shared_media, "pedestrians_pets09_s2l1_480x360.avi")
    gt = read_mot_gt(media_file(shared_media, "pedestrians_pets09_s2l1_gt_1-400.txt"), scale=1.6, frames=60)
    frames = list(open_source(str(clip), SourceConfig(max_frames=60)).frames(threading.Event()))
    return frames, gt
