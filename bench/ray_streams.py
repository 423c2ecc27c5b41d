"""The same file streams on the local backend and on a local Ray cluster, in one run.

    python bench/ray_streams.py [--counts 1,2,4] [--frames 20] [--model baseline]

For each stream count N: N copies of a shared two-person clip through
the local backend (threads in this process) and the Ray backend (a source
actor each, one inference actor; the cluster is started once and shared).
Prints aggregate fps (frames written / the slowest stream's time, actor
start-up included for Ray, model loading excluded locally) and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from common import MEDIA, ROOT

CLIP = "faces_two_people_head_pose.mp4"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,2,4")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--model", default="baseline", choices=("baseline", "cocoer", "none"))
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from streamer.api import Analyzer
    from streamer.backends.ray.cluster import start_cluster

    overrides = ["detector.allow_download=false", f"source.max_frames={args.frames}", f"emotion.model={args.model}"]
    overrides += ["sink.report=false"]
    local = Analyzer(config_file=ROOT / "configs" / "default.yaml", overrides=overrides)
    remote = Analyzer(config_file=ROOT / "configs" / "default.yaml", overrides=[*overrides, "backend=ray"])
    started = time.monotonic()
    start_cluster("", max(int(c) for c in args.counts.split(",")), remote.config)
    print(f"local Ray cluster up in {time.monotonic() - started:.1f} s; clip {CLIP}, {args.frames} frames per stream")
    print(f"{'streams':>7}  {'local fps':>9}  {'ray fps':>8}  ray/local")
    try:
        for count in (int(c) for c in args.counts.split(",")):
            reports = []
            for analyzer in (local, remote):  # the same sources, first in this process, then on the cluster
                with tempfile.TemporaryDirectory() as out:
                    analyzer.config.sink.out_dir = out
                    reports.append(analyzer.run([str(MEDIA / CLIP)] * count))
            fps = [sum(s.frames for s in r.sources) / max(s.seconds for s in r.sources) for r in reports]
            print(f"{count:>7}  {fps[0]:>9.1f}  {fps[1]:>8.1f}  {fps[1] / fps[0]:.2f}x", flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
