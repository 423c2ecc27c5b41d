"""Names from outside (a sources file's `name`, a video's file name, a URL) made safe to name output files.

An output name is only ever a file name inside `--out`: no folder separators,
no `..`, no leading dot or dash (hidden files, options), no control
characters, no URL scheme, and short enough that every suffix the run adds
(`_20261201-101500-2_001.mp4`, `_persons/track_123.csv`) still fits in a
file name. Letters of any script, digits, spaces and `._+()-` are kept, so
ordinary names come through unchanged.
"""

from __future__ import annotations

import re
import unicodedata

#: Longest output name in UTF-8 bytes (file names are limited to 255 bytes; suffixes need room).
MAX_NAME_BYTES = 96
_UNSAFE = re.compile(r"[^\w .+()-]+")
_SPACES = re.compile(r"\s+")


def clip_utf8(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, never cutting a character in half."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")


def safe_name(name: str, fallback: str = "source") -> str:
    """`name` reduced to a safe file name (see the module docstring); `fallback` when nothing is left."""
    text = unicodedata.normalize("NFC", name)
    text = _UNSAFE.sub("_", text)
    text = _SPACES.sub(" ", text)
    text = re.sub(r"_{2,}", "_", text)
    text = clip_utf8(text.strip(" ._-"), MAX_NAME_BYTES).strip(" ._-")
    return text or fallback


def is_safe_name(name: str) -> bool:
    """Whether `name` is already what `safe_name` makes of it."""
    return bool(name) and safe_name(name, fallback="") == name
