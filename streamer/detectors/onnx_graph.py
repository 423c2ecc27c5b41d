"""A TF.js graph (`tfjs_graph.GraphModel`) traced to ONNX once per input size and run in ONNX Runtime.

Our interpreter runs a graph op by op; ONNX Runtime fuses its additions,
paddings, layout copies and clamps, which is most of the interpreter's time
(CenterNet: ~3x faster on a CPU, the same outputs). The interpreter folds
upsampling sizes into constants for the input size it sees, so a trace holds
for one size: each size a detector meets (one per source resolution) is
traced once, checked against the interpreter on the same input, and cached as
`<cache>/<tag>_<W>x<H>.onnx` beside a sidecar naming the graph files it came
from. A size whose export fails or disagrees runs in the interpreter, said in
one line; so does everything when onnxruntime is missing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cocoer_core.errors import CheckpointError, first_line
from cocoer_core.onnx_cache import ExportSpec, export_checked
from cocoer_core.onnx_session import open_session
from cocoer_core.sidecar import file_stamp, is_current
from cocoer_core.speed_choice import faster
from streamer.detectors.tfjs_graph import GraphModel

logger = logging.getLogger(__name__)

#: Bumped when the interpreter's ops change what they export to (a cached export of an older one is redone):
#: 2 = TF1 resizes as slices and blends (not grid_sample), symmetric SAME padding inside the convolution.
INTERPRETER_REVISION = 2

#: Largest difference allowed between the export and the interpreter, per output (scores; box sides in pixels).
TOLERANCE = (1e-3, 0.05)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _Traced(nn.Module):
    def __init__(self, graph: GraphModel, input_name: str, outputs: Sequence[str]) -> None:
        super().__init__()
        self.graph, self.input_name, self.outputs = graph, input_name, list(outputs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.graph.run({self.input_name: x}, self.outputs))


class OnnxGraph:
    """`run(x)` for an NHWC float image batch: ONNX Runtime per input size, the interpreter where it cannot."""

    def __init__(
        self,
        graph: GraphModel,
        input_name: str,
        outputs: Sequence[str],
        cache_dir: Path,
        tag: str,
        source_files: Sequence[Path],
        threads: int = 0,
    ) -> None:
        self.graph = graph
        self.input_name = input_name
        self.outputs = list(outputs)
        self.cache_dir = Path(cache_dir).expanduser()
        self.tag = tag
        self.source = [file_stamp(p) for p in source_files]
        self.threads = threads
        self._sessions: dict[tuple[int, int], Any] = {}
        self._lock = threading.Lock()

    def run(self, x: torch.Tensor) -> list[torch.Tensor]:
        size = (int(x.shape[1]), int(x.shape[2]))
        if size not in self._sessions:
            with self._lock:
                if size not in self._sessions:
                    self._sessions[size] = self._open(size)
        session = self._sessions[size]
        if session is False:
            return self.graph.run({self.input_name: x}, self.outputs)
        arrays = session.run(None, {"image": np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})
        return [torch.from_numpy(a) for a in arrays]

    def sizes(self) -> dict[tuple[int, int], bool]:
        """The input sizes (w, h) met so far, each with whether ONNX Runtime runs it (False: the interpreter
        does, the size's export having failed or its cached file being damaged)."""
        met = dict(self._sessions)  # one step under the GIL: asked from another thread (a Ray actor's figures)
        return {(w, h): session is not False for (h, w), session in sorted(met.items())}

    def faster_here(self, size: tuple[int, int]) -> str:
        """`onnxruntime` or `torch` (the interpreter), whichever runs an image of `size` (h, w) faster on this
        machine: timed once, stored in that size's sidecar. torch where the size cannot be exported."""
        x = torch.from_numpy(np.random.default_rng(1).uniform(0, 255, (1, *size, 3)).astype(np.float32))
        self.run(x)  # exports (and checks) this size if needed
        session = self._sessions[size]
        if session is False:
            return "torch"
        feed = {"image": x.numpy()}
        calls = {"torch": lambda: self.graph.run({self.input_name: x}, self.outputs),
                 "onnxruntime": lambda: session.run(None, feed)}  # fmt: skip
        chosen, timings = faster(self._paths(size)[1], f"detector ({self.tag})", calls)
        logger.debug("%s %dx%d ms per image: %s", self.tag, size[1], size[0], timings)
        return chosen

    def _paths(self, size: tuple[int, int]) -> tuple[Path, Path]:
        h, w = size
        path = self.cache_dir / f"{self.tag}_{w}x{h}.onnx"
        return path, path.with_suffix(".json")

    def _settings(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "torch": torch.__version__,
            "outputs": self.outputs,
            "interpreter": INTERPRETER_REVISION,
        }

    def _open(self, size: tuple[int, int]) -> Any:
        """A session for this input size (exported first if needed), or False: the interpreter runs it."""
        path, _ = self._paths(size)
        if not is_current(path, self._settings()):  # the sidecar may also hold the runtimes' timings (faster())
            try:
                self._export(size, path)
            except Exception as exc:  # the exporter raises many types; any of them means: use the interpreter
                logger.warning("%s %dx%d: ONNX export failed (%s); it runs in PyTorch", self.tag, size[1], size[0],
                               first_line(exc))  # fmt: skip
                return False
        try:
            return open_session(path, self.tag, "cpu", self.threads)
        except CheckpointError as exc:  # a damaged cached file
            logger.warning("%s; %s runs in PyTorch", exc, self.tag)
            return False

    def _export(self, size: tuple[int, int], path: Path) -> None:
        """Trace the interpreter at this input size, check it on two images (the batch axis too), keep it."""
        h, w = size
        sample = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (1, h, w, 3)).astype(np.float32))
        spec = ExportSpec(
            inputs=("image",),
            outputs=tuple(f"out{i}" for i in range(len(self.outputs))),
            example=(sample,),
            checks=((torch.cat([sample, sample.flip(2)]),),),
            dynamic_axes={"image": {0: "batch"}},
            tolerance=TOLERANCE,
        )
        export_checked(_Traced(self.graph, self.input_name, self.outputs), spec, path, self._settings(),
                       f"{self.tag} {w}x{h}")  # fmt: skip
        logger.info("%s: exported to ONNX for %dx%d input (%s)", self.tag, w, h, path)
