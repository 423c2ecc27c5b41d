"""The JSON file beside an exported model (`X.onnx` -> `X.json`): what it was made from, read and replaced whole.

Every export (CocoER, the face baseline, CenterNet per input size) writes the
settings it was made from there; it is used only while those still hold
(`is_current`). `speed_choice` adds the runtimes' timings to the same file.
Both files are written under a temporary name and moved into place
(`replaced_whole`), so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: A temporary file untouched this long whose writer is not running here was left by a killed one...
ABANDONED_S = 60.0
#: ...and one untouched this long is, whoever wrote it (a writer on another machine sharing the folder).
FORGOTTEN_S = 86400.0
#: The part of a temporary name that says who writes it: process id, then thread id (older names: the process).
_WRITER = re.compile(r"(\d+)(?:-\d+)?")


def sidecar_of(path: Path) -> Path:
    return path.with_suffix(".json")


def file_stamp(path: Path) -> dict[str, Any]:
    """A file as an export depends on it: name, size, modification time (a replaced file is noticed)."""
    stat = Path(path).stat()
    return {"file": Path(path).name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def write_sidecar(path: Path, data: dict[str, Any]) -> None:
    """Replace the sidecar whole (another process may be reading it); OSError when it can't be written."""
    with replaced_whole(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


@contextlib.contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to: moved onto `path` if the block ends normally, else removed.

    The name holds the writer's process and thread (processes and threads
    sharing a cache folder may export at once). A writer killed mid-write
    (SIGKILL, power loss) leaves its file behind, up to half a gigabyte for
    CocoER: such leftovers of `path` are removed first.
    """
    remove_leftovers(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_leftovers(path: Path) -> list[Path]:
    """Remove the temporary files of `path` that killed writers left (see ABANDONED_S); the ones removed."""
    removed = []
    now = time.time()
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        writer = _WRITER.fullmatch(leftover.name[len(path.name) + 2 : -len(".tmp")])
        if writer is None:
            continue  # not a name replaced_whole gives (another file's, say `X.onnx.data`)
        try:
            idle = now - leftover.stat().st_mtime
        except OSError:
            continue  # its writer has just moved it into place
        gone = not _running(int(writer.group(1)))
        if (gone and idle > ABANDONED_S) or idle > FORGOTTEN_S:
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed.append(leftover)
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this id runs on this machine (ours included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):  # PermissionError among them
        return True  # another user's process, or not ours to ask: assume it is writing
    return True


def is_current(path: Path, settings: dict[str, Any]) -> bool:
    """The export at `path` exists and its sidecar says it was made from these settings (other keys may follow)."""
    meta = read_sidecar(sidecar_of(path))
    return path.is_file() and all(meta.get(k) == v for k, v in settings.items())
