"""Errors a user can act on. Their message is one line: what, where, what to do."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A weights file is missing, unreadable or does not fit the model."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first message line (the type's name when it has none), for one-line errors."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def reason_of(exc: BaseException) -> str:
    """What went wrong, without the wrapping: a URLError's reason ("Connection refused", "Not Found"), an OS
    error's own words ("No space left on device", without the path the caller names), else the message."""
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)
