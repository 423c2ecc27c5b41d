"""Start-up: seconds from launching the CLI to its first frame written, for the default run.

    python bench/startup.py [--runs 3]

Launches `run_stream.py` (default config, one shared clip, JSONL only) and
polls its JSONL for the first complete line; prints the median over runs,
beside the time to merely start Python and import torch (the floor every
run pays), and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import MEDIA, ROOT

CLIP = MEDIA / "face_man_smiling_short.mp4"


def to_first_frame(out: Path) -> float:
    jsonl = out / f"{CLIP.stem}.jsonl"
    command = [sys.executable, str(ROOT / "run_stream.py"), "--source", str(CLIP), "--out", str(out)]
    command += ["--no-report", "--no-progress", "--set", "sink.video=false"]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (jsonl.exists() and b"\n" in jsonl.read_bytes()[:65536]):
            if process.poll() is not None:
                raise RuntimeError(f"the run ended (exit {process.returncode}) before its first frame")
            time.sleep(0.01)
        return time.perf_counter() - start
    finally:
        process.kill()
        process.wait()


def import_torch() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    firsts, floors = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            firsts.append(to_first_frame(Path(tmp)))
        floors.append(import_torch())
    first, floor = statistics.median(firsts), statistics.median(floors)
    print(f"first frame written: {first:.2f} s (median of {args.runs}: {', '.join(f'{x:.2f}' for x in firsts)})")
    print(f"python + import torch: {floor:.2f} s; start-up / that floor: {first / floor:.2f}x")


if __name__ == "__main__":
    main()
