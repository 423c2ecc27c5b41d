"""A training run's options: the official recipe as defaults (spec §9.4), saved with the run for --resume."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocoer_core.errors import CheckpointError

#: Options a resumed run may change; every other one must stay as the run started.
CHANGEABLE_ON_RESUME = frozenset(
    {"epochs", "max_steps", "patience", "eval_every", "save_every", "workers", "log_every"}
)


@dataclass(frozen=True)
class TrainOptions:
    """What defines a training run.

    Attributes:
        batch_size: persons per optimizer step, over all processes and accumulation steps.
        accumulate: forward/backward passes per optimizer step.
        max_steps: stop after this many optimizer steps over the whole run (0: no limit).
        eval_every: evaluate every N optimizer steps (0: at the end of each epoch).
        patience: stop after N evaluations without improvement (0: never early).
        select_on: the split that picks the saved model; "test" only as the release did, with a warning.
        inside_lr: eta of the coordination step while training (the release trains with 0.1).
        class_weights: static, dynamic or none (cocoer_core.training.objective).
        clip_grad: max gradient norm (0: no clipping, as the release).
        freeze_bn: BatchNorm layers keep their running statistics (small batches, fine-tuning).
        augment: the release's augmentation (spec §9.2); off, each person is seen as evaluation sees it.
        precision: auto (fp16 AMP on CUDA, fp32 on CPU), fp32, fp16 (CUDA), bf16.
        save_every: also write last.pt every N steps (it is always written at each evaluation and at the end).
    """

    dataset: str
    root: str
    heads: str
    out: str
    init: str = "pretrained"
    weights_dir: str = "checkpoints"
    clip: str | None = None
    vi_weights: str | None = None
    epochs: int = 20
    max_steps: int = 0
    batch_size: int = 64
    accumulate: int = 1
    lr: float = 6e-5
    beta1: float = 0.9
    beta2: float = 0.96
    weight_decay: float = 0.01
    lr_step: int = 3
    lr_gamma: float = 0.1
    inside_lr: float = 0.1
    dropout: float = 0.1
    class_weights: str = "static"
    clip_grad: float = 0.0
    eval_every: int = 0
    patience: int = 0
    select_on: str = "val"
    freeze_bn: bool = False
    augment: bool = True
    precision: str = "auto"
    seed: int = 0
    workers: int = -1
    device: str = "cpu"
    save_every: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        """Refuse what no run can use, in one line naming the option, before the data and the models load
        (minutes on EMOTIC): torch's own checks came only then, and some never (StepLR takes a decay of nan: the
        learning rate turned nan after the first `--lr-step` epochs)."""
        for name, low in (
            ("epochs", 1),
            ("batch_size", 1),
            ("accumulate", 1),
            ("lr_step", 1),
            ("log_every", 1),
            ("max_steps", 0),
            ("eval_every", 0),
            ("patience", 0),
            ("save_every", 0),
            ("workers", -1),
        ):
            _at_least(name, getattr(self, name), low)
        for name in ("lr", "beta1", "beta2", "weight_decay", "lr_gamma", "inside_lr", "dropout", "clip_grad"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{_flag(name)} must be a finite number; got {getattr(self, name)}")
        for name in ("lr", "lr_gamma"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{_flag(name)} must be > 0; got {getattr(self, name)}")
        for name in ("weight_decay", "inside_lr", "clip_grad"):
            _at_least(name, getattr(self, name), 0)
        for name in ("beta1", "beta2", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{_flag(name)} must be in [0, 1); got {getattr(self, name)}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _at_least(name: str, value: float, low: float) -> None:
    if value < low:
        raise ValueError(f"{_flag(name)} must be >= {low}; got {value}")


def option_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainOptions)]


def resumed(saved_path: Path, given: dict[str, Any]) -> TrainOptions:
    """The saved options of a run, with the changeable ones the command line gives (the rest must agree)."""
    try:
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
        options = TrainOptions(**{k: v for k, v in saved.items() if k in option_names()})
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{saved_path} cannot be read ({type(exc).__name__}): the run cannot resume") from None
    changes: dict[str, Any] = {}
    for name, value in given.items():
        current = getattr(options, name)
        if value == current or name in ("out", "device"):
            continue
        if name not in CHANGEABLE_ON_RESUME:
            raise CheckpointError(
                f"--{name.replace('_', '-')} {value} differs from the run being resumed ({current}); "
                f"only {', '.join(sorted('--' + n.replace('_', '-') for n in CHANGEABLE_ON_RESUME))} may change"
            )
        changes[name] = value
    if "device" in given:
        changes["device"] = given["device"]
    return dataclasses.replace(options, **changes)
