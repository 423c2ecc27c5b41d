"""A run folder's files, written so that a kill at any moment loses at most the steps since the last save.

    RUN_DIR/GWT.pth             the selected model, {'model': state_dict} as the official file
    RUN_DIR/labels.json         its class names, in output order
    RUN_DIR/thresholds.json     per-class thresholds chosen on val, for the live pipeline
    RUN_DIR/RN50.pt             a link to the CLIP RN50 training used, when it is not where --weights looks
    RUN_DIR/last.pt             everything to resume: model, optimizer, scheduler, scaler, RNG states, counters
    RUN_DIR/train_options.json  the run's options (what --resume restores)
    RUN_DIR/metrics.jsonl       one line per logged train interval and per evaluation
    RUN_DIR/metrics.png         their plot

Every file is written to a temporary name and renamed, so a reader (or a
resume) never sees half a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cocoer_core.checkpoint import CLIP_FILE, GWT_FILE
from cocoer_core.errors import CheckpointError
from cocoer_core.whole_files import replaced_whole

LAST_FILE = "last.pt"
OPTIONS_FILE = "train_options.json"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "metrics.png"
STATE_VERSION = 1


@dataclass
class Progress:
    """Where a run is: optimizer steps done, the epoch and step within it, the selection so far."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best: float | None = None
    best_step: int = -1
    evals_since_best: int = 0
    # Train-loss sums since the last log line (kept so a resumed log continues exactly).
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0


def replace_atomically(path: Path, write: Any) -> None:
    """`write(tmp_path)`, then rename over `path` (a save cut short leaves the old file whole)."""
    with replaced_whole(path) as tmp:
        write(tmp)


def save_json(path: Path, data: Any) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"))


def save_model(run_dir: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """The official format: `{'model': state_dict}`, loadable by `run_stream.py --weights RUN_DIR`."""
    replace_atomically(run_dir / GWT_FILE, lambda tmp: torch.save({"model": state_dict}, tmp))


def link_clip(run_dir: Path, clip_path: Path) -> None:
    """Make `--weights RUN_DIR` find the CLIP RN50 training used (a link: the file is 200 MB, never changed).

    Nothing when clip's own cache (where every run looks) holds that file; a link that breaks (the folder
    moved to another machine) is skipped by the loader, which then looks in that cache."""
    link = run_dir / CLIP_FILE
    target = clip_path.resolve()
    cached = (Path("~/.cache/clip").expanduser() / CLIP_FILE).resolve()
    if target == cached or link.resolve() == target:
        return
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def save_last(run_dir: Path, payload: dict[str, Any]) -> None:
    replace_atomically(run_dir / LAST_FILE, lambda tmp: torch.save({"version": STATE_VERSION, **payload}, tmp))


def load_last(run_dir: Path) -> dict[str, Any]:
    path = run_dir / LAST_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} not found: nothing to resume in {run_dir}")
    try:
        # RNG states and optimizer state are plain tensors and containers: nothing in a last.pt needs (or, put
        # there by someone else, may run) code as it loads.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} cannot be read ({type(exc).__name__}): the run cannot resume") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path} is not a training state this version can resume")
    return state


def rng_state() -> dict[str, Any]:
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with (run_dir / METRICS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill
    return records


def trim_metrics(run_dir: Path, up_to_step: int) -> None:
    """Drop lines logged after the step a resume starts from (they will be logged again)."""
    kept = [r for r in read_metrics(run_dir) if int(r.get("step", 0)) <= up_to_step]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    replace_atomically(run_dir / METRICS_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def plot_metrics(run_dir: Path, metric: str) -> None:
    """Train loss and the selection metric against optimizer steps."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    records = read_metrics(run_dir)
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval" and r.get(metric) is not None]
    figure, loss_axis = plt.subplots(figsize=(8, 4))
    loss_axis.plot([r["step"] for r in train], [r["loss"] for r in train], color="#4c72b0", label="train loss")
    loss_axis.set_xlabel("optimizer step")
    loss_axis.set_ylabel("train loss")
    metric_axis = loss_axis.twinx()
    metric_axis.plot([r["step"] for r in evals], [r[metric] for r in evals], "o-", color="#e9a23b", label=metric)
    metric_axis.set_ylabel(f"{evals[0]['split'] if evals else 'val'} {metric}")
    figure.legend(loc="upper right")
    figure.tight_layout()
    replace_atomically(run_dir / PLOT_FILE, lambda tmp: figure.savefig(tmp, dpi=96, format="png"))
    plt.close(figure)
