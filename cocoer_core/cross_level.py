"""Cross-level attention: head and body tokens attend to the context, the context to itself.

Pre-norm blocks (spec §6.2): the query is norm1(x) + p_x, the key norm3(y) + p_y,
and the value the raw key/value tokens y (no norm, no position).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MultiHeadAttention(nn.Module):
    """Q, K, V and output projections as `linears.0..3` (the checkpoint's names)."""

    def __init__(self, d_model: int = 256, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.heads = heads
        self.linears = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        b, n, d = query.shape
        dk = d // self.heads

        def split(x: torch.Tensor, proj: nn.Module) -> torch.Tensor:
            return proj(x).view(b, -1, self.heads, dk).transpose(1, 2)  # [B, 4, N, 64]

        q, k, v = split(query, self.linears[0]), split(key, self.linears[1]), split(value, self.linears[2])
        attn = self.dropout(torch.softmax(q @ k.transpose(-2, -1) / dk**0.5, dim=-1))  # [B, 4, N, N]
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)  # [B, N, 256]
        return self.linears[3](out)


class FeedForward(nn.Module):
    """w_2(dropout(SiLU(w_1(z))))."""

    def __init__(self, d_model: int = 256, d_ff: int = 1024, dropout: float = 0.1) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(F.silu(self.w_1(x))))


class CrossLevelBlock(nn.Module):
    """One pre-norm block: x attends to y, then a feed-forward step."""

    def __init__(self, d_model: int = 256, heads: int = 4, d_ff: int = 1024, dropout: float = 0.1) -> None:
        super().__init__()
        self.cross_attn = MultiHeadAttention(d_model, heads, dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor, pos_x: torch.Tensor, pos_y: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.cross_attn(self.norm1(x) + pos_x, self.norm3(y) + pos_y, y))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


def encoder_stack(blocks: int, d_model: int, heads: int, d_ff: int, dropout: float) -> nn.ModuleList:
    return nn.ModuleList(CrossLevelBlock(d_model, heads, d_ff, dropout) for _ in range(blocks))
