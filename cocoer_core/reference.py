"""A per-person reference in the style of the official code, for tests and benchmarks.

The release runs one forward per person (batch 1, the context recomputed
each time) with autograd on, and coordinates each level by backpropagating
its inner loss through the whole graph, stepping W1/b1 of that level's
classifier with SGD, recomputing the feature and restoring the weights - two
full backward passes per level (one for the QP's W4 gradients, one for the
step). This module does the same with autograd, so the batched closed form
in `competition.py` can be checked against it and timed against it. It is
not used by the pipeline.
"""

from __future__ import annotations

from typing import cast

import torch
from torch.nn import functional as F

from cocoer_core.competition import exclusion_order, inner_weights
from cocoer_core.model import CocoER, CocoEROutput


def _inner_loss(logits: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
    return (inner_weights(pseudo) * F.binary_cross_entropy_with_logits(logits, pseudo, reduction="none")).sum()


def _refine_with_autograd(
    model: CocoER, z: torch.Tensor, classifier: torch.nn.Sequential, pseudo: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One level of one sample: (feature, logits, loss, refined) via real SGD steps."""
    fc1 = cast(torch.nn.Linear, classifier[1])
    feature = classifier[:4](z)
    logits = classifier[4](feature)
    loss = _inner_loss(logits, pseudo)
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)  # the QP's pass (W4 gradients); the solver itself changes nothing
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)  # the coordination pass
    weight_grad, bias_grad = fc1.weight.grad, fc1.bias.grad
    if weight_grad is None or bias_grad is None:  # pragma: no cover - backward() just filled them
        raise RuntimeError("the coordination pass left no gradient on cls_HFE_*.1")
    with torch.no_grad():
        weight, bias = fc1.weight.detach().clone(), fc1.bias.detach().clone()
        fc1.weight.sub_(model.config.inside_lr * weight_grad)
        fc1.bias.sub_(model.config.inside_lr * bias_grad)
        refined = classifier[:4](z.detach())
        fc1.weight.copy_(weight)  # restore: the classifier is unchanged after the call
        fc1.bias.copy_(bias)
    model.zero_grad(set_to_none=True)
    return feature.detach(), logits.detach(), loss.detach(), refined


def reference_forward(
    model: CocoER,
    images_context: torch.Tensor,
    images_body: torch.Tensor,
    images_head: torch.Tensor,
    coord_body: torch.Tensor,
    coord_head: torch.Tensor,
    clip_features: torch.Tensor,
) -> CocoEROutput:
    """Persons one at a time, each with its own context pass and autograd coordination."""
    rows = []
    for i in range(images_body.shape[0]):
        with torch.enable_grad():
            rows.append(
                _one_person(
                    model,
                    images_context[i : i + 1],
                    images_body[i : i + 1],
                    images_head[i : i + 1],
                    coord_body[i : i + 1],
                    coord_head[i : i + 1],
                    clip_features[i : i + 1],
                )
            )
    stacked = {key: torch.cat([row[key] for row in rows]) for key in rows[0]}
    losses = stacked["losses"]
    return CocoEROutput(
        final=stacked["final"],
        vi=stacked["vi"],
        head=stacked["head"],
        body=stacked["body"],
        context=stacked["context"],
        level_losses=losses,
        exclusion=exclusion_order(losses),
        fused=stacked["fused"],
    )


def _one_person(model: CocoER, ctx, body, head, cb, ch, clip_features) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    x_c0, x_c = model.context_tokens(ctx)
    x_h, x_b = model.person_tokens(head, body, ch, cb, x_c0)
    # The unfolded VI branch, exactly as the release computes it.
    f = clip_features / clip_features.norm(dim=-1, keepdim=True)
    tiled = model.W(f).repeat(1, model.config.num_class)
    vi_feature = model.VI_ffn[:5](tiled)
    vi_logits = model.VI_ffn[5](vi_feature)
    pseudo = (torch.sigmoid(vi_logits) > model.config.pseudo_threshold).float().detach()
    levels = {}
    for name, tokens, classifier in (
        ("head", x_h, model.cls_HFE_head),
        ("body", x_b, model.cls_HFE_body),
        ("context", x_c, model.cls_HFE_ctx),
    ):
        z = model.ln_after(tokens).flatten(1)
        levels[name] = _refine_with_autograd(model, z, classifier, pseudo)
    with torch.no_grad():
        fused = torch.cat([levels["head"][3], levels["body"][3], levels["context"][3], vi_feature.detach()], dim=1)
        final = model.cls_global_all(fused)
    return {
        "final": final,
        "vi": vi_logits.detach(),
        "head": levels["head"][1],
        "body": levels["body"][1],
        "context": levels["context"][1],
        "losses": torch.stack([levels[n][2] for n in ("head", "body", "context")])[None],
        "fused": fused,
    }
