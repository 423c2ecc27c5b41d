"""The vocabulary-informed (VI) branch: CLIP image embedding -> W -> VI_ffn.

(spec §5.1) f = CLIP(context) / |f|, m = W f, t = [m, m, ..., m] (C copies),
then VI_ffn = GELU -> Linear(C*1024 -> C*256) -> GELU -> Linear(C*256 -> 256)
-> GELU -> Linear(256 -> C). The VI feature is the output of the third GELU;
the VI logits give the pseudo labels sigma(logit) > 0.3.

Because GELU is elementwise, Linear1(GELU(tile(m))) equals a Linear whose
weight is the sum of the C column blocks, applied to GELU(m). Folding it
turns 179 M multiply-adds per sample into 7 M, with identical outputs up to
float summation order.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F


def build_vi_ffn(num_class: int, clip_dim: int = 1024, d_model: int = 256) -> nn.Sequential:
    """VI_ffn with the checkpoint's indices (1, 3, 5 are the Linears)."""
    return nn.Sequential(
        nn.GELU(),
        nn.Linear(num_class * clip_dim, num_class * d_model),
        nn.GELU(),
        nn.Linear(num_class * d_model, d_model),
        nn.GELU(),
        nn.Linear(d_model, num_class),
    )


class VocabularyInformed(nn.Module):
    """Owns the folded first layer; reads W and VI_ffn from the model (their keys are top-level)."""

    def __init__(self, num_class: int, clip_dim: int = 1024) -> None:
        super().__init__()
        self.num_class = num_class
        self.clip_dim = clip_dim
        # Not persistent: derived from VI_ffn.1 after loading, never saved.
        self.register_buffer("folded_weight", torch.empty(0), persistent=False)

    @property
    def is_folded(self) -> bool:
        return self.folded_weight.numel() > 0

    @torch.no_grad()
    def fold(self, first_linear: nn.Linear) -> None:
        """Sum VI_ffn.1's C column blocks (in float64) into a [C*256, 1024] weight."""
        weight = first_linear.weight.detach()
        blocks = weight.double().view(weight.shape[0], self.num_class, self.clip_dim)
        self.folded_weight = blocks.sum(dim=1).to(weight.dtype)  # [6656, 1024]

    def forward(
        self, clip_features: torch.Tensor, W: nn.Linear, vi_ffn: nn.Sequential
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 1024] CLIP embeddings -> ([B, C] VI logits, [B, 256] VI feature)."""
        f = clip_features / clip_features.norm(dim=-1, keepdim=True)
        m = W(f)  # [B, 1024]
        first = cast(nn.Linear, vi_ffn[1])
        if self.is_folded:
            hidden = F.linear(F.gelu(m), self.folded_weight.to(m.dtype), first.bias)  # [B, C*256]
        else:
            hidden = first(vi_ffn[0](m.repeat(1, self.num_class)))  # [B, C*1024] -> [B, C*256]
        feature = vi_ffn[4](vi_ffn[3](vi_ffn[2](hidden)))  # [B, 256]
        return vi_ffn[5](feature), feature
