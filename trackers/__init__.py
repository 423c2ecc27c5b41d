"""Multi-object trackers behind one `Tracker` interface."""

from __future__ import annotations

from dataclasses import replace

from trackers.base import FrameLocalTracker, Tracker, TrackerConfig


def build_tracker(config: TrackerConfig, device: str = "cpu", detection_interval: int = 1) -> Tracker:
    """The tracker `config.kind` names ("none" numbers persons per frame).

    `detection_interval` is the detector's `interval`: `n_init` counts frames,
    so with the detector on every k-th frame a track needs fewer detections
    to be shown (never fewer than two unless n_init is 1).
    """
    if detection_interval > 1 and config.n_init > 1:
        config = replace(config, n_init=max(2, -(-config.n_init // detection_interval)))
    if config.kind == "none":
        return FrameLocalTracker()
    if config.kind == "bytetrack":
        from trackers.bytetrack import ByteTrackAdapter

        return ByteTrackAdapter(config)
    from trackers.deepsort import DeepSortTracker

    return DeepSortTracker.from_config(config, device)


__all__ = ["FrameLocalTracker", "Tracker", "TrackerConfig", "build_tracker"]
