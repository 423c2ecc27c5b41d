"""From a BGR frame and person boxes to CocoER's input tensors (spec §2).

Context = the whole frame; body and head = crops of the original-resolution
frame; each resized to 224x224 independently (no aspect preserved), scaled to
[0, 1] and normalised with ImageNet's mean/std (CLIP gets the same tensor, not
CLIP's own normalisation). Boxes go to the 224 frame with x' = trunc(x*224/W).

The release resizes with PIL's antialiased bilinear filter (torchvision
`Resize` on PIL images): that is the default here. `resize="cv2"` uses
cv2.INTER_LINEAR, which the golden vectors were made with.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SIZE = 224


def boxes_to_224(boxes: Sequence[Sequence[float]], width: int, height: int) -> torch.Tensor:
    """[N, 4] integer boxes in the 224x224 context frame (truncated, as the release)."""
    return torch.tensor(
        [
            [int(x1 * SIZE / width), int(y1 * SIZE / height), int(x2 * SIZE / width), int(y2 * SIZE / height)]
            for x1, y1, x2, y2 in boxes
        ],
        dtype=torch.int64,
    ).reshape(-1, 4)


def resize_224(rgb: np.ndarray, resize: str = "pil") -> np.ndarray:
    """HxWx3 uint8 RGB -> 224x224x3 uint8."""
    if resize == "cv2":
        return cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    return np.asarray(Image.fromarray(rgb).resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """224x224x3 uint8 RGB images -> [N, 3, 224, 224] normalised float32."""
    batch = np.stack(images).astype(np.float32) / 255.0
    return torch.from_numpy((batch - IMAGENET_MEAN) / IMAGENET_STD).permute(0, 3, 1, 2).contiguous()


def integer_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """Clamp to the image and truncate to int (as the release), keeping at least one pixel."""
    x1 = min(max(int(box[0]), 0), width - 1)
    y1 = min(max(int(box[1]), 0), height - 1)
    x2 = min(max(int(box[2]), x1 + 1), width)
    y2 = min(max(int(box[3]), y1 + 1), height)
    return x1, y1, x2, y2


def crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x1, y1, x2, y2 = box
    return rgb[y1:y2, x1:x2]
