"""Errors a user can act on: the CLI prints their one-line message and exits with 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or environment: one line saying what, where and what to do."""


class SourceError(UserError):
    """A source that cannot be opened or read (missing file, not a video, dead URL)."""


class OutputError(UserError):
    """An output that cannot be written or finalized (full disk, bad encoder setting): names the output."""
