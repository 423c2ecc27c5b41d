"""Where a run's stages execute: `local` (threads in this process, the default) or `ray` (a Ray cluster).

base        the Backend interface, RunJob, RunReport
assembly    models, opened sources, stages and sessions: what both backends build with
session     one source's smoothing, overlay, outputs and figures, the same everywhere
monitor     the status table, the live view's figures, metrics.json
local       threads in this process (and its inference_worker)
ray/        actors on a cluster, and the driver's run loop
"""

from __future__ import annotations

from streamer.backends.base import Backend


def backend_named(name: str) -> Backend:
    """The backend `backend:` names; Ray is imported only when it is asked for."""
    if name == "ray":
        from streamer.backends.ray import RayBackend

        return RayBackend()
    from streamer.backends.local import LocalBackend

    return LocalBackend()
