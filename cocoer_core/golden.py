"""Golden forward passes (spec §15): the deterministic fill rule and the inputs.

A golden JSON records the official model's outputs on one image with every
tensor filled by a seeded rule instead of trained weights. Re-filling our
model by the same rule and running the same inputs must reproduce them.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2

import numpy as np
import torch
from torch import nn

from cocoer_core.preprocess import IMAGENET_MEAN, IMAGENET_STD, boxes_to_224


def fill_tensor(full_key: str, like: torch.Tensor) -> torch.Tensor:
    """The value the rule gives the tensor named `full_key` (seed tag + key)."""
    if not like.is_floating_point():
        return like.clone()
    if full_key.endswith(("running_mean", "num_batches_tracked")):
        return torch.zeros_like(like)
    if full_key.endswith("running_var"):
        return torch.ones_like(like)
    generator = torch.Generator().manual_seed(zlib.crc32(full_key.encode()))
    shape = tuple(like.shape)
    if len(shape) >= 2:
        return torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
    if len(shape) == 1:
        values = torch.randn(shape, generator=generator)
        return 1 + 0.1 * values if full_key.endswith("weight") else 0.1 * values
    return torch.randn((), generator=generator)


def _scale_for(name: str, fill_scale: Mapping[str, float]) -> float | None:
    matches = [prefix for prefix in fill_scale if name.startswith(prefix)]
    return float(fill_scale[max(matches, key=len)]) if matches else None


@torch.no_grad()
def fill_module(
    module: nn.Module, seed_tag: str, name_prefix: str = "", fill_scale: Mapping[str, float] | None = None
) -> None:
    """Fill every parameter and buffer of `module` by the rule.

    `name_prefix` is prepended to the module's own keys ("" for CocoER,
    "clip." for CLIP RN50); `fill_scale` multiplies float tensors whose
    prefixed name starts with a listed prefix (the longest one wins).
    """
    fill_scale = fill_scale or {}
    state = module.state_dict()
    filled = {}
    for key, value in state.items():
        name = name_prefix + key
        tensor = fill_tensor(seed_tag + name, value)
        factor = _scale_for(name, fill_scale)
        if factor is not None and tensor.is_floating_point():
            tensor = tensor * torch.tensor(factor, dtype=torch.float32)
        filled[key] = tensor.to(value.dtype)
    module.load_state_dict(filled, strict=True)


def golden_inputs(spec: Mapping[str, Any], media: Path) -> dict[str, torch.Tensor]:
    """The §15 inputs: cv2 read, BGR->RGB, crops, INTER_LINEAR 224 resize, ImageNet normalisation."""
    path = media / spec["image"]
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"golden image {path} not found (pass --media DIR)")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]

    def tensor(image: np.ndarray) -> torch.Tensor:
        resized = cv2.resize(image, (224, 224), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        return torch.from_numpy((resized - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1)

    bodies = [p["body_xyxy"] for p in spec["persons"]]
    heads = [p["head_xyxy"] for p in spec["persons"]]
    return {
        "context": torch.stack([tensor(rgb) for _ in bodies]),
        "body": torch.stack([tensor(rgb[y1:y2, x1:x2]) for x1, y1, x2, y2 in bodies]),
        "head": torch.stack([tensor(rgb[y1:y2, x1:x2]) for x1, y1, x2, y2 in heads]),
        "coord_body": boxes_to_224(bodies, width, height),
        "coord_head": boxes_to_224(heads, width, height),
    }
