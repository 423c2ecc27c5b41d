"""Errors a user can act on. Their message is one line: what, where, what to do."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A weights file is missing, unreadable or does not fit the model."""
