"""Files replaced whole or not at all: written under a temporary name beside them, then moved into place.

A reader (another process, a browser reloading a page, the next run) never
sees half a file, and a write cut short (a full disk, an exception) leaves
the old file as it was and no partial copy beside it. Every output that is
rewritten rather than appended to goes through `replaced_whole`: exports and
their sidecars, run.json, metrics.json, reports, the retention manifest,
training state and evaluation results.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

#: A temporary file untouched this long whose writer is not running here was left by a killed one...
ABANDONED_S = 60.0
#: ...and one untouched this long is, whoever wrote it (a writer on another machine sharing the folder).
FORGOTTEN_S = 86400.0
#: The part of a temporary name that says who writes it: process id, then thread id (older names: the process).
_WRITER = re.compile(r"(\d+)(?:-\d+)?")


@contextlib.contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to: moved onto `path` if the block ends normally, else removed.

    The name holds the writer's process and thread (processes and threads
    sharing a cache folder may export at once). A writer killed mid-write
    (SIGKILL, power loss) leaves its file behind, up to half a gigabyte for
    CocoER: such leftovers of `path` are removed first.
    """
    with scratch_beside(path) as tmp:
        yield tmp
        os.replace(tmp, path)


@contextlib.contextmanager
def scratch_beside(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` (as `replaced_whole` gives), removed when the block ends however it ends:
    for what is needed only on the way to `path` (a downloaded archive that one file is taken from)."""
    remove_leftovers(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield tmp
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
        gone = not writer_running(int(writer.group(1)))
        if (gone and idle > ABANDONED_S) or idle > FORGOTTEN_S:
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed.append(leftover)
    return removed


def writer_running(pid: int) -> bool:
    """Whether a process with this id runs on this machine (ours included): a writer still at work."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):  # PermissionError among them
        return True  # another user's process, or not ours to ask: assume it is writing
    return True


def write_text_whole(path: Path, text: str) -> None:
    """`text` as the whole of `path` (UTF-8); OSError when it can't be written, with `path` left as it was."""
    with replaced_whole(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
