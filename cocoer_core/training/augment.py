"""One training person's three views, augmented as the official training code does (spec §9.2).

1. A random body box between the head box and the head-body hull, and a
   random context crop around it; boxes shifted into the crop.
2. A horizontal flip with p = 0.5.
3. ColorJitter(brightness 0.4, contrast 0.4, saturation 0.4) on the context,
   in a random order, as torchvision's.
4. Body and head cropped from the augmented context (all three views share
   one photometric transform), each resized to 224, boxes to the 224 frame.

Every random number comes from the `numpy.random.Generator` passed in, so a
sample's views depend only on (seed, epoch, index): the same in a resumed run,
in any data-loader worker and on any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from cocoer_core.preprocess import boxes_to_224, crop, integer_box, resize_224, to_tensor

#: ColorJitter strength per property (the release's brightness, contrast, saturation; hue 0).
JITTER = 0.4
IntBox = tuple[int, int, int, int]


@dataclass
class PersonViews:
    """CocoER's inputs for one person, its context its own."""

    context: torch.Tensor  # [3, 224, 224]
    body: torch.Tensor  # [3, 224, 224]
    head: torch.Tensor  # [3, 224, 224]
    coord_body: torch.Tensor  # [4] int64, 224 frame
    coord_head: torch.Tensor  # [4]


def _between(rng: np.random.Generator, low: int, high: int) -> int:
    """An integer uniform in [low, high] (inclusive); `low` when the range is empty."""
    return int(rng.integers(low, high + 1)) if high > low else low


def random_crop(
    rng: np.random.Generator, head: IntBox, body: IntBox, width: int, height: int
) -> tuple[IntBox, IntBox, IntBox]:
    """(context crop, body, head) in image pixels; the body box always holds the head."""
    hx1, hy1, hx2, hy2 = head
    bx1, by1, bx2, by2 = body
    x1 = _between(rng, min(hx1, bx1), hx1)
    y1 = _between(rng, min(hy1, by1), hy1)
    x2 = _between(rng, hx2, max(hx2, bx2))
    y2 = _between(rng, hy2, max(hy2, by2))
    context = (_between(rng, 0, x1), _between(rng, 0, y1), _between(rng, x2, width), _between(rng, y2, height))
    return context, (x1, y1, x2, y2), head


def _shift(box: IntBox, context: IntBox) -> IntBox:
    cx1, cy1, cx2, cy2 = context
    w, h = cx2 - cx1, cy2 - cy1
    return integer_box((box[0] - cx1, box[1] - cy1, box[2] - cx1, box[3] - cy1), w, h)


def _flip(box: IntBox, width: int) -> IntBox:
    x1, y1, x2, y2 = box
    return width - x2, y1, width - x1, y2


def color_jitter(image: Image.Image, rng: np.random.Generator, strength: float = JITTER) -> Image.Image:
    """torchvision's ColorJitter(b, c, s, 0) with factors and order drawn from `rng`."""
    factors = rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength, size=3)
    adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)
    for k in rng.permutation(3):
        image = adjust[k](image, float(factors[k]))
    return image


def train_views(
    rgb: np.ndarray,
    body: Sequence[float],
    head: Sequence[float],
    rng: np.random.Generator,
    resize: str = "pil",
    jitter: float = JITTER,
) -> PersonViews:
    """One augmented person from its RGB image (H x W x 3 uint8) and its body and head boxes (pixels)."""
    height, width = rgb.shape[:2]
    head_box = integer_box(head, width, height)
    body_box = integer_box(body, width, height)
    context_box, body_box, head_box = random_crop(rng, head_box, body_box, width, height)
    context = crop(rgb, context_box)
    body_box, head_box = _shift(body_box, context_box), _shift(head_box, context_box)
    cw = context.shape[1]
    if rng.random() < 0.5:
        context = context[:, ::-1]
        body_box, head_box = _flip(body_box, cw), _flip(head_box, cw)
    if jitter > 0:
        context = np.asarray(color_jitter(Image.fromarray(np.ascontiguousarray(context)), rng, jitter))
    context = np.ascontiguousarray(context)
    return views_of(context, body_box, head_box, resize)


def plain_views(rgb: np.ndarray, body: Sequence[float], head: Sequence[float], resize: str = "pil") -> PersonViews:
    """No augmentation: the whole image is the context (as evaluation and the live pipeline)."""
    height, width = rgb.shape[:2]
    return views_of(rgb, integer_box(body, width, height), integer_box(head, width, height), resize)


def views_of(context: np.ndarray, body: IntBox, head: IntBox, resize: str) -> PersonViews:
    height, width = context.shape[:2]
    crops = [context, crop(context, body), crop(context, head)]
    tensors = to_tensor([resize_224(image, resize) for image in crops])  # [3 views, 3, 224, 224]
    coords = boxes_to_224([body, head], width, height)  # [2, 4]
    return PersonViews(tensors[0], tensors[1], tensors[2], coords[0], coords[1])
