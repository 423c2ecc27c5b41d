"""Soak: the CLI on a live RTSP stream for N minutes, memory and file descriptors sampled every 15 s.

    python bench/soak.py [--minutes 30] [--every 15] [--model baseline]

Serves GStreamer's live 25 fps test pattern on 127.0.0.1, runs
`run_stream.py` on it as a user would (recording segments and JSONL into a
temporary folder), samples the process's RSS and open fds, then stops it
with Ctrl+C (SIGINT) and checks it exits 130 with its files finalized.
Prints the samples and the growth from the first sample after warm-up to the
last one (goal: RSS < 5% over 30 minutes, a flat fd count).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

from tests.support.servers import RtspServer, rtsp_server_available


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline sample")
    parser.add_argument("--model", default="auto", choices=("auto", "cocoer", "baseline", "none"))
    args = parser.parse_args()
    reason = rtsp_server_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    server = RtspServer(["--pattern"]).start()
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            str(ROOT / "run_stream.py"),
            "--source",
            server.url(),
            "--out",
            out,
            "--model",
            args.model,
            "--no-progress",
            "--segment-minutes",
            "5",
            "--set",
            "detector.allow_download=false",
        ]
        child = subprocess.Popen(
            command, cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
        samples: list[tuple[float, float, int, int]] = []
        started = time.monotonic()
        try:
            while time.monotonic() - started < args.minutes * 60 and child.poll() is None:
                time.sleep(args.every)
                jsonl = next(Path(out).glob("*.jsonl"), None)
                lines = sum(1 for _ in jsonl.open()) if jsonl else 0
                sample = (time.monotonic() - started, _rss_mb(child.pid), _fds(child.pid), lines)
                samples.append(sample)
                print(
                    f"t={sample[0]:7.0f} s  rss={sample[1]:7.1f} MB  fds={sample[2]:3d}  frames={sample[3]}", flush=True
                )
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=120)
            server.stop()
        segments = sorted(Path(out).glob("*.mp4"))
        jsonl_lines = sum(1 for p in Path(out).glob("*.jsonl") for _ in p.open())
        last = json.loads(next(Path(out).glob("*.jsonl")).read_text().splitlines()[-1]) if jsonl_lines else {}
    if child.returncode != 130:
        print(f"the run ended with exit {child.returncode}:\n{stderr[-2000:]}", file=sys.stderr)
        return 1
    base = next((s for s in samples if s[0] >= args.warmup), samples[0] if samples else None)
    if base is None or len(samples) < 2:
        print("too short to measure growth", file=sys.stderr)
        return 1
    end = samples[-1]
    hours = (end[0] - base[0]) / 3600
    print(
        f"soak {end[0] / 60:.1f} min, {jsonl_lines} frames written of {last.get('frame', -1) + 1} captured (the rest dropped as stale), "
        f"{len(segments)} segment(s): RSS {base[1]:.1f} -> {end[1]:.1f} MB "
        f"({100 * (end[1] / base[1] - 1):+.2f}%, {(end[1] - base[1]) / max(hours, 1e-9):+.1f} MB/h), "
        f"fds {base[2]} -> {end[2]}; exit 130 on Ctrl+C"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
