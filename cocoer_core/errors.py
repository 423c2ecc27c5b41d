"""Errors a user can act on. Their message is one line: what, where, what to do."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A weights file is missing, unreadable or does not fit the model."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's first message line (the type's name when it has none), for one-line errors."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
