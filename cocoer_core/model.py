"""CocoER: multi-level emotion recognition by competition and coordination.

Shen et al., "CocoER: Aligning Multi-Level Feature by Competition and
Coordination for Emotion Recognition", CVPR 2025. Written from the
clean-room description (../shared/design/cocoer-spec.md); no official code.

Attribute names equal the official checkpoint's prefixes, so `GWT.pth`
loads with strict=True. Deviations from the release, none of which change
outputs:
- CLIP RN50 is passed in as features (it is frozen and outside the state
  dict in the release too); see `cocoer_core.clip_rn50`.
- Competition/coordination use the exact rank-1 closed form, batched (spec
  §6.4), instead of per-sample autograd steps; the release's QP, which only
  produces a logged scalar, is not run.
- VI_ffn's first layer can be folded after loading (spec §5.1).
- The context path (trunk, self-attention, CLIP, VI) runs once per distinct
  context image: persons of one frame share it through `context_index`.
- `num_class=7` (CAER-S) builds with C tiles and C logits throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from cocoer_core.backbones import Backbones, to_tokens
from cocoer_core.competition import LevelOutput, classify_and_coordinate, exclusion_order
from cocoer_core.config import CocoERConfig
from cocoer_core.cross_level import encoder_stack
from cocoer_core.legacy import unused_decoder, unused_encoder
from cocoer_core.position import PositionEmbedding2D
from cocoer_core.vi_branch import VocabularyInformed, build_vi_ffn


@dataclass
class CocoEROutput:
    """Per-person outputs of one forward pass (B persons)."""

    final: torch.Tensor  # [B, C] out_all logits
    vi: torch.Tensor  # [B, C] label_VI
    head: torch.Tensor  # [B, C] label_head (unrefined classifier)
    body: torch.Tensor  # [B, C] label_body
    context: torch.Tensor  # [B, C] label_ctx
    level_losses: torch.Tensor  # [B, 3] inner losses (head, body, context)
    exclusion: torch.Tensor  # [B, 3] level indices, first excluded first
    fused: torch.Tensor  # [B, 1024] G_feature = [r_head, r_body, r_ctx, f_VI]


def level_classifier(in_dim: int, d_model: int, num_class: int) -> nn.Sequential:
    """cls_HFE_*: GELU, Linear, GELU, LayerNorm, Linear (feature = output of index 3)."""
    return nn.Sequential(
        nn.GELU(), nn.Linear(in_dim, d_model), nn.GELU(), nn.LayerNorm(d_model), nn.Linear(d_model, num_class)
    )


def fusion_classifier(d_model: int, num_class: int) -> nn.Sequential:
    """cls_global_all over [r_head, r_body, r_ctx, f_VI] (4 x 256)."""
    return nn.Sequential(
        nn.GELU(),
        nn.LayerNorm(4 * d_model),
        nn.Linear(4 * d_model, d_model),
        nn.GELU(),
        nn.LayerNorm(d_model),
        nn.Linear(d_model, d_model),
        nn.GELU(),
        nn.LayerNorm(d_model),
        nn.Linear(d_model, num_class),
    )


class CocoER(nn.Module):
    """The model; modules are declared in the official checkpoint's order."""

    def __init__(self, config: CocoERConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or CocoERConfig()
        d, h, ff, c = cfg.d_model, cfg.heads, cfg.d_ff, cfg.num_class
        self.head_proj = nn.Conv2d(2048, d, 1)
        self.body_proj = nn.Conv2d(2048, d, 1)
        self.context_proj = nn.Conv2d(2048, d, 1)
        self.backbone = Backbones()
        self.en_pos = PositionEmbedding2D(d)
        # Unused by the forward pass; kept for strict checkpoint loading (spec §6.7).
        self.query_embedding = nn.Embedding(cfg.num_queries, d)
        self.encoder_head = unused_encoder(d, h, ff)
        self.encoder_body = unused_encoder(d, h, ff)
        self.encoder_ctx = unused_encoder(d, h, ff)
        self.decoder_head = unused_decoder(d, h, ff)
        self.decoder_body = unused_decoder(d, h, ff)
        self.decoder_ctx = unused_decoder(d, h, ff)
        self.en_pos_gwt = PositionEmbedding2D(d)
        self.query_embedding_gwt = nn.Embedding(cfg.num_queries, d)
        # Cross-level attention: head->context, body->context, context->context.
        self.encoder1 = encoder_stack(cfg.blocks, d, h, ff, cfg.dropout)
        self.encoder2 = encoder_stack(cfg.blocks, d, h, ff, cfg.dropout)
        self.encoder3 = encoder_stack(cfg.blocks, d, h, ff, cfg.dropout)
        self.cls_HFE_ctx = level_classifier(cfg.level_dim, d, c)
        self.cls_HFE_body = level_classifier(cfg.level_dim, d, c)
        self.cls_HFE_head = level_classifier(cfg.level_dim, d, c)
        self.cls_global_all = fusion_classifier(d, c)
        self.ln_after = nn.LayerNorm(d)
        self.shar_after = nn.Linear(4096, 2048)  # unused
        self.cls_en_all = nn.Sequential(nn.GELU(), nn.LayerNorm(2048), nn.Linear(2048, c))  # unused
        self.W = nn.Linear(cfg.clip_dim, cfg.clip_dim, bias=False)
        self.VI_ffn = build_vi_ffn(c, cfg.clip_dim, d)
        self.vocabulary = VocabularyInformed(c, cfg.clip_dim)  # holds no checkpoint keys

    def fold_vi(self) -> None:
        """Precompute the folded VI_ffn.1 (call after loading weights)."""
        self.vocabulary.fold(cast(nn.Linear, self.VI_ffn[1]))

    def context_tokens(self, images_context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context tokens before (x_c0, the head/body keys) and after the self-attention blocks."""
        x_c0 = to_tokens(self.context_proj(self.backbone.context(images_context)))  # [K, 49, 256]
        p_c = self.en_pos.context()  # [49, 256]
        x_c = x_c0
        for block in self.encoder3:
            x_c = block(x_c, x_c, p_c, p_c)  # context self-attention
        return x_c0, x_c

    def person_tokens(
        self,
        images_head: torch.Tensor,
        images_body: torch.Tensor,
        coord_head: torch.Tensor,
        coord_body: torch.Tensor,
        keys: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Head and body tokens after attending to their context's tokens `keys` [B, 49, 256]."""
        p_c = self.en_pos.context()
        p_h, p_b = self.en_pos.roi(coord_head), self.en_pos.roi(coord_body)  # [B, 49, 256]
        x_h = to_tokens(self.head_proj(self.backbone.head(images_head)))  # [B, 49, 256]
        x_b = to_tokens(self.body_proj(self.backbone.body(images_body)))
        for block in self.encoder1:
            x_h = block(x_h, keys, p_h, p_c)
        for block in self.encoder2:
            x_b = block(x_b, keys, p_b, p_c)
        return x_h, x_b

    def _level(self, tokens: torch.Tensor, classifier: nn.Sequential, pseudo: torch.Tensor) -> LevelOutput:
        # Always fp32: the coordination step is a hand-written backward pass.
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            z = self.ln_after(tokens.float()).flatten(1)  # [B, 49 * 256], token-major
            return classify_and_coordinate(z, classifier, pseudo.float(), self.config.inside_lr, self.config.refine)

    def forward(
        self,
        images_context: torch.Tensor,
        images_body: torch.Tensor,
        images_head: torch.Tensor,
        coord_body: torch.Tensor,
        coord_head: torch.Tensor,
        clip_features: torch.Tensor,
        context_index: torch.Tensor | None = None,
    ) -> CocoEROutput:
        """Args:
        images_context: [K, 3, 224, 224] distinct context images (K <= B).
        images_body, images_head: [B, 3, 224, 224] per-person crops.
        coord_body, coord_head: [B, 4] integer boxes in the 224 context frame.
        clip_features: [K, 1024] CLIP RN50 embeddings of the context images.
        context_index: [B] which context each person belongs to (default: i -> i).
        """
        index = (
            context_index
            if context_index is not None
            else torch.arange(images_body.shape[0], device=images_body.device)
        )
        final, vi, head, body, context, losses, fused = self.logits(
            images_context, images_body, images_head, coord_body, coord_head, clip_features, index
        )
        return CocoEROutput(final, vi, head, body, context, losses, exclusion_order(losses), fused)

    def logits(
        self,
        images_context: torch.Tensor,
        images_body: torch.Tensor,
        images_head: torch.Tensor,
        coord_body: torch.Tensor,
        coord_head: torch.Tensor,
        clip_features: torch.Tensor,
        index: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Everything but the exclusion order (a sort, done outside an exported graph):
        (final, vi, head, body, context, level_losses, fused), as `CocoEROutput` names them."""
        # Context path, once per distinct context image.
        x_c0, x_c = self.context_tokens(images_context)  # [K, 49, 256] before / after self-attention
        vi_logits, vi_feature = self.vocabulary(clip_features, self.W, self.VI_ffn)  # [K, C], [K, 256]
        pseudo = (torch.sigmoid(vi_logits) > self.config.pseudo_threshold).to(vi_logits.dtype)
        ctx = self._level(x_c, self.cls_HFE_ctx, pseudo)
        # Person path: head and body attend to their frame's initial context tokens.
        x_h, x_b = self.person_tokens(images_head, images_body, coord_head, coord_body, x_c0[index])
        person_pseudo = pseudo[index]
        head = self._level(x_h, self.cls_HFE_head, person_pseudo)
        body = self._level(x_b, self.cls_HFE_body, person_pseudo)
        fused = torch.cat([head.refined, body.refined, ctx.refined[index], vi_feature[index]], dim=1)  # [B, 1024]
        losses = torch.stack([head.loss, body.loss, ctx.loss[index]], dim=1)  # [B, 3]
        final = self.cls_global_all(fused)
        return final, vi_logits[index], head.logits, body.logits, ctx.logits[index], losses, fused
