"""OpenAI CLIP RN50, built here so `RN50.pt` loads with no download and no extra package.

Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision" (2021). The visual tower is the "modified ResNet": a three-conv
stem with average pooling, anti-aliased (avg-pool) strided bottlenecks, and
attention pooling in place of global average pooling. Attribute names follow
OpenAI's state dict (keys in ../shared/design/clip_rn50_state_dict.tsv), so
`RN50.pt` loads strictly. CocoER only uses the visual tower; the text tower is
here so the whole archive loads and the stage-1 VI training can use it.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class Bottleneck(nn.Module):
    """CLIP's bottleneck: a strided block downsamples with AvgPool2d before conv3."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride > 1 or inplanes != planes * self.expansion:
            # The pool has no parameters; naming it "-1" keeps the conv/BN keys at 0 and 1.
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("-1", nn.AvgPool2d(stride)),
                        ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, bias=False)),
                        ("1", nn.BatchNorm2d(planes * self.expansion)),
                    ]
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """Multi-head attention pooling: the mean token is the only query."""

    def __init__(self, spatial: int, embed_dim: int, num_heads: int, output_dim: int) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spatial**2 + 1, embed_dim) / embed_dim**0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)  # [B, 49, 2048]
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)  # [B, 50, 2048]
        tokens = tokens + self.positional_embedding.to(tokens.dtype)
        heads, dim = self.num_heads, c // self.num_heads
        q = self.q_proj(tokens[:, :1]).view(b, 1, heads, dim).transpose(1, 2)  # [B, 32, 1, 64]
        k = self.k_proj(tokens).view(b, -1, heads, dim).transpose(1, 2)  # [B, 32, 50, 64]
        v = self.v_proj(tokens).view(b, -1, heads, dim).transpose(1, 2)
        attn = torch.softmax((q * dim**-0.5) @ k.transpose(-2, -1), dim=-1)  # [B, 32, 1, 50]
        pooled = (attn @ v).transpose(1, 2).reshape(b, c)  # [B, 2048]
        return self.c_proj(pooled)  # [B, 1024]


class ModifiedResNet(nn.Module):
    """CLIP's image tower for RN50: layers (3, 4, 6, 3), width 64, 224 px input."""

    def __init__(
        self,
        layers: tuple[int, int, int, int] = (3, 4, 6, 3),
        output_dim: int = 1024,
        heads: int = 32,
        input_resolution: int = 224,
        width: int = 64,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.attnpool = AttentionPool2d(input_resolution // 32, width * 32, heads, output_dim)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))  # [B, 32, 112, 112]
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))  # [B, 64, 112, 112]
        x = self.avgpool(x)  # [B, 64, 56, 56]
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # [B, 2048, 7, 7]
        return self.attnpool(x)  # [B, 1024]


class QuickGELU(nn.Module):
    """CLIP's sigmoid GELU approximation (the text tower was trained with it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))]
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class TextTransformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class CLIPRN50(nn.Module):
    """The whole CLIP RN50 (image and text towers), keys as in OpenAI's `RN50.pt`."""

    def __init__(
        self,
        embed_dim: int = 1024,
        context_length: int = 77,
        vocab_size: int = 49408,
        width: int = 512,
        heads: int = 8,
        layers: int = 12,
    ) -> None:
        super().__init__()
        self.context_length = context_length
        self.visual = ModifiedResNet(output_dim=embed_dim)
        self.transformer = TextTransformer(width, layers, heads)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, 77] BPE token ids (EOT has the largest id) -> [N, 1024]."""
        x = self.token_embedding(tokens) + self.positional_embedding  # [N, 77, 512]
        causal = torch.full((self.context_length, self.context_length), float("-inf"), device=x.device).triu_(1)
        x = self.transformer(x.transpose(0, 1), causal).transpose(0, 1)
        x = self.ln_final(x)
        eot = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # [N, 512]
        return eot @ self.text_projection


#: Entries of OpenAI's TorchScript archive that are settings, not weights.
ARCHIVE_SETTINGS = ("input_resolution", "context_length", "vocab_size")


def clip_state_dict_from_archive(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI's archive state dict -> ours: drop the settings entries, weights to float32."""
    return {
        key: (value.float() if value.is_floating_point() else value)
        for key, value in state_dict.items()
        if key not in ARCHIVE_SETTINGS
    }


__all__ = ["CLIPRN50", "ModifiedResNet", "clip_state_dict_from_archive"]
