"""The training loss (spec §9.3): class-weighted BCE on the final and the VI logits.

The release's total is 0.2 * (L(final) + L(VI) + c_head + c_body + c_ctx) + 0.1 * c_grad,
where the three per-level inner losses and the QP's gradient distance are
rebuilt from Python floats: constants, with no gradient. The loss trained here
is the same function of the parameters; the logged total adds the per-level
constants as the release prints them, but not c_grad (the QP is not run; it
changes no gradient, spec §6.5).

Class weights on L (`--class-weights`):
- `static`: per class 1/ln(n_c + 1.2) from the training split's counts; for
  EMOTIC's 26 classes, the release's published constants (Tandon et al.);
- `dynamic`: the same rule on each batch's own counts (1e-4 for a class the
  batch lacks), as the release's inner loss;
- `none`: 1 for every class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from cocoer_core.model import CocoEROutput

#: The release's static weights for EMOTIC's 26 categories, in class order.
EMOTIC_STATIC_WEIGHTS = (
    0.1435, 0.1870, 0.1692, 0.1165, 0.1949, 0.1204, 0.1728, 0.1372, 0.1620, 0.1540, 0.1987, 0.1057, 0.1482,
    0.1192, 0.1590, 0.1929, 0.1158, 0.1907, 0.1345, 0.1307, 0.1665, 0.1698, 0.1797, 0.1657, 0.1520, 0.1537,
)  # fmt: skip
WEIGHTINGS = ("static", "dynamic", "none")
OUTER_SCALE = 0.2


def count_weights(counts: torch.Tensor) -> torch.Tensor:
    """1 / ln(n_c + 1.2) per class, 1e-4 for a class with no positive."""
    counts = counts.float()
    return torch.where(counts > 0, 1.0 / torch.log(counts + 1.2), torch.full_like(counts, 1e-4))


def static_weights(targets: np.ndarray, emotic: bool) -> torch.Tensor:
    """The static weights for a training split's [N, C] targets."""
    if emotic and targets.shape[1] == len(EMOTIC_STATIC_WEIGHTS):
        return torch.tensor(EMOTIC_STATIC_WEIGHTS)
    return count_weights(torch.from_numpy(targets.sum(axis=0)))


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mean over the batch of sum_c w_c * BCEWithLogits(logit_c, y_c)."""
    per_class = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")  # [B, C]
    return (per_class * weights).sum(dim=1).mean()


@dataclass
class LossParts:
    """One micro-batch's loss: `trained` carries the gradient, the rest is for the log."""

    trained: torch.Tensor  # 0.2 * (L(final) + L(VI))
    final: float
    vi: float
    levels: float  # c_head + c_body + c_ctx (batch means of the inner losses)

    @property
    def total(self) -> float:
        """The release's printed total, without its 0.1 * grad_distance term."""
        return float(self.trained.detach()) + OUTER_SCALE * self.levels


class Objective:
    """L(final) and L(VI) with the chosen class weights."""

    def __init__(self, weighting: str, static: torch.Tensor) -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"--class-weights must be one of {', '.join(WEIGHTINGS)}")
        self.weighting = weighting
        self.static = static

    def weights(self, targets: torch.Tensor) -> torch.Tensor:
        if self.weighting == "static":
            return self.static.to(targets.device)
        if self.weighting == "dynamic":
            return count_weights(targets.sum(dim=0))
        return torch.ones(targets.shape[1], device=targets.device)

    def __call__(self, out: CocoEROutput, targets: torch.Tensor) -> LossParts:
        targets = targets.float()
        weights = self.weights(targets)
        final = weighted_bce(out.final, targets, weights)
        vi = weighted_bce(out.vi, targets, weights)
        levels = float(out.level_losses.detach().float().mean(dim=0).sum())
        return LossParts(OUTER_SCALE * (final + vi), float(final.detach()), float(vi.detach()), levels)
