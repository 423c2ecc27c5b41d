"""Training step time per batch size: `cocoer_core.train`'s step against the official per-person loop.

    python bench/train_speed.py [--device cpu|cuda] [--batches 1,2,4] [--steps 3]

The full CocoER (random init; speed does not depend on the values) and the
real CLIP RN50 layout, on persons MTCNN finds in real group photos, each with
its own context (as training sees them). "step": forward, loss, backward and
the fused AdamW step, as the trainer runs them (AMP fp16 on CUDA). "official
inner loop": the release's forward alone, per person with the coordination by
autograd (cocoer_core.reference); it is a lower bound of its step, which also
back-propagates through the whole batch for each person (O(B^2), spec §12).
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import cv2

import torch
from common import MEDIA, PeakRss, device_name
from evaluate_speed import PHOTOS, persons_of

from cocoer_core.clip_rn50 import CLIPRN50
from cocoer_core.config import CocoERConfig
from cocoer_core.model import CocoER
from cocoer_core.reference import reference_forward
from cocoer_core.training.augment import plain_views
from cocoer_core.training.loader import TrainBatch, collate
from cocoer_core.training.objective import EMOTIC_STATIC_WEIGHTS, Objective
from cocoer_core.training.trainer import forward_loss, freeze_never_trained


def real_batch(size: int) -> TrainBatch:
    items = []
    for name in PHOTOS:
        image = cv2.imread(str(MEDIA / name))
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        for person in persons_of(image):
            target = torch.zeros(26).numpy()
            target[len(items) % 26] = 1.0
            items.append((plain_views(rgb, person.body_xyxy, person.head_xyxy or person.body_xyxy), target))
    if len(items) < size:
        items = (items * (size // len(items) + 1))[:size]
    return collate(items[:size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="1,2,4")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = CocoER(CocoERConfig(inside_lr=0.1)).to(device).train()
    freeze_never_trained(model)
    clip = CLIPRN50().visual.eval().to(device)
    clip = clip.half() if cuda else clip
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=6e-5, betas=(0.9, 0.96), weight_decay=0.01, fused=True)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    objective = Objective("static", torch.tensor(EMOTIC_STATIC_WEIGHTS))
    print(f"CocoER training step, {device_name(args.device)}{', AMP fp16' if cuda else ', fp32'}")
    print(f"{'batch':>5} {'step s':>8} {'persons/s':>10} {'official inner loop s':>22} {'ratio':>6} {'peak MB':>8}")
    for size in (int(b) for b in args.batches.split(",")):
        batch = real_batch(size)

        def step(batch: TrainBatch = batch) -> None:
            with torch.autocast("cuda", dtype=torch.float16) if cuda else nullcontext():
                parts = forward_loss(model, clip, objective, batch, device)
            scaler.scale(parts.trained).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

        step()  # warm-up (and AdamW's state)
        with PeakRss() as peak:
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            if cuda:
                torch.cuda.synchronize()
        ours = (time.perf_counter() - start) / args.steps
        model.eval()  # the reference's inner steps need the running statistics to be left alone
        moved = batch.inputs.to(device)
        with torch.no_grad():
            features = clip(moved.context.half() if cuda else moved.context).float()
        start = time.perf_counter()
        reference_forward(model, *moved.model_inputs(), features)
        if cuda:
            torch.cuda.synchronize()
        official = time.perf_counter() - start
        model.train()
        print(
            f"{size:>5} {ours:>8.2f} {size / ours:>10.2f} {official:>22.2f} {official / ours:>5.2f}x {peak.peak_mb:>8.0f}"
        )


if __name__ == "__main__":
    main()
