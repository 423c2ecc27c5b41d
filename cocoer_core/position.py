"""Learned 2-D positional table, and its ROI sampling for head and body tokens.

The context tokens take the table entry of their grid cell. Head and body
tokens sit on a 7x7 grid inside their box (in the 224 px context frame) and
take a bilinear sample of the table there, with the official sampler's quirk
(spec §4.3): the corner indices are clamped to [0, 6] *before* the weights are
computed, so a sample at x >= 192 px or y >= 192 px gives exactly zero.
"""

from __future__ import annotations

import torch
from torch import nn

GRID = 7
STRIDE = 32  # ResNet-50 output stride: feature cell k sits at k * 32 px


class PositionEmbedding2D(nn.Module):
    """P[r, c] = concat(col_embed[c], row_embed[r]): 256 channels, column half first."""

    def __init__(self, d_model: int = 256, grid: int = GRID) -> None:
        super().__init__()
        self.grid = grid
        self.row_embed = nn.Embedding(grid, d_model // 2)
        self.col_embed = nn.Embedding(grid, d_model // 2)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def table(self) -> torch.Tensor:
        """[7, 7, 256]: entry (r, c)."""
        g = self.grid
        cols = self.col_embed.weight.unsqueeze(0).expand(g, g, -1)  # [r, c, 128] = col_embed[c]
        rows = self.row_embed.weight.unsqueeze(1).expand(g, g, -1)  # [r, c, 128] = row_embed[r]
        return torch.cat([cols, rows], dim=-1)

    def context(self) -> torch.Tensor:
        """[49, 256] for the context tokens (the same for every sample)."""
        return self.table().reshape(self.grid * self.grid, -1)

    def roi(self, boxes: torch.Tensor) -> torch.Tensor:
        """[B, 4] integer x1, y1, x2, y2 in the 224 frame -> [B, 49, 256]."""
        table = self.table()  # [7, 7, 256]
        sy, sx = roi_sample_points(boxes, self.grid)  # [B, 7] each
        y0, x0 = torch.floor(sy), torch.floor(sx)
        # Clamp the corners first, then weigh with the clamped values (the quirk).
        y0c, y1c = y0.clamp(0, self.grid - 1), (y0 + 1).clamp(0, self.grid - 1)
        x0c, x1c = x0.clamp(0, self.grid - 1), (x0 + 1).clamp(0, self.grid - 1)
        # Broadcast rows i (dim 1) against columns j (dim 2): token t = 7 i + j.
        syb, sxb = sy[:, :, None], sx[:, None, :]
        wa = (x1c[:, None, :] - sxb) * (y1c[:, :, None] - syb)
        wb = (x1c[:, None, :] - sxb) * (syb - y0c[:, :, None])
        wc = (sxb - x0c[:, None, :]) * (y1c[:, :, None] - syb)
        wd = (sxb - x0c[:, None, :]) * (syb - y0c[:, :, None])

        def gather(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
            r = rows.long()[:, :, None].expand(-1, -1, self.grid)
            c = cols.long()[:, None, :].expand(-1, self.grid, -1)
            return table[r, c]  # [B, 7, 7, 256]

        # Summed per row pair, so clamped corners cancel to an exact 0.0 along both axes.
        embed = (wa[..., None] * gather(y0c, x0c) + wc[..., None] * gather(y0c, x1c)) + (
            wb[..., None] * gather(y1c, x0c) + wd[..., None] * gather(y1c, x1c)
        )
        return embed.reshape(boxes.shape[0], self.grid * self.grid, -1)


def roi_sample_points(boxes: torch.Tensor, grid: int = GRID) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid sample positions in feature-cell units: ([B, 7] rows sy, [B, 7] cols sx).

    The operation order follows the official code so the floats match.
    """
    boxes = boxes.to(torch.float32)
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    h, w = (y2 - y1)[:, None], (x2 - x1)[:, None]
    cy, cx = ((y1 + y2) / 2)[:, None], ((x1 + x2) / 2)[:, None]
    steps = (torch.arange(grid, dtype=torch.float32, device=boxes.device) + 0.5) / grid  # [7]
    sy = (steps * h - h / 2 + cy) / STRIDE
    sx = (steps * w - w / 2 + cx) / STRIDE
    return sy, sx
