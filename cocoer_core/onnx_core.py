"""An exported CocoER (`cocoer_core.export`) in ONNX Runtime, giving what the PyTorch path gives.

The exclusion order is computed here from the exported level losses with the
same stable sort as `competition.exclusion_order`. Execution providers:
TensorRT (fp16 unless fp32 is asked for; its engine built once and cached in
`tensorrt/` beside the file), then CUDA, then CPU, whichever this
onnxruntime build has and the device allows.
A missing onnxruntime, an unreadable file or one with other inputs is a
one-line `CheckpointError` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cocoer_core.competition import exclusion_order
from cocoer_core.errors import CheckpointError, first_line
from cocoer_core.model import CocoEROutput

#: Preferred first; only those the installed onnxruntime offers are asked for.
PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def provider_choice(available: Sequence[str], device: str, precision: str, cache: Path) -> list[Any]:
    """The execution providers to ask for, best first: on a GPU TensorRT (its engine built once and cached in
    `cache`, fp16 unless fp32 is asked for), then CUDA; the CPU always, last."""
    wanted: list[Any] = []
    for name in PROVIDERS:
        if name not in available or (device == "cpu" and name != "CPUExecutionProvider"):
            continue
        if name == "TensorrtExecutionProvider":
            options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                       "trt_fp16_enable": precision != "fp32"}  # fmt: skip
            wanted.append((name, options))
        else:
            wanted.append(name)
    return wanted


def open_session(path: Path, what: str, device: str = "cpu", threads: int = 0, precision: str = "fp32") -> Any:
    """An ONNX Runtime session over `path`, or a one-line `CheckpointError` naming the file."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise CheckpointError("onnxruntime is not installed (pip install onnxruntime)") from None
    if not path.is_file():
        raise CheckpointError(f"exported {what} {path} not found (python -m cocoer_core.export makes it)")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # No busy-waiting between calls: the pipeline's other stages need the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = provider_choice(ort.get_available_providers(), device, precision, path.parent / "tensorrt")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for damaged files
        raise CheckpointError(f"{path} is not a readable ONNX model ({first_line(exc)})") from None


class OnnxCore:
    """One ONNX Runtime session over an exported CocoER."""

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0, precision: str = "fp32") -> None:
        from cocoer_core.export import INPUTS, OUTPUTS

        self.session = open_session(path, "CocoER", device, threads, precision)
        names = tuple(i.name for i in self.session.get_inputs())
        outputs = tuple(o.name for o in self.session.get_outputs())
        if names != INPUTS or outputs != OUTPUTS:
            raise CheckpointError(f"{path} is not an exported CocoER (inputs {', '.join(names)})")
        self.path = path
        self.providers = tuple(self.session.get_providers())
        # TensorRT builds its engine in fp16 unless fp32 was asked for; the CPU and CUDA providers run the file's fp32.
        self.precision = "fp16" if self.providers[0] == "TensorrtExecutionProvider" and precision != "fp32" else "fp32"

    def run(self, *inputs: torch.Tensor) -> list[np.ndarray]:
        """The graph's outputs for (context, body, head, coord_body, coord_head, index)."""
        from cocoer_core.export import INPUTS

        feed: dict[str, Any] = {name: t.detach().cpu().numpy() for name, t in zip(INPUTS, inputs, strict=True)}
        return list(self.session.run(None, feed))

    def output(self, *inputs: torch.Tensor) -> CocoEROutput:
        final, vi, head, body, context, losses, fused = (torch.from_numpy(a) for a in self.run(*inputs))
        return CocoEROutput(final, vi, head, body, context, losses, exclusion_order(losses), fused)
