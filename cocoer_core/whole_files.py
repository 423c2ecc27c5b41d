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
import errno
import glob
import os
import re
import shutil
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
    if path.is_dir():  # said before the work, naming the path (os.replace names the temporary file)
        raise IsADirectoryError(errno.EISDIR, "it is a folder", str(path))
    with scratch_beside(path) as tmp:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None


@contextlib.contextmanager
def scratch_beside(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` (as `replaced_whole` gives), removed when the block ends however it ends:
    for what is needed only on the way to `path` (a downloaded archive that one file is taken from)."""
    remove_leftovers(path)
    tmp = path.with_name(f".{path.name}.{_writer_id()}.tmp")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def remove_leftovers(path: Path) -> list[Path]:
    """Remove the temporary files of `path` that killed writers left (see ABANDONED_S); the ones removed."""
    removed = []
    now = time.time()
    prefix = f".{path.name}."
    for name in _temporary_names(path.parent):
        if not name.startswith(prefix):
            continue
        leftover = path.parent / name
        writer = _WRITER.fullmatch(name[len(prefix) : -len(".tmp")])
        if writer is None:
            continue  # not a name replaced_whole gives (another file's, say `X.onnx.data`)
        try:
            idle = now - leftover.stat().st_mtime
        except OSError:
            continue  # its writer has just moved it into place
        if _abandoned(int(writer.group(1)), idle):
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed.append(leftover)
    return removed


#: A folder's temporary names are listed at most this often per process: a folder of images gets a file per
#: image, and listing it for each one made a run over N images O(N^2). Leftovers come from writers killed
#: before (or while) this process runs: one listing a while is enough to find them.
LIST_EVERY_S = 600.0
_listings: dict[Path, tuple[float, list[str]]] = {}
_listings_lock = threading.Lock()


def _temporary_names(folder: Path) -> list[str]:
    """The names in `folder` that may be temporary files (`.<name>.<writer>.tmp`), as listed lately."""
    now = time.monotonic()
    with _listings_lock:
        listed = _listings.get(folder)
    if listed is not None and now - listed[0] < LIST_EVERY_S:
        return listed[1]
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries if entry.name.startswith(".") and entry.name.endswith(".tmp")]
    except OSError:
        names = []  # not there yet, or not ours to list: nothing to remove
    with _listings_lock:
        _listings[folder] = (now, names)
    return names


@contextlib.contextmanager
def scratch_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A folder of this writer's own in `parent`, `<prefix><pid>-<thread>`, for what is bulky on the way to a
    result (a 3 GB archive, a package being unpacked), removed when the block ends however it ends.

    A writer killed mid-way (SIGKILL, power loss: no `finally` ran) leaves its folder: such folders of
    `prefix` are removed first, by the same rules as `remove_leftovers`' files.
    """
    parent.mkdir(parents=True, exist_ok=True)
    for left in parent.glob(f"{glob.escape(prefix)}*"):
        writer = _WRITER.fullmatch(left.name[len(prefix) :])
        if writer is not None and left.is_dir() and _abandoned(int(writer.group(1)), _idle_s(left)):
            shutil.rmtree(left, ignore_errors=True)
    scratch = parent / f"{prefix}{_writer_id()}"
    shutil.rmtree(scratch, ignore_errors=True)  # a reused process id's leftover: not ours to add to
    scratch.mkdir()
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _writer_id() -> str:
    """Who writes a temporary file or folder, as its name says it (`_WRITER`): this process, then this thread."""
    return f"{os.getpid()}-{threading.get_ident()}"


def _abandoned(pid: int, idle_s: float) -> bool:
    """Whether a temporary file or folder was left by a writer that will not come back to it."""
    return (not writer_running(pid) and idle_s > ABANDONED_S) or idle_s > FORGOTTEN_S


def _idle_s(folder: Path) -> float:
    """Seconds since anything in `folder` (or the folder itself) was last written."""
    try:
        latest = max(path.stat().st_mtime for path in (folder, *folder.rglob("*")))
    except OSError:
        return 0.0  # going as we look: its writer is at work
    return time.time() - latest


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
