"""The three ResNet-50 trunks (head, body, context) and their 1x1 projections.

torchvision's ResNet-50 (v1.5, stride on the 3x3 conv) without avgpool/fc,
wrapped as a Sequential so the checkpoint keys are `backbone.<level>.<i>...`
(0 conv1, 1 bn1, 2 relu, 3 maxpool, 4-7 layer1-4).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet50


def resnet50_trunk() -> nn.Sequential:
    """ResNet-50 through layer4: [B, 3, 224, 224] -> [B, 2048, 7, 7]."""
    net = resnet50(weights=None)
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)


class Backbones(nn.Module):
    """Three independent trunks, one per level."""

    def __init__(self) -> None:
        super().__init__()
        self.head = resnet50_trunk()
        self.body = resnet50_trunk()
        self.context = resnet50_trunk()


def to_tokens(features: torch.Tensor) -> torch.Tensor:
    """[B, C, 7, 7] -> [B, 49, C], row-major: token t = 7 * row + col."""
    return features.flatten(2).transpose(1, 2)
