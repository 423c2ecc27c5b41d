"""Which sources a run analyzes: `--source` (repeatable; a glob or a folder means every video in it) and `--sources FILE`.

A sources file is YAML: a list (or a mapping with a `sources:` list) whose
entries are either a spec string or a mapping with `spec`, an optional
`name` (the output stem) and any `source.*` setting for that source alone:

    sources:
      - {name: lobby, spec: "rtsp://user:pw@10.0.0.5/stream", rtsp_transport: udp}
      - {name: door, spec: "rtsp://10.0.0.6/live", read_timeout_s: 10}
      - recordings/day1/*.mp4

Relative paths are relative to the working directory, as on the command line.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from streamer.config import SourceConfig, read_problem
from streamer.errors import UserError
from streamer.safe_names import MAX_NAME_BYTES, clip_utf8, safe_name
from streamer.sources.base import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".flv", ".wmv"}
GLOB_CHARACTERS = set("*?[")


@dataclass(frozen=True)
class SourceEntry:
    """One source to open: what the user typed, its output name if given, and its own settings."""

    spec: str
    name: str | None
    config: SourceConfig


def _media_in(paths: list[str]) -> list[str]:
    return sorted(p for p in paths if Path(p).is_file() and Path(p).suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES)


def expand_spec(spec: str) -> list[str]:
    """A glob or a folder becomes the videos (and images) in it, sorted; anything else stays one spec."""
    if "://" in spec:
        return [spec]
    path = os.path.expanduser(spec)
    if GLOB_CHARACTERS & set(path):
        found = _media_in(glob.glob(path))
        if not found:
            raise UserError(f"no videos or images match {spec}")
        return found
    if Path(path).is_dir():
        found = _media_in([str(p) for p in Path(path).iterdir()])
        if not found:
            raise UserError(f"folder {spec} holds no videos or images")
        return found
    return [spec]


def entries_from_specs(specs: list[str], base: SourceConfig) -> list[SourceEntry]:
    """The `--source` values, globs and folders expanded."""
    return [SourceEntry(found, None, base) for spec in specs for found in expand_spec(spec)]


def _entry_config(base: SourceConfig, overrides: dict[str, Any], where: str) -> SourceConfig:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(base), overrides)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise UserError(f"{where}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None
    if not isinstance(config, SourceConfig):  # pragma: no cover - a structured SourceConfig always builds one
        raise TypeError(type(config).__name__)
    return config


def entries_from_file(path: Path, base: SourceConfig) -> list[SourceEntry]:
    """The entries of a sources file, each validated with the file and entry named in any error."""
    if not path.exists():
        raise UserError(f"sources file {path} not found")
    if not path.is_file():
        raise UserError(f"sources file {path} is not a file")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"cannot read sources file {path} ({read_problem(exc)})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"sources file {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if _expands_too_far(document):
        raise UserError(
            f"sources file {path} repeats itself through YAML aliases beyond {ALIAS_GROWTH}x its own size "
            "(a 'billion laughs'): refusing it"
        )
    items = document.get("sources") if isinstance(document, dict) else document
    if not isinstance(items, list) or not items:
        raise UserError(f"sources file {path} must hold a non-empty list of sources (or a 'sources:' list)")
    entries: list[SourceEntry] = []
    for number, item in enumerate(items, start=1):
        where = f"{path}, source {number}"
        if isinstance(item, str):
            item = {"spec": item}
        if not isinstance(item, dict) or not isinstance(item.get("spec"), str):
            raise UserError(f"{where}: needs a 'spec' (a file, camera or URL)")
        overrides = {k: v for k, v in item.items() if k not in ("spec", "name")}
        config = _entry_config(base, {**overrides, "spec": item["spec"]}, where)
        found = expand_spec(item["spec"])
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or len(found) > 1):
            raise UserError(f"{where}: 'name' must be text, and names one source (this spec matches {len(found)})")
        entries += [SourceEntry(spec, name, config) for spec in found]
    return entries


#: How far YAML aliases may grow a sources file beyond its own values (`<<: *common` settings shared by many
#: cameras stay far below): a few lines of aliases of aliases expand to billions, and building one source's
#: settings from them took for ever.
ALIAS_GROWTH = 10
#: Small files may grow to this many values whatever their size.
ALIAS_FLOOR = 10_000


def _expands_too_far(document: object) -> bool:
    return _expanded_beyond(document, max(ALIAS_FLOOR, ALIAS_GROWTH * _written_size(document)))


def _children(item: object) -> list[object]:
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    return list(item) if isinstance(item, list) else []


def _written_size(document: object) -> int:
    """The values of a parsed YAML document as written: a mapping or list an alias repeats counts once."""
    seen: set[int] = set()
    stack, count = [document], 0
    while stack:
        item = stack.pop()
        count += 1
        if isinstance(item, (dict, list)) and id(item) not in seen:
            seen.add(id(item))
            stack += _children(item)
    return count


def _expanded_beyond(document: object, limit: int) -> bool:
    """Whether the document holds more than `limit` values with every alias expanded (walking no further)."""
    stack, count = [document], 0
    while stack:
        count += 1
        if count > limit:
            return True
        stack += _children(stack.pop())
    return False


def unique_names(names: list[str]) -> list[str]:
    """Output names: each reduced to a safe file name, then made unique in order (a second `clip` is `clip-2`).

    A name is only ever a file name inside `--out`: `/tmp/x` becomes `tmp_x`, `../up` becomes `up`
    (said once in the log).
    """
    taken: set[str] = set()
    tried: dict[str, int] = {}  # the last number tried for a name: N `frame`s number in O(N), not O(N^2)
    out = []
    for given in names:
        name = safe_name(given)
        if name != given:
            logger.warning("output name %r becomes %r (output names are plain file names inside --out)", given, name)
        candidate, n = name, tried.get(name, 1)
        while candidate in taken:
            n += 1
            candidate = f"{clip_utf8(name, MAX_NAME_BYTES - len(f'-{n}'))}-{n}"
        tried[name] = n
        taken.add(candidate)
        out.append(candidate)
    return out
