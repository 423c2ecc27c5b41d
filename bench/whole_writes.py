"""Files written whole into a growing output folder: what a run over a folder of images pays per image.

    python bench/whole_writes.py [--images 4000]

A run over N images writes each image's JSON (and its annotated copy) into
one output folder, each JSON through `replaced_whole`, which first removes the
temporary files killed writers left beside it. Found by listing the folder for
each file, that made a run over N images O(N^2); the listing is now kept for
`LIST_EVERY_S`. In one run, into two fresh folders: each image's JSON and a
stand-in for its annotated copy (a small file), the folder listed for every
write (as before) against now. Prints ms per image at each thousand images
and the whole run's seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import ROOT  # noqa: F401 - puts the checkout on sys.path

from cocoer_core import whole_files
from streamer.outputs.base import write_json


def _fill(folder: Path, images: int, list_every_s: float) -> list[float]:
    """ms per image for each thousand images written into `folder`."""
    whole_files.LIST_EVERY_S = list_every_s
    whole_files._listings.clear()
    marks, started = [], time.perf_counter()
    for n in range(1, images + 1):
        (folder / f"frame_{n:06d}.jpg").write_bytes(b"\xff\xd8 a stand-in for the annotated image")
        write_json(folder / f"frame_{n:06d}.json", {"image": f"frame_{n:06d}.jpg", "persons": []})
        if n % 1000 == 0:
            now = time.perf_counter()
            marks.append((now - started) * 1000 / 1000)
            started = now
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4000)
    args = parser.parse_args()
    kept = whole_files.LIST_EVERY_S
    with tempfile.TemporaryDirectory() as before_dir, tempfile.TemporaryDirectory() as now_dir:
        before = _fill(Path(before_dir), args.images, 0.0)
        now = _fill(Path(now_dir), args.images, kept)
    print(f"{args.images} images, one JSON + one image each, into one folder (ms per image, per thousand):")
    for n, (b, c) in enumerate(zip(before, now, strict=True), start=1):
        print(
            f"  images {(n - 1) * 1000 + 1:>6}-{n * 1000:<6} listed each write {b:6.2f}  now {c:6.2f}  ({b / c:4.1f}x)"
        )
    # ms per image over a thousand images, summed: seconds.
    print(f"  in all: {sum(before):.1f} s against {sum(now):.1f} s ({sum(before) / sum(now):.1f}x)")


if __name__ == "__main__":
    main()
