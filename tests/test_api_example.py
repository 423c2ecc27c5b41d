"""The README's Python API example, run as it is written (in a fresh folder, so its outputs land there)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- api-example:[^>]*-->\n```python\n(.*?)```", readme, re.S)
    assert found, "the README's API example is marked with <!-- api-example: ... -->"
    return found.group(1)


def test_the_readme_api_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(readme_example(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    looks = [line for line in lines if re.fullmatch(r"demo frame \d+: person \d+ looks \w+ \(\d+%\)", line)]
    assert len(looks) >= 40, "the demo's astronaut is analysed in most of its 50 frames"
    assert lines[-1].startswith("wrote [") and "demo.mp4" in lines[-1] and "demo.jsonl" in lines[-1]
    assert (tmp_path / "results" / "demo.jsonl").is_file() and (tmp_path / "results" / "demo.html").is_file()
