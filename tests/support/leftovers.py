"""What a writer killed mid-way leaves: the id of a process that has ended, and files aged as if long untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def ended_pid() -> int:
    """The id of a process that ran here and has ended (a killed writer's, as far as anyone can tell)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def age(path: Path, seconds: float) -> None:
    """`path`, and everything under it if a folder, last written `seconds` ago."""
    then = time.time() - seconds
    for each in (path, *path.rglob("*")) if path.is_dir() else (path,):
        os.utime(each, (then, then))
