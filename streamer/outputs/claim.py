"""One run per set of output files: an exclusive claim on `<out>/<stem>.*`.

Two runs writing into one folder at once must never splice each other's
files. Each run takes an `flock` on `<out>/.<stem>.lock` before it opens its
outputs; the kernel drops the lock when the process dies (even SIGKILL), so a
crash never leaves a stale claim. File runs keep their stem (a rerun replaces
the earlier files and says so); a second run on the same file while the
first still writes is refused. Live runs take the first free stem
(`cam_20261201-101500`, then `-2`, `-3`, ...).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
from pathlib import Path

from streamer.errors import OutputError

logger = logging.getLogger(__name__)


class OutputClaim:
    """Held while a run writes `<out>/<stem>.*`; `release()` at the end (idempotent)."""

    def __init__(self, out_dir: Path, stem: str, fd: int) -> None:
        self.out_dir = out_dir
        self.stem = stem
        self._fd: int | None = fd

    @property
    def lock_path(self) -> Path:
        return lock_path(self.out_dir, self.stem)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # Unlink while still holding the lock: a waiting run then re-checks the inode (see _try_claim).
        with contextlib.suppress(OSError):
            self.lock_path.unlink()
        os.close(fd)


def lock_path(out_dir: Path, stem: str) -> Path:
    return out_dir / f".{stem}.lock"


def _try_claim(out_dir: Path, stem: str) -> OutputClaim | None:
    path = lock_path(out_dir, stem)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot create {path} ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder released (unlinked) it between our open and flock: try the new file
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return OutputClaim(out_dir, stem, fd)


def claim_outputs(out_dir: Path, stem: str, unique: bool, existing: list[str]) -> OutputClaim:
    """Claim `<out>/<stem>.*` for this run.

    Args:
        out_dir: the output folder (already checked writable).
        stem: the base name wanted.
        unique: live runs: never reuse a stem whose files exist; take `<stem>-2`, ... instead.
        existing: file name patterns (with `{stem}`) whose presence means "already written".

    Raises:
        OutputError: a file run whose outputs another run is writing right now.
    """
    for n in itertools.count(1):
        candidate = stem if n == 1 else f"{stem}-{n}"
        claim = _try_claim(out_dir, candidate)
        found = [p for p in (out_dir / pattern.format(stem=candidate) for pattern in existing) if p.exists()]
        if claim is not None and not (unique and found):
            if found:
                logger.warning("replacing %s from an earlier run", ", ".join(str(p) for p in found))
            return claim
        if claim is not None:
            claim.release()
        if not unique:
            raise OutputError(_busy_message(out_dir, stem))
    raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends


def refuse_if_busy(out_dir: Path, stem: str) -> None:
    """Fail now, before models load, when another run is writing `<out>/<stem>.*` (the real claim comes later)."""
    claim = _try_claim(out_dir, stem)
    if claim is None:
        raise OutputError(_busy_message(out_dir, stem))
    claim.release()


def _busy_message(out_dir: Path, stem: str) -> str:
    return f"another run is writing {out_dir / stem}.* right now; wait for it to finish or choose another --out"
