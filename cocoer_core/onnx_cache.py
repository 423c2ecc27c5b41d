"""Small networks exported to ONNX on first use, checked against PyTorch, cached, and run in ONNX Runtime.

For networks that export in a second (the face baseline: baseline_onnx), so
making the file when it is missing, out of date or damaged is cheaper than
asking the user to. (MTCNN's three networks were tried this way: ONNX Runtime
ran R-Net and O-Net 2-3.5x faster, but the cascade as a whole no faster, as
P-Net's large levels dominate and run as fast in PyTorch.) Each file has a JSON sidecar: the settings it was made
from (the weights' size and time, the exporting torch), which must match for
it to be used, and what the check found. A file is kept only when ONNX
Runtime gives PyTorch's outputs within the tolerance on inputs other than the
trace's (other batch sizes and, for fully convolutional networks, other image
sizes). Anything wrong is one warning line and PyTorch runs.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cocoer_core.errors import CheckpointError, first_line
from cocoer_core.onnx_session import open_session
from cocoer_core.sidecar import file_stamp, is_current, sidecar_of, write_sidecar
from cocoer_core.whole_files import replaced_whole

logger = logging.getLogger(__name__)

OPSET = 17

#: ONNX Runtime's input type names -> what to feed.
_NUMPY: dict[str, type] = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
                           "tensor(int32)": np.int32, "tensor(bool)": np.bool_}  # fmt: skip


@dataclass(frozen=True)
class ExportSpec:
    """How to trace a network and what to check it on."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    example: tuple[torch.Tensor, ...]  # traced with these
    checks: tuple[tuple[torch.Tensor, ...], ...]  # checked with these (other shapes than the example's)
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    tolerance: float | tuple[float, ...] = 1e-4  # per output where a tuple (its last for the outputs after it)

    def limit(self, output: int) -> float:
        """The largest difference from PyTorch allowed in an output."""
        if isinstance(self.tolerance, tuple):
            return self.tolerance[min(output, len(self.tolerance) - 1)]
        return self.tolerance


class OnnxNetwork:
    """A cached export in ONNX Runtime, called like the PyTorch network: tensors in, a tuple of tensors out."""

    def __init__(self, path: Path, spec: ExportSpec, what: str, device: str = "cpu", threads: int = 0) -> None:
        self.session = open_session(path, what, device, threads)
        names = tuple(i.name for i in self.session.get_inputs())
        outputs = tuple(o.name for o in self.session.get_outputs())
        if names != spec.inputs or outputs != spec.outputs:
            raise CheckpointError(f"{path} is not an exported {what} (inputs {', '.join(names)})")
        self.path = path
        self.spec = spec
        self.providers = tuple(self.session.get_providers())
        # Each input as the graph declares it (CocoER's boxes and frame indices are int64, images float).
        self._dtypes = [_NUMPY.get(i.type, np.float32) for i in self.session.get_inputs()]

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feed: dict[str, np.ndarray] = {
            name: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)
            for name, t, dtype in zip(self.spec.inputs, inputs, self._dtypes, strict=True)
        }
        return tuple(torch.from_numpy(a) for a in self.session.run(None, feed))


def settings_of(weights: Sequence[Path]) -> dict[str, Any]:
    """What an export depends on: the weight files (name, size, modification time) and the exporting torch."""
    return {"source": [file_stamp(p) for p in weights], "torch": torch.__version__}


def export_checked(network: nn.Module, spec: ExportSpec, path: Path, settings: dict[str, Any], what: str) -> float:
    """Trace `network` to `path`, check it in ONNX Runtime, keep it with its sidecar; the largest difference.

    The trace and the check run on the CPU; a network that was on a GPU is moved back there, failed or not.
    """
    device = next(network.parameters(), torch.empty(0)).device
    try:
        return _export_checked(network.eval().float().cpu(), spec, path, settings, what)
    finally:
        network.to(device)


def _export_checked(network: nn.Module, spec: ExportSpec, path: Path, settings: dict[str, Any], what: str) -> float:
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with replaced_whole(path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(
                network, spec.example, str(tmp), input_names=list(spec.inputs), output_names=list(spec.outputs),
                dynamic_axes=spec.dynamic_axes, opset_version=OPSET, dynamo=False,
            )  # fmt: skip
        exported = OnnxNetwork(tmp, spec, what)
        worst = 0.0
        for inputs in spec.checks:
            with torch.no_grad():
                expected = network(*inputs)
            expected = expected if isinstance(expected, tuple) else (expected,)
            for k, (a, b) in enumerate(zip(expected, exported(*inputs), strict=True)):
                diff = float((a.cpu() - b).abs().max())  # a network that is not a module may run on a GPU
                if diff > spec.limit(k):
                    raise CheckpointError(
                        f"the {what} export's {spec.outputs[k]} differs from PyTorch by {diff:.2e} (> {spec.limit(k)})"
                    )
                worst = max(worst, diff)
        del exported  # the session holds the file open on some systems
    meta = {**settings, "opset": OPSET, "exporter": f"torch {torch.__version__} (TorchScript)",
            "max_difference": worst, "seconds": round(time.monotonic() - started, 2)}  # fmt: skip
    write_sidecar(sidecar_of(path), meta)  # replaced whole: timings of an earlier export no longer hold
    return worst


def cached_network(
    network: nn.Module,
    spec: ExportSpec,
    path: Path,
    weights: Sequence[Path],
    what: str,
    device: str = "cpu",
    create: bool = True,
    threads: int = 0,
) -> OnnxNetwork | None:
    """The export at `path` in ONNX Runtime, made first (when `create`) if it is missing, stale or damaged.

    None (PyTorch runs) when onnxruntime is missing or the file cannot be made or read, each in one line.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        logger.warning("onnxruntime is not installed: the %s runs in PyTorch", what)
        return None
    settings = settings_of(weights)
    if is_current(path, settings):
        try:
            return OnnxNetwork(path, spec, what, device, threads)
        except CheckpointError as exc:  # a damaged cache file: said, then made again (a second's work)
            logger.warning("%s%s", exc, ": exported again" if create else f": the {what} runs in PyTorch")
    if not create:
        return None
    try:
        export_checked(network, spec, path, settings, what)
        exported = OnnxNetwork(path, spec, what, device, threads)
    except (CheckpointError, OSError, RuntimeError) as exc:
        logger.warning("the %s could not be exported to %s (%s): it runs in PyTorch", what, path, first_line(exc))
        return None
    logger.info("%s exported to ONNX (%s), checked against PyTorch", what, path)
    return exported
