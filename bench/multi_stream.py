"""Many streams in one process (one shared, batched inference worker) against one process per stream.

    python bench/multi_stream.py [--counts 1,2,4,8] [--models baseline,cocoer] [--frames 30] [--device auto]
                                 [--video PATH] [--no-separate]

For each model and each stream count N, in one run: N copies of a shared
two-person clip analysed by one `run_stream`-equivalent process, then by N
separate processes at once. Prints per row the aggregate fps (all frames
written / the slowest stream's analysis time, model loading excluded), the
per-stream capture-to-written latency (p50/p95 over every frame of every
stream), peak resident memory (summed over the separate processes), and the
one-process/separate ratio. CocoER uses the official weights when
`checkpoints/GWT.pth` exists, else golden-filled weights of the same shapes
(same cost). Each one-process row also says how many real-time 25 fps
streams of this clip that throughput sustains on the device, and the mean
detect+track ms per frame and emotion ms per model call (run it on a CUDA GPU
for the GPU figure: `bench/device_rows.py` runs it on a 1080p clip of five
persons; `--no-separate` leaves out the separate processes, which at 50
streams would load the models 50 times).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading

from common import DESIGN, MEDIA, ROOT, PeakRss, device_name, percentile

CLIP = "faces_two_people_head_pose.mp4"


def _analyzer(model: str, device: str, frames: int, out: str):  # type: ignore[no-untyped-def]
    from streamer.api import Analyzer
    from streamer.stages.models import cocoer_weights_present

    overrides = [f"device={device}", "detector.allow_download=false", f"source.max_frames={frames}"]
    overrides += [f"sink.out_dir={out}", "sink.report=false"]
    if model == "cocoer" and not cocoer_weights_present(ROOT / "checkpoints"):
        # No official weights here: CocoER with golden-filled ones, the same computation at the same cost.
        return Analyzer(overrides=overrides, model_factory=lambda config, on: _golden_cocoer(on))
    return Analyzer(overrides=[*overrides, f"emotion.model={model}"])


def _golden_cocoer(device: str):  # type: ignore[no-untyped-def]
    from cocoer_core.runtime import CocoERModel
    from cocoer_core.verify_golden import build_golden_models

    model, clip = build_golden_models(json.loads((DESIGN / "cocoer_golden_A.json").read_text()))
    return CocoERModel(model, clip.visual, device)


def child(args: argparse.Namespace) -> int:
    """One process, `--streams` sources: print frames, analysis seconds, latencies and peak RSS as JSON."""
    from streamer.sources.entries import SourceEntry

    with PeakRss() as peak, tempfile.TemporaryDirectory() as out:
        analyzer = _analyzer(args.model, args.device, args.frames, out)
        latencies: list[float] = []
        lock = threading.Lock()

        def observe(record) -> None:  # type: ignore[no-untyped-def]
            with lock:
                latencies.append(record.latency_s)

        entries = [SourceEntry(args.video, f"s{k}", analyzer.config.source) for k in range(args.streams)]
        report = analyzer.run(entries, on_frame=observe)
    print(
        json.dumps(
            {
                "frames": sum(s.frames for s in report.sources),
                "seconds": max(s.seconds for s in report.sources),
                "latencies": latencies,
                "peak_mb": peak.peak_mb,
                "batches": report.batches,
                "persons": report.persons_inferred,
                "stage_ms": report.stage_ms,
            }
        )
    )
    return 0


def _spawn(streams: int, args: argparse.Namespace) -> subprocess.Popen[str]:
    command = [sys.executable, __file__, "--child", "--streams", str(streams), "--model", args.model_now]
    command += ["--frames", str(args.frames), "--device", args.device, "--video", args.video]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)


def _collect(processes: list[subprocess.Popen[str]]) -> list[dict]:
    results = []
    for process in processes:
        out, err = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise RuntimeError(f"a benchmark process failed:\n{err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _row(label: str, results: list[dict]) -> dict:
    frames = sum(r["frames"] for r in results)
    seconds = max(r["seconds"] for r in results)
    latencies = [x for r in results for x in r["latencies"]]
    return {
        "label": label,
        "fps": frames / seconds if seconds else 0.0,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p95_ms": 1000 * percentile(latencies, 95),
        "peak_mb": sum(r["peak_mb"] for r in results),
        "calls": sum(r["batches"] for r in results),
        "persons": sum(r["persons"] for r in results),
        "stage_ms": results[0]["stage_ms"] if len(results) == 1 else {},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,2,4,8")
    parser.add_argument("--models", default="baseline,cocoer")
    parser.add_argument("--frames", type=int, default=30, help="frames per stream")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--video", default=str(MEDIA / CLIP), help="the clip every stream plays")
    parser.add_argument("--no-separate", dest="separate", action="store_false", help="one process only")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--streams", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--model", default="baseline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    from streamer.stages.models import resolve_device

    print(f"clip {args.video}, {args.frames} frames per stream, on {device_name(resolve_device(args.device))}")
    header = f"{'model':<9}{'streams':>8}  {'mode':<13}{'fps':>7}{'p50 ms':>9}{'p95 ms':>9}{'peak MB':>9}{'calls':>7}{'persons':>8}"
    header += f"{'detect ms':>10}{'emotion ms':>11}"
    print(header)
    for model in args.models.split(","):
        args.model_now = model
        for count in (int(c) for c in args.counts.split(",")):
            one = _row("one process", _collect([_spawn(count, args)]))
            many = _row("separate", _collect([_spawn(1, args) for _ in range(count)])) if args.separate else None
            for row in (one, many) if many else (one,):
                stages = row["stage_ms"]
                print(
                    f"{model:<9}{count:>8}  {row['label']:<13}{row['fps']:>7.1f}{row['p50_ms']:>9.0f}"
                    f"{row['p95_ms']:>9.0f}{row['peak_mb']:>9.0f}{row['calls']:>7}{row['persons']:>8}"
                    + (f"{stages['detect+track']:>10.1f}{stages['emotion']:>11.1f}" if stages else "")
                )
            if many is None:
                print(f"{model:<9}{count:>8}  one process sustains {int(one['fps'] // 25)} real-time 25 fps stream(s)")
                continue
            print(
                f"{model:<9}{count:>8}  ratio        {one['fps'] / many['fps']:>6.2f}x fps, "
                f"{one['peak_mb'] / many['peak_mb']:.2f}x memory (one process / separate); "
                f"one process sustains {int(one['fps'] // 25)} real-time 25 fps stream(s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
