"""MTCNN's three-stage cascade (Zhang et al. 2016), driven with OpenCV resampling, in given areas of frames.

The weights are facenet-pytorch's (MIT, inside its wheel), in networks built
in mtcnn_networks.py; the driver is ours. facenet-pytorch's resamples every pyramid level
and every candidate face with PyTorch's adaptive average pooling, ~40% of its
time on a 640x360 frame; `cv2.resize(INTER_AREA)` averages the same pixels in
a fraction of that. Over seven real clips the whole cascade takes 1.7x less
CPU and finds the same faces (median IoU 0.85-0.97), except on a classroom's
small ones: 22 of 26 again, 5 others (bench/face_search.py). The cascade:

1. P-Net slides a 12x12 window (stride 2) over a pyramid of the area, from
   the scale at which the smallest face wanted is 12 px down to the scale at
   which the area's short side is 12 px; windows scoring >= `thresholds[0]`
   become candidates (merged per level at IoU 0.5, then over levels at 0.7);
2. R-Net rescores each candidate's square crop at 24x24 (>= `thresholds[1]`,
   merged at 0.7) and refines its box;
3. O-Net does so at 48x48 (>= `thresholds[2]`); boxes one mostly contains
   are merged (intersection over the smaller box >= 0.7).

Each area has its own smallest face: searched inside a person box, a face is
never much smaller than a tenth of its body's width, so the pyramid starts
coarser there and a close-up costs a few small P-Net passes instead of a
full-frame pyramid. Candidates of every area and frame go through R-Net and
O-Net in one batch, cropped from the whole frame, so a face at an area's edge
is seen whole.

Boxes are in pixel-edge coordinates (a box [0, 10) holds pixels 0-9). The
networks learned the reference driver's rounding, so a window's box and a
crop's pixels are rounded as it does; its 1-based output is not copied (its
x1, y1 are one pixel right of the face's first pixel column and row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2

import numpy as np
import torch

from streamer.detectors.mtcnn_networks import load_networks
from streamer.types import Box

#: P-Net's window and the stride of its output map, in pixels of the pyramid level.
WINDOW, STRIDE = 12, 2
#: Columns of a candidate row: box (4), score, the network's box regression (4), the frame's index.
SCORE, REG, FRAME = 4, slice(5, 9), 9


@dataclass(frozen=True)
class SearchArea:
    """Where to look for faces and the smallest face worth finding there (pixels of the frame)."""

    box: Box
    min_face: float


class MtcnnCascade:
    """Faces in areas of RGB frames: per frame an (N, 5) array of x1, y1, x2, y2, score, best first."""

    def __init__(
        self,
        device: str = "cpu",
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> None:
        self.device = torch.device(device)
        self.pnet, self.rnet, self.onet = load_networks(self.device)
        self.thresholds = thresholds
        self.factor = factor

    @torch.inference_mode()
    def detect(self, frames: Sequence[tuple[np.ndarray, Sequence[SearchArea]]]) -> list[np.ndarray]:
        """Faces in each (HxWx3 uint8 RGB frame, its areas); overlapping finds of one frame merged."""
        rows = [self._propose(rgb, area, k) for k, (rgb, areas) in enumerate(frames) for area in areas]
        found = np.concatenate([np.zeros((0, 10), np.float32), *rows])
        found = found[_nms(found, 0.7)]
        found[:, :4] = _square(_refine(found[:, :4], found[:, REG]))
        images = [rgb for rgb, _ in frames]
        for stage, (net, side) in enumerate(((self.rnet, 24), (self.onet, 48)), start=1):
            if not len(found):
                break
            outputs = net(self._crops(images, found, side))
            found = found.copy()
            found[:, REG], found[:, SCORE] = outputs[0].cpu().numpy(), outputs[-1][:, 1].cpu().numpy()
            found = found[found[:, SCORE] >= self.thresholds[stage]]
            if stage == 1:
                found = found[_nms(found, 0.7)]
                found[:, :4] = _square(_refine(found[:, :4], found[:, REG]))
            else:
                found[:, :4] = _refine(found[:, :4], found[:, REG])
                found = found[_nms(found, 0.7, smaller=True)]
        out = []
        for k in range(len(frames)):
            mine = found[found[:, FRAME] == k, :5]
            out.append(mine[np.argsort(-mine[:, SCORE])])
        return out

    def _propose(self, rgb: np.ndarray, area: SearchArea, frame: int) -> np.ndarray:
        """P-Net's candidates in one area: (N, 10) rows, in frame pixels."""
        x0, y0 = max(int(area.box.x1), 0), max(int(area.box.y1), 0)
        crop = rgb[y0 : int(np.ceil(area.box.y2)), x0 : int(np.ceil(area.box.x2))]
        h, w = crop.shape[:2]
        scale = WINDOW / max(area.min_face, WINDOW)
        found = []
        first: np.ndarray | None = None
        while min(h, w) * scale >= WINDOW:
            size = (int(np.ceil(w * scale)), int(np.ceil(h * scale)))
            # Area averaging costs by the pixels it reads: a level at most half the first one's side is averaged
            # from that level, not the area (~1.6x less time for the pyramid, grey levels within ~0.5 on average).
            source = first if first is not None and first.shape[1] >= 2 * size[0] else crop
            level = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
            first = level if first is None else first
            reg, prob = self.pnet(_tensor(level[None], self.device))
            face = prob[0, 1].cpu().numpy()
            ys, xs = np.nonzero(face >= self.thresholds[0])
            if len(ys):
                # The window at output cell (x, y) covers level pixels [2x, 2x + 12), rounded as the reference does.
                x1, y1 = np.floor((STRIDE * xs + 1) / scale) - 1, np.floor((STRIDE * ys + 1) / scale) - 1
                x2, y2 = np.floor((STRIDE * xs + WINDOW) / scale), np.floor((STRIDE * ys + WINDOW) / scale)
                level_rows = np.column_stack(
                    [x1 + x0, y1 + y0, x2 + x0, y2 + y0, face[ys, xs], reg[0][:, ys, xs].T.cpu().numpy(),
                     np.full(len(ys), frame)]
                ).astype(np.float32)  # fmt: skip
                found.append(level_rows[_nms(level_rows, 0.5)])
            scale *= self.factor
        return np.concatenate(found) if found else np.zeros((0, 10), np.float32)

    def _crops(self, images: Sequence[np.ndarray], found: np.ndarray, side: int) -> torch.Tensor:
        """Each candidate's pixels inside its frame, resized to side x side.

        A box that runs off the frame is cut to it and its part inside
        stretched to the square, as the reference driver does: zeros in place
        of the missing part (the original MATLAB driver) lose the face a
        selfie holds too close (rejected where stretched scores 0.999).
        """
        out = np.zeros((len(found), side, side, 3), np.uint8)
        # Rounded as the reference: the left and top edges as 1-based pixel numbers, truncated.
        edges = np.trunc(found[:, :4] + [1, 1, 0, 0]).astype(int) - [1, 1, 0, 0]
        for k, ((x1, y1, x2, y2), frame) in enumerate(zip(edges, found[:, FRAME].astype(int), strict=True)):
            rgb = images[frame]
            h, w = rgb.shape[:2]
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            if x2 > x1 and y2 > y1:
                out[k] = cv2.resize(rgb[y1:y2, x1:x2], (side, side), interpolation=cv2.INTER_AREA)
        return _tensor(out, self.device)


def _tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """NHWC uint8 -> NCHW float in MTCNN's range, (x - 127.5) / 128."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return (x - 127.5) * 0.0078125


def _refine(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Boxes moved by a network's regression (each side's offset, in box widths or heights)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, :4] + reg * np.stack([w, h, w, h], axis=1)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres (the next network's input is square)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    x1, y1 = boxes[:, 0] + (w - side) / 2, boxes[:, 1] + (h - side) / 2
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def _nms(rows: np.ndarray, threshold: float, smaller: bool = False) -> np.ndarray:
    """Rows kept by greedy suppression per frame, best score first: a row goes when its overlap with a kept
    one exceeds `threshold`, by IoU (OpenCV's batched NMS: torchvision's result, without importing it) or,
    with `smaller`, by the intersection over the smaller box."""
    if len(rows) < 2:
        return np.arange(len(rows))
    x1, y1, x2, y2, score, frame = (rows[:, k] for k in (0, 1, 2, 3, SCORE, FRAME))
    if not smaller:
        xywh = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1).tolist()
        kept = cv2.dnn.NMSBoxesBatched(xywh, score.tolist(), frame.astype(int).tolist(), -1.0, threshold)
        return np.asarray(kept, dtype=np.int64).reshape(-1)
    area = (x2 - x1) * (y2 - y1)
    order, keep = np.argsort(-score, kind="stable"), []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        iw = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        overlap = iw * ih / np.maximum(np.minimum(area[best], area[rest]), 1e-9)
        order = rest[(overlap < threshold) | (frame[rest] != frame[best])]
    return np.array(keep, dtype=np.int64)
