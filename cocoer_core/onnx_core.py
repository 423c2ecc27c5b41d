"""An exported CocoER (`cocoer_core.export`) in ONNX Runtime, giving what the PyTorch path gives.

The exclusion order is computed here from the exported level losses with the
same stable sort as `competition.exclusion_order`. Execution providers:
TensorRT, then CUDA, then CPU, whichever this onnxruntime build has.
A missing onnxruntime, an unreadable file or one with other inputs is a
one-line `CheckpointError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cocoer_core.competition import exclusion_order
from cocoer_core.errors import CheckpointError, first_line
from cocoer_core.model import CocoEROutput

#: Preferred first; only those the installed onnxruntime offers are asked for.
PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class OnnxCore:
    """One ONNX Runtime session over an exported CocoER."""

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0) -> None:
        from cocoer_core.export import INPUTS, OUTPUTS

        try:
            import onnxruntime as ort
        except ImportError:
            raise CheckpointError("onnxruntime is not installed (pip install onnxruntime)") from None
        if not path.is_file():
            raise CheckpointError(f"exported CocoER {path} not found (python -m cocoer_core.export makes it)")
        available = ort.get_available_providers()
        wanted = [p for p in PROVIDERS if p in available and (device != "cpu" or p == "CPUExecutionProvider")]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own exception types for damaged files
            raise CheckpointError(f"{path} is not a readable ONNX model ({first_line(exc)})") from None
        names = tuple(i.name for i in self.session.get_inputs())
        outputs = tuple(o.name for o in self.session.get_outputs())
        if names != INPUTS or outputs != OUTPUTS:
            raise CheckpointError(f"{path} is not an exported CocoER (inputs {', '.join(names)})")
        self.path = path
        self.providers = tuple(self.session.get_providers())

    def run(self, *inputs: torch.Tensor) -> list[np.ndarray]:
        """The graph's outputs for (context, body, head, coord_body, coord_head, index)."""
        from cocoer_core.export import INPUTS

        feed: dict[str, Any] = {name: t.detach().cpu().numpy() for name, t in zip(INPUTS, inputs, strict=True)}
        return list(self.session.run(None, feed))

    def output(self, *inputs: torch.Tensor) -> CocoEROutput:
        final, vi, head, body, context, losses, fused = (torch.from_numpy(a) for a in self.run(*inputs))
        return CocoEROutput(final, vi, head, body, context, losses, exclusion_order(losses), fused)
