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

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cocoer_core.competition import exclusion_order
from cocoer_core.errors import CheckpointError
from cocoer_core.model import CocoEROutput
from cocoer_core.onnx_session import open_session


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
