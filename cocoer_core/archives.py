"""One file taken out of a downloaded archive (zip or tar), whole or not at all.

A download damaged on the way fails deep inside `zipfile`, `tarfile` or
`zlib` with errors of their own (a bad CRC, an invalid block, an early end),
none of them an OSError: a handler for network and disk errors let them
through as a traceback. Here every one of them is `ArchiveDamaged`, an
OSError, and the file being written is left as it was (`replaced_whole`).
"""

from __future__ import annotations

import contextlib
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cocoer_core.errors import first_line
from cocoer_core.whole_files import replaced_whole

CHUNK = 1 << 20
#: What the archive readers raise for bytes that are not what the archive says.
DAMAGE = (EOFError, zipfile.BadZipFile, tarfile.TarError, zlib.error, KeyError)


class ArchiveDamaged(OSError):
    """The archive can't be read, or lacks what was asked of it."""


def member_names(archive: Path) -> list[str] | None:
    """The names in a zip or tar archive; None when it is neither. ArchiveDamaged when its index is unreadable."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                return zipped.namelist()
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tarred:
                return tarred.getnames()
    except DAMAGE as exc:
        raise ArchiveDamaged(f"{archive.name}: {first_line(exc, 120)}") from None
    return None


def extract_whole(archive: Path, member: str, target: Path) -> Path:
    """`member` of `archive` as `target`, whole or not at all: a damaged archive is ArchiveDamaged, a full disk
    the OSError it is, and either leaves `target` as it was with no partial copy beside it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replaced_whole(target) as partial, _opened_member(archive, member) as source, partial.open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
    except DAMAGE as exc:
        raise ArchiveDamaged(first_line(exc, 120)) from None
    return target


@contextlib.contextmanager
def _opened_member(archive: Path, member: str) -> Iterator[IO[bytes]]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped, zipped.open(member) as source:
            yield source
        return
    with tarfile.open(archive) as tarred:
        extracted = tarred.extractfile(member)
        if extracted is None:
            raise ArchiveDamaged(f"{member} is not a file in {archive.name}")
        with extracted:
            yield extracted
