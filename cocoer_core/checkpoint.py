"""Loading the official files unchanged: GWT.pth, VI_weights/w.pth and OpenAI's RN50.pt.

Checkpoint quirks live here and nowhere else:
- GWT.pth is `{'model': state_dict, ...}`, saved from `cuda:0`; it may also
  carry the pickled training optimizer, which `weights_only=True` refuses.
  That layout (the AdamW object, nothing else) loads through an unpickler
  that knows only its classes, so no file runs code of its own choosing;
  anything beyond it is unpickled fully only when the file is trusted.
- A `module.` prefix (DataParallel) is stripped.
- RN50.pt is a TorchScript archive holding fp16 weights plus three settings
  entries; it loads into our own CLIP RN50 in float32.
Every problem becomes a one-line `CheckpointError` naming the file and what
to do.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from cocoer_core.clip_rn50 import CLIPRN50, clip_state_dict_from_archive
from cocoer_core.errors import CheckpointError, reason_of
from cocoer_core.http_body import download_whole

logger = logging.getLogger(__name__)

GWT_FILE = "GWT.pth"
CLIP_FILE = "RN50.pt"
#: OpenAI's published RN50 (the SHA-256 is part of the URL; we verify it).
CLIP_URL = "https://openaipublic.azureedge.net/clip/models/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt"
CLIP_SHA256 = CLIP_URL.rsplit("/", 2)[-2]
GWT_HINT = "download GWT.pth from the link in the official CocoER README (bisno/CocoER) and put it in checkpoints/"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


#: What the official training script pickles besides tensors and containers: `'opt'`, the whole AdamW object
#: (`weights_only=True` can't rebuild its `defaultdict` state). A file holding these and nothing else loads
#: without running code of the file's choosing, whoever made it.
TRAINING_PICKLES = frozenset(
    {
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("builtins", "dict"),
        ("__builtin__", "dict"),  # protocol 2's name for it
        ("torch.optim.adamw", "AdamW"),
        ("torch.optim.adam", "Adam"),
    }
)


class _TrainingUnpickler(pickle.Unpickler):
    """Rebuilds only `TRAINING_PICKLES`' classes and functions (torch names a storage type itself)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in TRAINING_PICKLES:
            raise pickle.UnpicklingError(f"{module}.{name} is not one of the training script's objects")
        return super().find_class(module, name)


def _training_load(file: Any, **kwargs: Any) -> Any:
    return _TrainingUnpickler(file, **kwargs).load()


#: `torch.load`'s `pickle_module` for the training script's layout.
_training_pickle = types.SimpleNamespace(__name__="cocoer_training_pickle", Unpickler=_TrainingUnpickler,
                                         load=_training_load)  # fmt: skip


def read_checkpoint(path: Path, trust_pickle: bool = False) -> Any:
    """torch.load on CPU: weights only; else the training script's layout (its AdamW object); else, only when
    the file is trusted, full unpickling (which runs whatever code the file names)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch refuses pickled objects it does not know (e.g. the optimizer) in weights-only mode.
        if "weights only load failed" not in str(exc).lower():
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({_first_line(exc)})") from exc
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({_first_line(exc)})") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_training_pickle)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            raise CheckpointError(
                f"{path} holds pickled Python objects besides the weights and the training optimizer ({exc}), "
                "which run code as they load: load it only if you trust it (emotion.trust_checkpoint=true)"
            ) from None
        logger.warning("%s holds pickled objects besides the weights: loading it fully (trusted file)", path)
    except Exception as exc:
        raise CheckpointError(f"{path} cannot be unpickled ({_first_line(exc)})") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path} cannot be unpickled ({_first_line(exc)})") from exc


def clean_state_dict(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Strip DataParallel's `module.` prefix; keep tensors only."""
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[key.removeprefix("module.")] = value
    return out


def model_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: `obj['model']`, `obj['state_dict']` or obj itself."""
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                return clean_state_dict(obj[key])
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return clean_state_dict(obj)
    raise CheckpointError(f"{path} holds no state dict (expected a dict with a 'model' entry)")


def _preview(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise one line naming missing, unexpected and mis-shaped keys."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_preview(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches: {_preview(wrong)}")
    if problems:
        raise CheckpointError(f"{path} does not fit this model: " + "; ".join(problems))


def load_state(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Check, then `load_state_dict(strict=True)` with dtypes cast to the module's."""
    check_state_dict(module, state, path)
    current = module.state_dict()
    module.load_state_dict({k: v.to(current[k].dtype) for k, v in state.items()}, strict=True)


#: The fused classifier's last layer: its rows are the model's classes (26 EMOTIC, 7 CAER-S, ...).
CLASSES_KEY = "cls_global_all.8.weight"


def read_cocoer_state(path: Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A CocoER checkpoint's state dict (GWT.pth or one `cocoer_core.train` saved)."""
    if not path.is_file():
        raise CheckpointError(f"CocoER checkpoint {path} not found: {GWT_HINT}")
    return model_state(read_checkpoint(path, trust_pickle), path)


def classes_in(state: Mapping[str, torch.Tensor], path: Path) -> int:
    """How many classes a CocoER state dict predicts."""
    weight = state.get(CLASSES_KEY)
    if weight is None or weight.ndim != 2:
        raise CheckpointError(f"{path} is not a CocoER checkpoint (no {CLASSES_KEY})")
    return int(weight.shape[0])


def load_cocoer_weights(model: nn.Module, path: Path, trust_pickle: bool = False) -> None:
    """Load GWT.pth (or any checkpoint saved by the training code) strictly."""
    if not path.is_file():
        raise CheckpointError(f"CocoER checkpoint {path} not found: {GWT_HINT}")
    load_state(model, model_state(read_checkpoint(path, trust_pickle), path), path)


def load_vi_weights(model: nn.Module, path: Path) -> None:
    """Load the stage-1 VI matrix (`VI_weights/w.pth`: {'model': {'W.weight': 1024x1024}})."""
    state = model_state(read_checkpoint(path), path)
    if set(state) != {"W.weight"}:
        raise CheckpointError(f"{path} should hold exactly 'W.weight', found {_preview(sorted(state))}")
    load_state(cast(nn.Module, model.W), {"weight": state["W.weight"]}, path)


def clip_candidates(weights_dir: Path) -> list[Path]:
    """Where RN50.pt may be: our checkpoints folder, then OpenAI clip's own cache."""
    return [weights_dir / CLIP_FILE, Path("~/.cache/clip").expanduser() / CLIP_FILE]


def download_clip_rn50(
    destination: Path, timeout_s: float = 30.0, url: str | None = None, sha256: str = CLIP_SHA256
) -> Path:
    """Fetch OpenAI's RN50.pt (or from `COCOER_CLIP_URL`, a mirror) and verify its SHA-256.

    Whole or not at all: a download cut short, refused or of other bytes is one
    line and leaves nothing (two processes fetching at once each write their
    own temporary file; a killed one's is cleared by the next fetch).
    """
    url = url or os.environ.get("COCOER_CLIP_URL") or CLIP_URL
    digest = hashlib.sha256()

    def same_bytes() -> None:
        if digest.hexdigest() != sha256:
            raise CheckpointError(f"downloaded RN50.pt has the wrong SHA-256; try again or fetch {url} by hand")

    try:
        download_whole(url, destination, timeout_s, seen=digest.update, accept=same_bytes)
    except OSError as exc:
        raise CheckpointError(
            f"CLIP RN50 weights not found and the download failed ({reason_of(exc)}); "
            f"put OpenAI's RN50.pt at {destination} (from {url})"
        ) from None
    return destination


def find_clip_weights(weights_dir: Path, allow_download: bool = True) -> Path:
    for candidate in clip_candidates(weights_dir):
        if candidate.is_file():
            return candidate
    if not allow_download:
        raise CheckpointError(
            f"CLIP RN50 weights not found: put OpenAI's RN50.pt at {weights_dir / CLIP_FILE} "
            "(python -m streamer.tools.fetch_models --clip fetches it; or allow the download at run time)"
        )
    return download_clip_rn50(weights_dir / CLIP_FILE)


def _clip_archive_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():
            # OpenAI ships RN50.pt as TorchScript; torch.jit.load is the only reader of that format.
            warnings.simplefilter("ignore", FutureWarning)
            archive = torch.jit.load(str(path), map_location="cpu")
        return dict(archive.state_dict())
    except RuntimeError:
        pass  # not TorchScript: maybe a plain state dict (e.g. converted weights)
    return model_state(read_checkpoint(path, trust_pickle=False), path)


def load_clip_rn50(path: Path) -> CLIPRN50:
    """OpenAI's RN50.pt (TorchScript archive or plain state dict) in our CLIP RN50, float32, eval."""
    if not path.is_file():
        raise CheckpointError(f"CLIP RN50 weights {path} not found")
    clip = CLIPRN50()
    load_state(clip, clip_state_dict_from_archive(_clip_archive_state(path)), path)
    return clip.eval()
