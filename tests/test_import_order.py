"""OpenCV is loaded before PyAV by every entry point.

The other order makes cv2.imshow hang forever (their bundled X libraries
clash, ENVIRONMENT.md); an import sorter once swapped them silently.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import sys
sys.path.insert(0, {root!r})
sys.argv = ["probe"]
import {module}
names = list(sys.modules)
assert "cv2" in names and "av" in names, "both should be loaded"
print(names.index("cv2") < names.index("av"))
"""


@pytest.mark.parametrize(
    "module",
    [
        "run_stream",
        "streamer.backends.assembly",
        "streamer.sources",
        "streamer.outputs",
        "streamer.report",
        "streamer.tools.infer",
    ],
)
def test_cv2_is_imported_before_av(module: str) -> None:
    code = PROBE.format(root=str(ROOT), module=module)
    if module == "streamer.tools.infer":  # it loads the pipeline's detectors (and so av) lazily
        code = code.replace(
            "import streamer.tools.infer", "import streamer.tools.infer, streamer.detectors, streamer.sources"
        )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
