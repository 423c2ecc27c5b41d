"""The same file streams on the local backend and on a local Ray cluster, in one run.

    python bench/ray_streams.py [--counts 1,2,4] [--frames 20] [--model baseline]

For each stream count N: N copies of a shared two-person clip through
`analyze` (threads in this process) and through `analyze_on_ray` (a source
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

    from streamer.backends.assembly import analyze, build_components, open_sources
    from streamer.backends.ray_backend import analyze_on_ray, start_cluster
    from streamer.config import load_config
    from streamer.sources.entries import entries_from_specs

    overrides = ["detector.allow_download=false", f"source.max_frames={args.frames}", f"emotion.model={args.model}"]
    config = load_config(ROOT / "configs" / "default.yaml", overrides)
    components = build_components(config)
    started = time.monotonic()
    start_cluster("", max(int(c) for c in args.counts.split(",")), config)
    print(f"local Ray cluster up in {time.monotonic() - started:.1f} s; clip {CLIP}, {args.frames} frames per stream")
    print(f"{'streams':>7}  {'local fps':>9}  {'ray fps':>8}  ray/local")
    try:
        for count in (int(c) for c in args.counts.split(",")):
            entries = entries_from_specs([str(MEDIA / CLIP)] * count, config.source)
            with tempfile.TemporaryDirectory() as out:
                config.sink.out_dir = out
                opened, _ = open_sources(entries)
                local = analyze(config, opened, components, show_status=False)
            with tempfile.TemporaryDirectory() as out:
                config.sink.out_dir = out
                remote, _ = analyze_on_ray(config, entries, show_status=False)
            fps = [sum(s.frames for s in r.sources) / max(s.seconds for s in r.sources) for r in (local, remote)]
            print(f"{count:>7}  {fps[0]:>9.1f}  {fps[1]:>8.1f}  {fps[1] / fps[0]:.2f}x", flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
