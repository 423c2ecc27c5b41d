"""PNG files that declare more pixels than anyone should decode: decompression bombs, written byte by byte."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def png_bomb(path: Path, width: int, height: int, whole: bool = False) -> Path:
    """A PNG of width x height black RGB pixels. `whole`: every row is there (600 MB decoded from 0.6 MB at
    20000x10000, as a real bomb); else one empty row, the bomb as its header presents it (cheap to write)."""
    if whole:
        packer, row = zlib.compressobj(9), b"\0" * (1 + 3 * width)
        data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    else:
        data = zlib.compress(b"\0")
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    return path


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
