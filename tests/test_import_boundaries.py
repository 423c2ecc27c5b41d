"""Dependencies point one way: run_stream.py -> streamer -> {trackers, cocoer_core}; cocoer_core stands alone.

Inside `streamer` they follow the path of a frame: sources, then detectors, stages, outputs, view, report,
backends, and the API on top; a package imports only from its own layer and the ones below it.
"""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

#: streamer's packages, lowest first; modules at streamer's top level (types, config, errors, ...) are layer 0.
LAYERS = ["sources", "detectors", "stages", "outputs", "view", "report", "backends", "api", "tools"]


def _imports(package: str, qualified: bool = False) -> dict[str, set[str]]:
    """Per module of `package`: what it imports (anywhere in the file, lazy imports too).

    Top-level package names, or with `qualified` the full dotted module names.
    """
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name if qualified else alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if qualified:
                    names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
                else:
                    names.add(node.module.split(".")[0])
        found[path.relative_to(ROOT).as_posix()] = names
    return found


def _layer(dotted_or_path: str) -> int:
    parts = dotted_or_path.removesuffix(".py").replace("/", ".").split(".")
    name = parts[1] if len(parts) > 1 else ""
    if parts == ["streamer", "__init__"]:  # the package's front door re-exports the API's names
        name = "api"
    return LAYERS.index(name) + 1 if name in LAYERS else 0


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        pytest.param("cocoer_core", {"streamer", "trackers", "run_stream"}, id="cocoer_core-stands-alone"),
        pytest.param("trackers", {"streamer", "run_stream"}, id="trackers-never-import-streamer"),
        pytest.param("streamer", {"run_stream"}, id="streamer-never-imports-the-cli"),
    ],
)
def test_no_import_points_back_up(package: str, forbidden: set[str]) -> None:
    offenders = {module: names & forbidden for module, names in _imports(package).items() if names & forbidden}
    assert not offenders, f"{package} imports {offenders}"


def test_inside_streamer_imports_follow_the_path_of_a_frame() -> None:
    offenders = {}
    for module, names in _imports("streamer", qualified=True).items():
        own = _layer(module)
        up = sorted(name for name in names if name.startswith("streamer.") and _layer(name) > own)
        if up:
            offenders[module] = up
    assert not offenders, f"imports that point up the layers {LAYERS}: {offenders}"


def test_the_checker_sees_lazy_and_upward_imports() -> None:
    """The checks above prove little unless they see lazy imports and would flag an upward one."""
    assert any("trackers" in names for names in _imports("streamer").values())
    assert "cocoer_core" in _imports("streamer")["streamer/stages/models.py"]
    assert _layer("streamer.backends.local") > _layer("streamer/outputs/records.py") > _layer("streamer.sources")
    assert _layer("streamer.config") == 0 and _layer("streamer/api.py") == LAYERS.index("api") + 1


def test_the_default_path_never_imports_ray() -> None:
    """Ray is only for --backend ray: the CLI, the API and the local backend load without it."""
    import subprocess
    import sys

    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import run_stream, streamer.api, streamer.backends.local, "
        "streamer.report; print('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
