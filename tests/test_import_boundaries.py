"""Dependencies point one way: run_stream.py -> streamer -> {trackers, cocoer_core}; cocoer_core stands alone."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT


def _imported_packages(package: str) -> dict[str, set[str]]:
    """Per module of `package`: the top-level packages it imports (anywhere in the file, lazy imports too)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        pytest.param("cocoer_core", {"streamer", "trackers", "run_stream"}, id="cocoer_core-stands-alone"),
        pytest.param("trackers", {"streamer", "run_stream"}, id="trackers-never-import-streamer"),
        pytest.param("streamer", {"run_stream"}, id="streamer-never-imports-the-cli"),
    ],
)
def test_no_import_points_back_up(package: str, forbidden: set[str]) -> None:
    offenders = {
        module: names & forbidden for module, names in _imported_packages(package).items() if names & forbidden
    }
    assert not offenders, f"{package} imports {offenders}"


def test_the_checker_sees_lazy_imports() -> None:
    """streamer imports trackers lazily in places: the checker must see those too (or the test above proves little)."""
    assert any("trackers" in names for names in _imported_packages("streamer").values())
    assert "cocoer_core" in _imported_packages("streamer")["streamer/emotion.py"]


def test_the_default_path_never_imports_ray() -> None:
    """Ray is only for --backend ray: the CLI, the app and the local backend load without it."""
    import subprocess
    import sys

    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import run_stream, streamer.app, streamer.backends.local, streamer.report; "
        "print('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
