"""Competition and coordination (spec §6.4), batched in closed form.

Per level l and sample b, the per-level classifier is
    u = GELU(z), a = W1 u + b1, h = LN3(GELU(a)), s = W4 h + b4,
and its inner loss against the VI pseudo labels y is
    L = sum_c w_c * BCEWithLogits(s_c, y_c),  w_c = 1/ln(2.2) if y_c else 1e-4.

Competition: the three levels sorted by L, largest first (ties: head, body,
context) - the exclusion sequence; it gates nothing.

Coordination: the release takes one SGD step of size eta on W1 and b1 with
each sample's own loss, then recomputes the feature. The step changes the
pre-activation by -eta * (|u|^2 + 1) * delta with delta = dL/da, so
    r = LN3(GELU(a - eta * (|u|^2 + 1) * delta)).
We compute delta by hand (backprop through W4, LN3 and GELU): no autograd,
no Python loop over samples, no solver. The release's QP only produces a
logged scalar that affects nothing (spec §6.5); it is not computed here.
In training the step is first-order (its correction is a constant), which is
what the release's gradients amount to (spec §9.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

#: Inner-loss class weights for a batch of one sample: 1/ln(n + 1.2) with n = 1, or 1e-4.
POSITIVE_WEIGHT = 1.0 / math.log(2.2)
NEGATIVE_WEIGHT = 1e-4


@dataclass
class LevelOutput:
    """One level's classifier outputs for a batch."""

    feature: torch.Tensor  # [B, 256] f_l, before coordination
    logits: torch.Tensor  # [B, C] label_l, from the unrefined classifier
    refined: torch.Tensor  # [B, 256] r_l (== feature when refinement is off)
    loss: torch.Tensor  # [B] inner loss L_l against the pseudo labels


def inner_weights(pseudo: torch.Tensor) -> torch.Tensor:
    return torch.where(pseudo > 0, POSITIVE_WEIGHT, NEGATIVE_WEIGHT).to(pseudo.dtype)


def _gelu_grad(x: torch.Tensor) -> torch.Tensor:
    """d GELU(x) / dx for the exact (erf) GELU."""
    cdf = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return cdf + x * pdf


def _layer_norm_backward(x: torch.Tensor, grad_out: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """dL/dx of y = LayerNorm(x), given dL/dy (biased variance, as PyTorch)."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    inv_std = torch.rsqrt(var + norm.eps)
    normed = (x - mean) * inv_std
    grad_normed = grad_out * norm.weight
    return inv_std * (
        grad_normed
        - grad_normed.mean(dim=-1, keepdim=True)
        - normed * (grad_normed * normed).mean(dim=-1, keepdim=True)
    )


def classify_and_coordinate(
    tokens: torch.Tensor, classifier: nn.Sequential, pseudo: torch.Tensor, inside_lr: float, refine: bool
) -> LevelOutput:
    """Run a level's classifier (cls_HFE_*) and its coordination step, for the whole batch.

    Args:
        tokens: [B, 12544] the level's flattened tokens z.
        classifier: GELU, Linear(12544->256), GELU, LayerNorm(256), Linear(256->C).
        pseudo: [B, C] VI pseudo labels (0/1).
        inside_lr: eta.
        refine: apply the coordination step.
    """
    fc1, norm, fc4 = cast(nn.Linear, classifier[1]), cast(nn.LayerNorm, classifier[3]), cast(nn.Linear, classifier[4])
    u = F.gelu(tokens)  # [B, 12544]
    a = fc1(u)  # [B, 256]
    g = F.gelu(a)
    feature = norm(g)  # [B, 256]
    logits = fc4(feature)  # [B, C]
    weights = inner_weights(pseudo)
    loss = (weights * F.binary_cross_entropy_with_logits(logits, pseudo, reduction="none")).sum(dim=1)  # [B]
    if not refine:
        return LevelOutput(feature, logits, feature, loss)
    grad_logits = weights * (torch.sigmoid(logits) - pseudo)  # [B, C]
    grad_feature = grad_logits @ fc4.weight  # [B, 256]
    delta = _layer_norm_backward(g, grad_feature, norm) * _gelu_grad(a)  # [B, 256] = dL/da
    step = inside_lr * (u.pow(2).sum(dim=1, keepdim=True) + 1.0)  # [B, 1]
    # First-order, as the release trains (spec §9.3): the step is not differentiated through, so the
    # outer gradient reaches z through the original W1 and cls_HFE_*.4 gets none.
    refined = norm(F.gelu(a - (step * delta).detach()))
    return LevelOutput(feature, logits, refined, loss)


def exclusion_order(losses: torch.Tensor) -> torch.Tensor:
    """[B, 3] losses (head, body, context) -> [B, 3] level indices, largest loss first.

    A stable sort, so ties keep the order head, body, context.
    """
    return torch.sort(losses, dim=1, descending=True, stable=True).indices
