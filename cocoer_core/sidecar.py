"""The JSON file beside an exported model (`X.onnx` -> `X.json`): what it was made from, read and replaced whole.

Every export (CocoER, the face baseline, CenterNet per input size) writes the
settings it was made from there; it is used only while those still hold
(`is_current`). `speed_choice` adds the runtimes' timings to the same file.
Both files are written under a temporary name and moved into place
(`cocoer_core.whole_files`), so a reader never sees half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cocoer_core.whole_files import replaced_whole


def sidecar_of(path: Path) -> Path:
    return path.with_suffix(".json")


def file_stamp(path: Path) -> dict[str, Any]:
    """A file as an export depends on it: name, size, modification time (a replaced file is noticed)."""
    stat = Path(path).stat()
    return {"file": Path(path).name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def write_sidecar(path: Path, data: dict[str, Any]) -> None:
    """Replace the sidecar whole (another process may be reading it); OSError when it can't be written."""
    with replaced_whole(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def is_current(path: Path, settings: dict[str, Any]) -> bool:
    """The export at `path` exists and its sidecar says it was made from these settings (other keys may follow)."""
    meta = read_sidecar(sidecar_of(path))
    return path.is_file() and all(meta.get(k) == v for k, v in settings.items())
