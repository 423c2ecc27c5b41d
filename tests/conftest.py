"""Shared fixtures: the real media folder, and the project root on sys.path."""

from __future__ import annotations

import os
import sys
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


@pytest.fixture(scope="session")
def single_source_runs(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """Two shared clips, each alone through the CLI: what a many-source or Ray run must reproduce."""
    from tests.support.runs import single_source_runs as run

    return run(shared_media, tmp_path_factory.mktemp("single"))
