"""Datasets for evaluation and training: EMOTIC (official .mat or the CSV layout), CAER-S, and head-box files.

    from cocoer_core.data import open_dataset, read_head_boxes
    dataset = open_dataset("emotic", Path("/data/EMOTIC"), "val")

Readers yield `PersonSample`s in dataset order; a malformed record is a
`DatasetError` whose message is one line naming the file and the record.
"""

from __future__ import annotations

from pathlib import Path

from cocoer_core.data.caer_s import read_caer_s
from cocoer_core.data.emotic import read_emotic_csv, read_emotic_mat
from cocoer_core.data.heads import HeadBoxes, read_head_boxes
from cocoer_core.data.samples import KINDS, DatasetError, PersonDataset, PersonSample

__all__ = ["KINDS", "DatasetError", "HeadBoxes", "PersonDataset", "PersonSample", "open_dataset", "read_head_boxes"]


def open_dataset(kind: str, root: Path, split: str) -> PersonDataset:
    """One split of a dataset of `kind` (emotic, emotic-csv, caer-s) under its own top folder `root`."""
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} is not a folder")
    if kind == "emotic":
        return read_emotic_mat(root, split)
    if kind == "emotic-csv":
        return read_emotic_csv(root, split)
    if kind == "caer-s":
        return read_caer_s(root, split)
    raise DatasetError(f"--dataset must be one of {', '.join(KINDS)}; got {kind!r}")
