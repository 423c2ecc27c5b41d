"""The Ray backend: the same stages and sessions as the local one, placed as actors on a Ray cluster.

`cluster` joins or starts the cluster (bounded, interruptible), `actors` is
what runs on its nodes, `driver` is the run loop on this machine. Sources are
opened by their actors, so a file path must exist on the node its actor runs
on (shared storage, or the same path on every node); every output is written
here, by the driver.

This package is imported only for `--backend ray`: the default path never imports Ray.
"""

from __future__ import annotations

import ray

from streamer.backends.base import RunJob, RunReport
from streamer.backends.ray.cluster import start_cluster
from streamer.backends.ray.driver import RayRun
from streamer.errors import UserError


class RayBackend:
    """Runs jobs on a Ray cluster (`ray.address`; empty: a local one started for the run)."""

    def run(self, job: RunJob) -> RunReport:
        config = job.config
        if config.detector.batch_sources == "yes":
            raise UserError(
                "detector.batch_sources=yes is not available with --backend ray: each source actor runs "
                "its own detector (use auto or no)"
            )
        started_here = False
        try:
            started_here = start_cluster(config.ray.address, len(job.entries), config)
            run = RayRun(job)
            try:
                run.open()
            except BaseException:
                run.abandon()
                raise
            if job.on_open is not None:
                job.on_open()
            return run.run()
        except KeyboardInterrupt:  # a local cluster may be half started: shut down whatever of it runs
            started_here = True
            raise
        finally:
            if started_here:
                ray.shutdown()
