"""Model hyper-parameters of CocoER (defaults = the official release)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CocoERConfig:
    """Shapes and switches of the model.

    Attributes:
        num_class: 26 (EMOTIC) or 7 (CAER-S; the release cannot build it, we
            use C tiles and C logits throughout, see the spec's §9.5).
        d_model: token width after the 1x1 projections.
        heads: attention heads in the cross-level blocks.
        d_ff: feed-forward width.
        dropout: dropout rate (active only in training).
        blocks: cross-level blocks per level (hard-coded 3 in the release).
        clip_dim: CLIP RN50 embedding width.
        inside_lr: η, the coordination step size (inference script: 1.0).
        refine: apply the coordination step (False reproduces train-time eval).
        pseudo_threshold: VI pseudo labels are σ(VI logit) above this.
        num_queries: rows of the two unused query embeddings.
    """

    num_class: int = 26
    d_model: int = 256
    heads: int = 4
    d_ff: int = 1024
    dropout: float = 0.1
    blocks: int = 3
    clip_dim: int = 1024
    inside_lr: float = 1.0
    refine: bool = True
    pseudo_threshold: float = 0.3
    num_queries: int = 16

    @property
    def tokens(self) -> int:
        return 49

    @property
    def level_dim(self) -> int:
        """Flattened tokens of one level: 49 x 256 = 12544."""
        return self.tokens * self.d_model
