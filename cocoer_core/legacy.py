"""Modules the official checkpoint carries but the forward pass never uses (spec §6.7).

They exist so `GWT.pth` loads with strict=True and our `state_dict()` has
exactly the official keys. They have no forward.
"""

from __future__ import annotations

from torch import nn

from cocoer_core.cross_level import FeedForward, MultiHeadAttention


class UnusedEncoderBlock(nn.Module):
    """`encoder_{head,body,ctx}.0`: cross_attn, feed_forward, norm1, norm3 (no norm2)."""

    def __init__(self, d_model: int, heads: int, d_ff: int) -> None:
        super().__init__()
        self.cross_attn = MultiHeadAttention(d_model, heads)
        self.feed_forward = FeedForward(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)


class UnusedDecoderBlock(nn.Module):
    """`decoder_{head,body,ctx}.0`: self and cross attention, feed-forward, norm1-4."""

    def __init__(self, d_model: int, heads: int, d_ff: int) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads)
        self.cross_attn = MultiHeadAttention(d_model, heads)
        self.feed_forward = FeedForward(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.norm4 = nn.LayerNorm(d_model)


def unused_encoder(d_model: int, heads: int, d_ff: int) -> nn.ModuleList:
    return nn.ModuleList([UnusedEncoderBlock(d_model, heads, d_ff)])


def unused_decoder(d_model: int, heads: int, d_ff: int) -> nn.ModuleList:
    return nn.ModuleList([UnusedDecoderBlock(d_model, heads, d_ff)])
