"""The live window: shown under a (virtual) display, skipped cleanly without one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, media_file


@pytest.fixture()
def xvfb():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (.ci/run installs it)")
    display = ":97"
    process = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1280x720x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)
    if process.poll() is not None:
        pytest.skip("Xvfb did not start")
    yield display
    process.terminate()
    process.wait(timeout=10)


def _run(env: dict[str, str], tmp_path: Path, source: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_stream.py"),
            "--source",
            str(source),
            "--display",
            "--max-frames",
            "12",
            "--out",
            str(tmp_path),
            "--no-progress",
            "--set",
            "detector.allow_download=false",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.mark.integration
def test_display_window_under_xvfb(xvfb: str, shared_media: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DISPLAY": xvfb, "HF_HUB_OFFLINE": "1"}
    env.pop("WAYLAND_DISPLAY", None)
    done = _run(env, tmp_path, media_file(shared_media, "face_man_smiling_short.mp4"))
    assert done.returncode == 0, done.stderr
    assert "no display available" not in done.stderr
    assert len((tmp_path / "face_man_smiling_short.jsonl").read_text().splitlines()) == 12


@pytest.mark.integration
def test_no_display_runs_headless_with_a_warning(shared_media: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["HF_HUB_OFFLINE"] = "1"
    done = _run(env, tmp_path, media_file(shared_media, "face_man_smiling_short.mp4"))
    assert done.returncode == 0, done.stderr
    assert "no display available: running headless" in done.stderr
    assert len((tmp_path / "face_man_smiling_short.jsonl").read_text().splitlines()) == 12
