"""`python -m streamer.report recordings/<name>.jsonl [--video ...] [--out DIR]`: a run's report, any time."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cocoer_core.command_line import exit_with
from streamer.errors import UserError
from streamer.redact import printable
from streamer.report import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streamer.report", description="A run's results as an HTML report and a CSV per person."
    )
    parser.add_argument("jsonl", type=Path, help="a run's <stem>.jsonl")
    parser.add_argument(
        "--video", type=Path, help="its annotated video, for face thumbnails (default: <stem>.mp4 beside it)"
    )
    parser.add_argument("--out", type=Path, help="folder for the report (default: beside the JSONL)")
    args = parser.parse_args(argv)
    if not args.jsonl.is_file():
        if args.jsonl.is_dir():
            print(printable(f"error: {args.jsonl} is a folder: give a run's <stem>.jsonl in it"), file=sys.stderr)
        else:
            print(printable(f"error: no such file: {args.jsonl}"), file=sys.stderr)
        return 2
    try:
        done = write_report(args.jsonl, args.video, args.out)
    except UserError as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename or "the report"  # which: a file in --out's way, a folder not ours to write
        print(printable(f"error: cannot read or write {where} ({exc.strerror or exc})"), file=sys.stderr)
        return 2
    print(printable(f"wrote {done.describe()}"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    exit_with(main)
