"""The head-box pass's progress, kept as it goes: Ctrl+C, a crash or SIGKILL an hour into EMOTIC loses nothing.

Each image's heads are appended, one JSON line per image, to a file beside
the output (`.<out>.progress.jsonl`), flushed as soon as written. The same
command run again reads it and carries on with the images not in it; the
file is removed once the output is written. Its first line says what pass it
belongs to (dataset, detector, rule): a file of another pass is not used.
A line a kill cut short, or one that is not a line of ours, is dropped and
its image done again.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import IO, Any

from cocoer_core.data.heads import Head, head_from_json
from cocoer_core.whole_files import write_text_whole


def progress_path(out: Path) -> Path:
    """Where the pass writing `out` keeps its progress."""
    return out.with_name(f".{out.name}.progress.jsonl")


class Progress:
    """Heads found so far, by image; `add` appends one image's to the file at once."""

    def __init__(self, path: Path, header: dict[str, Any], fresh: bool = False) -> None:
        self.path = path
        self.header = {"progress": 1, **header}
        self.done: dict[str, dict[str, Head]] = {}
        #: Why saved progress was not used (empty when there was none, or it was).
        self.note = ""
        if not fresh:
            self._read()
        self._out: IO[str] | None = None  # opened at the first image done: a pass refused early writes nothing

    def _read(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            self.note = f"{self.path} cannot be read ({type(exc).__name__}): starting over"
            return
        if not lines or _parsed(lines[0]) != self.header:
            self.note = f"{self.path} is another pass's progress (dataset, detector or rule): starting over"
            return
        for line in lines[1:]:
            entry = _parsed(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
                continue
            saved = entry.get("heads")
            heads = {str(k): head_from_json(v) for k, v in saved.items()} if isinstance(saved, dict) else {}
            if heads and all(head is not None for head in heads.values()):
                self.done[entry["image"]] = {k: head for k, head in heads.items() if head is not None}

    def saved(self, image: str, keys: set[str]) -> dict[str, Head] | None:
        """The heads saved for `image`, when they are for exactly these persons (else it is done again)."""
        heads = self.done.get(image)
        return heads if heads is not None and set(heads) == keys else None

    def add(self, image: str, heads: dict[str, Head]) -> None:
        self.done[image] = heads
        try:
            if self._out is None:
                # Rewritten whole from what was kept: a torn last line must not run into the next one appended.
                kept = (json.dumps({"image": name, "heads": self._as_json(found)}) for name, found in self.done.items())
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_text_whole(self.path, "".join(f"{line}\n" for line in (json.dumps(self.header), *kept)))
                self._out = self.path.open("a", encoding="utf-8")
            else:
                self._out.write(json.dumps({"image": image, "heads": self._as_json(heads)}) + "\n")
                self._out.flush()  # in the file when the process dies, not in its buffer
        except OSError as exc:  # a full disk: say which file
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from None

    def close(self, finished: bool) -> None:
        """Close the file; remove it when the pass `finished` (its output written)."""
        if self._out is not None:
            with contextlib.suppress(OSError):  # a full disk's write is still in the buffer: it fails again
                self._out.close()
        if finished:
            self.path.unlink(missing_ok=True)

    @staticmethod
    def _as_json(heads: dict[str, Head]) -> dict[str, list[Any]]:
        # Scores are kept unrounded: the output rounds them once, as a pass in one go does.
        return {key: [*box, score, how] for key, (box, score, how) in heads.items()}


def _parsed(line: str) -> object:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):  # torn, or not ours
        return None
