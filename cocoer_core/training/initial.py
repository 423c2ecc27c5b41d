"""Where training starts: random weights, ImageNet + CLIP (`pretrained`), or a CocoER checkpoint folder.

- `random`: every trainable weight at PyTorch's default initialisation.
- `pretrained` (the default): the three ResNet-50 trunks from torchvision's
  ImageNet weights (IMAGENET1K_V1, what `pretrained=True` gave the release's
  torch), and W from the stage-1 `VI_weights/w.pth` when there is one (the
  release loads it when it builds the model), else orthogonal as stage 1 starts.
- a folder holding `GWT.pth` (fine-tuning, e.g. the official weights on your
  own footage): loaded as it is; when the dataset has another class count
  (EMOTIC's 26 -> CAER-S's 7), the layers whose shape depends on it start
  from random and are listed.

CLIP RN50 is frozen and never trained: it is always OpenAI's RN50.pt
(`--clip FILE`, else the weights folder or clip's cache, else downloaded).
Offline with nothing cached, each download fails in one line naming the file
to put where.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cocoer_core.checkpoint import (
    GWT_FILE,
    classes_in,
    find_clip_weights,
    load_clip_rn50,
    load_state,
    load_vi_weights,
    model_state,
    read_checkpoint,
    read_cocoer_state,
)
from cocoer_core.clip_rn50 import ModifiedResNet
from cocoer_core.config import CocoERConfig
from cocoer_core.errors import CheckpointError, reason_of
from cocoer_core.http_body import download_whole
from cocoer_core.model import CocoER

logger = logging.getLogger(__name__)

INITS = ("pretrained", "random")
VI_FILE = Path("VI_weights") / "w.pth"
#: torchvision's ResNet50_Weights.IMAGENET1K_V1 (what `pretrained=True` gave the release's torch).
RESNET50_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
#: torch.hub's naming: `<name>-<first hex digits of the file's SHA-256>.<ext>`.
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")
DOWNLOAD_TIMEOUT_S = 60.0
#: torchvision's ResNet-50 module names -> the trunk's Sequential indices (cocoer_core.backbones).
TRUNK_INDEX = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}


@dataclass
class Initial:
    """The model to train, the frozen CLIP tower, and what was loaded from where."""

    model: CocoER
    clip: ModifiedResNet
    clip_path: Path
    notes: list[str] = field(default_factory=list)


def imagenet_trunk_state(url: str | None = None, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet ResNet-50 weights, keyed as our trunks (downloaded once into torch's cache, where
    torchvision keeps them too; `COCOER_RESNET50_URL` names a mirror of the same file)."""
    url = url or os.environ.get("COCOER_RESNET50_URL") or RESNET50_URL
    name = Path(urllib.parse.urlsplit(url).path).name or "resnet50.pth"
    cache = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not cache.is_file():
        _download_resnet50(url, cache, timeout_s)
    state = model_state(read_checkpoint(cache), cache)
    out = {}
    for key, value in state.items():
        module, _, rest = key.partition(".")
        if module in TRUNK_INDEX:
            out[f"{TRUNK_INDEX[module]}.{rest}"] = value
    return out


def _download_resnet50(url: str, cache: Path, timeout_s: float) -> None:
    """Our own fetch, not torch.hub's: that one has no timeout (a stalled connection waited for ever) and said
    "invalid hash value" as a RuntimeError (a traceback) for a download cut short. The file's name carries the
    start of its SHA-256, as torch.hub names them; it is checked when there is one."""
    logger.info("downloading the ImageNet ResNet-50 weights to %s", cache)
    named = HASH_IN_NAME.search(cache.name)
    digest = hashlib.sha256()

    def same_bytes() -> None:
        if named is not None and not digest.hexdigest().startswith(named[1]):
            raise CheckpointError(f"the download from {url} is not {cache.name} (its SHA-256 differs)")

    try:
        download_whole(url, cache, timeout_s, seen=digest.update, accept=same_bytes)
    except (OSError, CheckpointError) as exc:
        raise CheckpointError(
            f"ImageNet ResNet-50 weights cannot be downloaded ({reason_of(exc)}): "
            f"put {RESNET50_URL} at {cache}, or train with --init random"
        ) from None


def check_same_keys(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """The checkpoint has the model's keys (shapes may differ where the class count enters)."""
    own = set(model.state_dict())
    if own != set(state):
        missing, extra = sorted(own - set(state)), sorted(set(state) - own)
        raise CheckpointError(
            f"{path} is not a CocoER checkpoint: {len(missing)} keys missing ({', '.join(missing[:3])}), "
            f"{len(extra)} unexpected ({', '.join(extra[:3])})"
        )


def load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load every key whose shape fits; return the model's keys left at their initial values."""
    own = model.state_dict()
    fitting = {k: v.to(own[k].dtype) for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return [k for k in own if k not in fitting]


def initial_model(
    init: str,
    num_class: int,
    weights_dir: Path,
    clip_file: Path | None = None,
    vi_weights: Path | None = None,
    inside_lr: float = 0.1,
    dropout: float = 0.1,
    seed: int = 0,
) -> Initial:
    """Build the model to train from `init` (random, pretrained or a checkpoint folder)."""
    torch.manual_seed(seed)  # the random parts are the same on every process and every run
    config = CocoERConfig(num_class=num_class, inside_lr=inside_lr, dropout=dropout)
    model = CocoER(config)
    notes: list[str] = []
    if init == "pretrained":
        trunk = imagenet_trunk_state()
        for name in ("head", "body", "context"):
            getattr(model.backbone, name).load_state_dict(trunk, strict=True)
        notes.append("trunks: ImageNet ResNet-50 (torchvision IMAGENET1K_V1)")
        vi = vi_weights or weights_dir / VI_FILE
        if vi.is_file():
            load_vi_weights(model, vi)
            notes.append(f"W: stage-1 VI weights {vi}")
        elif vi_weights is not None:
            raise CheckpointError(f"VI weights {vi_weights} not found")
        else:
            nn.init.orthogonal_(model.W.weight)
            notes.append(f"W: orthogonal (no {vi})")
    elif init != "random":
        path = Path(init) / GWT_FILE if Path(init).is_dir() else Path(init)
        state = read_cocoer_state(path)
        if classes_in(state, path) == num_class:
            load_state(model, state, path)  # strict: one line naming what does not fit
            notes.append(f"weights: {path}")
        else:
            check_same_keys(model, state, path)
            fresh = load_matching(model, state)
            notes.append(
                f"weights: {path}, {classes_in(state, path)} -> {num_class} classes; random: {', '.join(fresh)}"
            )
    else:
        notes.append("weights: random")
    clip_path = clip_file or find_clip_weights(weights_dir, allow_download=True)
    clip = load_clip_rn50(clip_path)
    notes.append(f"CLIP RN50: {clip_path} (frozen)")
    return Initial(model, clip.visual, clip_path, notes)
