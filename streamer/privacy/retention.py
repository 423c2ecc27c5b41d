"""Retention: this tool's own outputs deleted when older than `retention.max_age` or over `retention.max_bytes`.

Every file a run writes into the output folder (videos and their segments,
JSONL, counts, images, reports, CSVs, run.json, metrics.json) is listed in
`<out>/.cocoer-manifest` (JSON lines, with no `.jsonl` suffix so that a
`*.jsonl` glob over the folder finds the runs' records only) as it appears. A sweep, at the start of a run
and every `retention.check_every_s` while it goes on, deletes only files
listed there, never anything else in the folder:

- with `max_age` (`7d`, `12h`, `30m`, `90s`): each listed file last written
  longer ago than that;
- with `max_bytes` (`50GB`, `500MB`, `1.5TiB`, bytes): the oldest listed files
  until the listed total is under it.

A file written to within the last `IN_USE_S` seconds is being written (a live
JSONL, the current segment) and is kept. Entries are names relative to the
folder; one that leads out of it (a damaged or hostile manifest) is dropped
and never followed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cocoer_core.whole_files import write_text_whole

logger = logging.getLogger(__name__)

MANIFEST = ".cocoer-manifest"
LOCK = ".cocoer-manifest.lock"
#: A file modified this recently is in use (being written): a sweep keeps it.
IN_USE_S = 60.0
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_age(text: str) -> float | None:
    """`7d`, `12h`, `30m`, `90s`, `2w` as seconds; "" for no limit (ValueError naming the key otherwise)."""
    text = str(text).strip().lower()
    if not text:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
    if not match or float(match[1]) <= 0:
        raise ValueError(f"retention.max_age must be like 7d, 12h, 30m or 90s (or empty for no limit); got {text!r}")
    return float(match[1]) * _AGE_UNITS[match[2]]


def parse_bytes(text: str) -> int | None:
    """`50GB`, `500MB`, `1.5TiB`, `1000000` as bytes; "" for no limit (ValueError naming the key otherwise)."""
    text = str(text).strip().lower()
    if not text:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?", text)
    if not match or float(match[1]) <= 0:
        raise ValueError(f"retention.max_bytes must be like 50GB, 500MB or 2TiB (or empty for no limit); got {text!r}")
    return int(float(match[1]) * _BYTE_UNITS[match[2] or ""])


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One writer of the manifest at a time, across processes."""
    with open(folder / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _inside(folder: Path, name: object) -> Path | None:
    """The path a manifest entry names, if it is a plain relative path inside the folder."""
    if not isinstance(name, str) or not name or "\x00" in name:
        return None
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or relative.name in (MANIFEST, LOCK):
        return None
    return folder / relative


class Manifest:
    """The files this tool wrote into one output folder (one per folder per process: `manifest_for`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def add(self, paths: Iterable[Path]) -> None:
        """List these files (once each); a path outside the folder is not ours to list."""
        names = []
        for path in paths:
            try:
                name = str(Path(path).resolve().relative_to(self.folder.resolve()))
            except ValueError:
                continue
            if name not in self._known and _inside(self.folder, name) is not None:
                names.append(name)
        if not names:
            return
        with self._lock:
            names = [n for n in names if n not in self._known]
            lines = "".join(json.dumps({"path": n, "added": round(time.time(), 3)}) + "\n" for n in names)
            try:
                with _locked(self.folder), open(self.folder / MANIFEST, "a", encoding="utf-8") as handle:
                    handle.write(lines)
            except OSError as exc:  # a full disk: the outputs matter more than their listing
                logger.warning("cannot list outputs for retention in %s (%s)", self.folder, exc.strerror or exc)
                return
            self._known.update(names)

    def entries(self) -> list[str]:
        """The listed names (lines that do not parse, or lead outside the folder, are dropped)."""
        try:
            text = (self.folder / MANIFEST).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        names: list[str] = []
        for line in text.splitlines():
            try:
                name = json.loads(line).get("path")
            except (ValueError, AttributeError):
                continue
            if _inside(self.folder, name) is not None and name not in names:
                names.append(name)
        return names


_MANIFESTS: dict[Path, Manifest] = {}
_MANIFESTS_LOCK = threading.Lock()


def manifest_for(folder: Path) -> Manifest:
    key = folder.resolve()
    with _MANIFESTS_LOCK:
        return _MANIFESTS.setdefault(key, Manifest(key))


@dataclass(frozen=True)
class Swept:
    """What a sweep deleted."""

    files: int
    bytes: int


def _regular(path: Path) -> os.stat_result | None:
    try:
        info = path.lstat()
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def _listed_files(folder: Path) -> list[tuple[float, str, int]]:
    """(mtime, name, size) of the manifest's files that exist inside the folder, oldest first."""
    listed = []
    for name in Manifest(folder).entries():
        if not (folder / name).parent.resolve().is_relative_to(folder):  # through a linked folder: not ours
            continue
        info = _regular(folder / name)
        if info is not None:
            listed.append((info.st_mtime, name, info.st_size))
    return sorted(listed)


def _doomed(
    listed: list[tuple[float, str, int]], max_age_s: float | None, max_bytes: int | None, now: float
) -> set[str]:
    """What goes: past the age, then the oldest until under the budget; never a file in use."""
    idle = [(m, n, size) for m, n, size in listed if now - m > IN_USE_S]
    doomed = {n for m, n, _ in idle if max_age_s is not None and now - m > max_age_s}
    if max_bytes is not None:
        total = sum(size for _, name, size in listed if name not in doomed)
        for _, name, size in idle:
            if total <= max_bytes:
                break
            if name not in doomed:
                doomed.add(name)
                total -= size
    return doomed


def _delete(folder: Path, name: str) -> bool:
    try:
        (folder / name).unlink()
    except OSError as exc:
        logger.warning("retention: cannot delete %s (%s)", folder / name, exc.strerror or exc)
        return False
    if (folder / name).parent != folder:  # a report's CSV folder, emptied: gone too
        with contextlib.suppress(OSError):
            (folder / name).parent.rmdir()
    return True


def sweep(folder: Path, max_age_s: float | None, max_bytes: int | None, now: float | None = None) -> Swept:
    """Delete listed files past their age or over the folder's budget (oldest first); rewrite the manifest."""
    if (max_age_s is None and max_bytes is None) or not folder.is_dir():
        return Swept(0, 0)
    folder = folder.resolve()
    now = time.time() if now is None else now
    with _locked(folder):
        listed = _listed_files(folder)
        doomed = _doomed(listed, max_age_s, max_bytes, now)
        gone = {name for _, name, _ in listed if name in doomed and _delete(folder, name)}
        freed = sum(size for _, name, size in listed if name in gone)
        keep = [name for _, name, _ in listed if name not in gone]
        write_text_whole(folder / MANIFEST, "".join(json.dumps({"path": n}) + "\n" for n in keep))
    if gone:
        logger.info("retention: deleted %d old output file(s), %.1f MB, in %s", len(gone), freed / 1e6, folder)
    return Swept(len(gone), freed)


class RetentionKeeper:
    """Sweeps an output folder at start and every `every_s` until stopped (a daemon thread)."""

    def __init__(self, folder: Path, max_age: str, max_bytes: str, every_s: float) -> None:
        self.folder = folder
        self.max_age_s, self.max_bytes = parse_age(max_age), parse_bytes(max_bytes)
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self.max_age_s is not None or self.max_bytes is not None

    def sweep_once(self) -> Swept:
        try:
            return sweep(self.folder, self.max_age_s, self.max_bytes)
        except OSError as exc:  # never the reason a run stops
            logger.warning("retention: cannot sweep %s (%s)", self.folder, exc.strerror or exc)
            return Swept(0, 0)

    def start(self) -> RetentionKeeper:
        if self.active:
            self.sweep_once()
            self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sweep_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
