"""The face-expression baseline's network in ONNX Runtime: exported from the same module once, checked, cached.

mini-Xception is small (a 64x64 grey face, 58k weights), so PyTorch's cost per
operation is most of its time: ONNX Runtime runs it 4-8x faster on a CPU
(bench/baseline_speed.py). The export takes a second and happens on first use
(or with `python -m cocoer_core.export --model baseline`) into a cache folder
as `fer2013-mini-xception.onnx`, kept only when ONNX Runtime gives PyTorch's
logits within 1e-4 on two batch sizes other than the trace's (onnx_cache).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cocoer_core.onnx_cache import ExportSpec, OnnxNetwork, cached_network, export_checked, settings_of

BASELINE_ONNX = "fer2013-mini-xception.onnx"
DEFAULT_CACHE = Path("~/.cache/cocoer/onnx")
WHAT = "face baseline"


def baseline_spec() -> ExportSpec:
    """[N, 1, 64, 64] faces in [-1, 1] -> [N, 7] logits; checked on 1 and 5 faces."""
    g = torch.Generator().manual_seed(1)
    checks = tuple((torch.rand(n, 1, 64, 64, generator=g) * 2 - 1,) for n in (1, 5))
    return ExportSpec(inputs=("faces",), outputs=("logits",), example=(torch.zeros(2, 1, 64, 64),), checks=checks,
                      dynamic_axes={"faces": {0: "faces"}, "logits": {0: "faces"}})  # fmt: skip


def export_baseline(network: nn.Module, weights: Path, path: Path) -> float:
    """Export to `path` (checked); the largest logit difference from PyTorch."""
    return export_checked(network, baseline_spec(), path, settings_of([weights]), WHAT)


def exported_baseline(
    network: nn.Module, weights: Path, cache_dir: Path, device: str = "cpu", create: bool = True
) -> OnnxNetwork | None:
    """`<cache_dir>/fer2013-mini-xception.onnx` in ONNX Runtime, made first when needed; None: PyTorch runs."""
    path = Path(cache_dir).expanduser() / BASELINE_ONNX
    return cached_network(network, baseline_spec(), path, [weights], WHAT, device, create)
