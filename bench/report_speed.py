"""How long the report takes for a long session: a real run's JSONL repeated to hours, with many tracks.

    python bench/report_speed.py [--hours 2] [--tracks 200]

Runs the CLI once on a shared clip (two people), then writes a long JSONL by
repeating its lines with increasing timestamps and track ids shifted per
repetition (so the session has `--tracks` distinct persons), and times
`write_report` on it, against the time to merely read the JSONL in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import MEDIA, ROOT, PeakRss

CLIP = "faces_two_people_head_pose.mp4"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--tracks", type=int, default=200)
    args = parser.parse_args()
    from streamer.outputs.records import read_records
    from streamer.report import write_report

    with tempfile.TemporaryDirectory() as out:
        folder = Path(out)
        command = [sys.executable, str(ROOT / "run_stream.py"), "--source", str(MEDIA / CLIP), "--out", out]
        command += ["--no-progress", "--no-report", "--set", "detector.allow_download=false"]
        subprocess.run(command, check=True, capture_output=True)
        lines = [json.loads(x) for x in (folder / f"{Path(CLIP).stem}.jsonl").read_text().splitlines()]
        span = lines[-1]["pts_s"] + 1 / 25
        repeats = max(int(args.hours * 3600 / span), 1)
        ids_per = max({p["track_id"] for x in lines for p in x["persons"]})
        long = folder / "long.jsonl"
        with long.open("w") as handle:
            for r in range(repeats):
                shift = (r % max(args.tracks // max(ids_per, 1), 1)) * ids_per
                for k, line in enumerate(lines):
                    record = dict(line, frame=r * len(lines) + k, pts_s=round(r * span + line["pts_s"], 6))
                    record["persons"] = [dict(p, track_id=p["track_id"] + shift) for p in line["persons"]]
                    if "events" in line:
                        record["events"] = [dict(e, track_id=e["track_id"] + shift) for e in line["events"]]
                    handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        size_mb = long.stat().st_size / 1e6
        started = time.perf_counter()
        count = sum(1 for _ in read_records(long))
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        with PeakRss() as peak:
            done = write_report(long, folder / f"{Path(CLIP).stem}.mp4")
        report_s = time.perf_counter() - started
        print(
            f"{args.hours:.1f} h session: {count} frames, {done.tracks} tracks, {size_mb:.0f} MB JSONL; "
            f"reading it {read_s:.1f} s, the whole report (HTML + {done.tracks} CSVs) {report_s:.1f} s "
            f"({report_s / read_s:.1f}x the read), peak RSS {peak.peak_mb:.0f} MB, HTML {done.html.stat().st_size / 1e6:.1f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
