"""The face-expression baseline's network in ONNX Runtime: exported from the same module once, checked, cached.

mini-Xception is small (a 64x64 grey face, 58k weights), so PyTorch's cost per
operation is most of its time: ONNX Runtime runs it ~8x faster on a CPU. The
export takes a second and happens on first use (or with `python -m
cocoer_core.export --model baseline`) into a cache folder as
`fer2013-mini-xception.onnx`, beside a JSON sidecar naming the HDF5 file it
came from and the exporter; it is kept only when ONNX Runtime gives PyTorch's
logits within 1e-4 on two batch sizes other than the trace's.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cocoer_core.errors import CheckpointError, first_line
from cocoer_core.onnx_core import open_session
from cocoer_core.speed_choice import read_sidecar, write_sidecar

logger = logging.getLogger(__name__)

BASELINE_ONNX = "fer2013-mini-xception.onnx"
DEFAULT_CACHE = Path("~/.cache/cocoer/onnx")
INPUT, OUTPUT = "faces", "logits"
OPSET = 17
TOLERANCE = 1e-4


class OnnxFaces:
    """An exported mini-Xception: [N, 1, 64, 64] faces in, [N, 7] logits out."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        self.session = open_session(path, "face-expression baseline", device)
        names = tuple(i.name for i in self.session.get_inputs())
        outputs = tuple(o.name for o in self.session.get_outputs())
        if names != (INPUT,) or outputs != (OUTPUT,):
            raise CheckpointError(f"{path} is not an exported face-expression baseline (inputs {', '.join(names)})")
        self.path = path
        self.providers = tuple(self.session.get_providers())

    def logits(self, faces: torch.Tensor) -> torch.Tensor:
        feed = {INPUT: np.ascontiguousarray(faces.detach().cpu().numpy(), dtype=np.float32)}
        return torch.from_numpy(self.session.run(None, feed)[0])


def settings_of(weights: Path) -> dict[str, Any]:
    """What an export depends on: the HDF5 file (name, size, modification time) and the exporting torch."""
    stat = weights.stat()
    return {"source": {"file": weights.name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns},
            "torch": torch.__version__}  # fmt: skip


def export_baseline(network: nn.Module, weights: Path, path: Path) -> float:
    """Trace `network` to `path`, check it in ONNX Runtime, then keep it with its sidecar; the worst difference."""
    network = network.eval().float().cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # processes sharing a cache may race
    started = time.monotonic()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(
                network, (torch.zeros(2, 1, 64, 64),), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "faces"}, OUTPUT: {0: "faces"}}, opset_version=OPSET, dynamo=False,
            )  # fmt: skip
        worst = check_against_torch(network, OnnxFaces(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    meta = {**settings_of(weights), "opset": OPSET, "exporter": f"torch {torch.__version__} (TorchScript)",
            "max_difference": worst, "seconds": round(time.monotonic() - started, 2)}  # fmt: skip
    write_sidecar(path.with_suffix(".json"), meta)
    return worst


def check_against_torch(network: nn.Module, exported: OnnxFaces) -> float:
    """Faces in [-1, 1] in batches of 1 and 5 through both; raise unless every logit is within TOLERANCE."""
    g = torch.Generator().manual_seed(1)
    worst = 0.0
    for n in (1, 5):
        faces = torch.rand(n, 1, 64, 64, generator=g) * 2 - 1
        with torch.no_grad():
            expected = network(faces)
        worst = max(worst, float((expected - exported.logits(faces)).abs().max()))
    if worst > TOLERANCE:
        raise CheckpointError(f"the baseline's ONNX export differs from PyTorch by {worst:.2e} (> {TOLERANCE})")
    return worst


def exported_baseline(
    network: nn.Module, weights: Path, cache_dir: Path, device: str = "cpu", create: bool = True
) -> OnnxFaces | None:
    """The cached export in ONNX Runtime, made first when `create` and it is missing or out of date.

    None (PyTorch runs) when onnxruntime is missing or the file cannot be made or read, each in one line.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        logger.warning("emotion.runtime: onnxruntime is not installed, the face baseline runs in PyTorch")
        return None
    path = Path(cache_dir).expanduser() / BASELINE_ONNX
    meta = read_sidecar(path.with_suffix(".json"))
    current = path.is_file() and all(meta.get(k) == v for k, v in settings_of(weights).items())
    if current:
        try:
            return OnnxFaces(path, device)
        except CheckpointError as exc:  # a damaged cache file: said, then made again (a second's work)
            logger.warning("%s%s", exc, ": exported again" if create else ": the face baseline runs in PyTorch")
    if not create:
        return None
    try:
        export_baseline(network, weights, path)
        exported = OnnxFaces(path, device)
    except (CheckpointError, OSError, RuntimeError) as exc:
        logger.warning("the face baseline could not be exported to %s (%s): it runs in PyTorch", path,
                       first_line(exc))  # fmt: skip
        return None
    logger.info("face baseline exported to ONNX (%s), checked against PyTorch", path)
    return exported
