"""Multi-object trackers behind one `Tracker` interface."""

from __future__ import annotations

from trackers.base import FrameLocalTracker, Tracker, TrackerConfig


def build_tracker(config: TrackerConfig, device: str = "cpu") -> Tracker:
    """The tracker `config.kind` names ("none" numbers persons per frame)."""
    if config.kind == "none":
        return FrameLocalTracker()
    from trackers.deepsort import DeepSortTracker

    return DeepSortTracker.from_config(config, device)


__all__ = ["FrameLocalTracker", "Tracker", "TrackerConfig", "build_tracker"]
