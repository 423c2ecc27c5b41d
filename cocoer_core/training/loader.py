"""Training batches: which persons each optimizer step sees, and their augmented views.

The order is a function of (seed, epoch) alone and each person's augmentation
of (seed, epoch, index), so a run resumed at step s sees exactly the batches
an uninterrupted run sees from step s on, and `torchrun` processes split every
step's batch between them (process r takes every world-th person of each
micro-batch) instead of each drawing its own.

`--batch-size` counts the persons of one optimizer step over all processes and
accumulation steps together: batch 64 on 2 processes with 2 accumulation steps
is 16 persons per forward pass. Persons that do not fill a last batch of an
epoch are skipped that epoch (drop_last, as the release).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cocoer_core.data import DatasetError, HeadBoxes, PersonDataset
from cocoer_core.runtime import FrameBatch
from cocoer_core.training.augment import PersonViews, plain_views, train_views


@dataclass
class TrainBatch:
    """A micro-batch: CocoER's inputs (each person's context its own) and the 0/1 targets."""

    inputs: FrameBatch  # index = arange(B)
    targets: torch.Tensor  # [B, C]

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclass(frozen=True)
class BatchPlan:
    """How the persons of a split are dealt out to optimizer steps, accumulation steps and processes."""

    persons: int
    batch_size: int
    accumulate: int = 1
    world: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        share = self.accumulate * self.world
        if self.batch_size < 1 or self.accumulate < 1 or self.batch_size % share:
            raise ValueError(
                f"--batch-size {self.batch_size} must be a multiple of accumulation steps x processes ({share})"
            )
        if self.persons < self.batch_size:
            raise DatasetError(
                f"the training split holds {self.persons} persons, fewer than one batch of {self.batch_size}: "
                "lower --batch-size"
            )

    @property
    def steps_per_epoch(self) -> int:
        return self.persons // self.batch_size

    @property
    def micro_batch(self) -> int:
        """Persons per forward pass on one process."""
        return self.batch_size // (self.accumulate * self.world)

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.persons)

    def micro_batches(self, epoch: int, first_step: int, rank: int) -> Iterator[list[tuple[int, int]]]:
        """This process's (epoch, index) lists, `accumulate` per optimizer step, from `first_step` of the epoch."""
        order = self.order(epoch)
        span = self.micro_batch * self.world
        for step in range(first_step, self.steps_per_epoch):
            chunk = order[step * self.batch_size : (step + 1) * self.batch_size]
            for k in range(self.accumulate):
                part = chunk[k * span : (k + 1) * span]
                yield [(epoch, int(i)) for i in part[rank :: self.world]]


class PersonViewsSet(Dataset[tuple[PersonViews, np.ndarray]]):
    """Persons of a split by (epoch, index): augmented views (or plain ones) and the 0/1 target."""

    def __init__(
        self, dataset: PersonDataset, heads: HeadBoxes, seed: int, augment: bool = True, resize: str = "pil"
    ) -> None:
        self.dataset = dataset
        self.seed = seed
        self.augment = augment
        self.resize = resize
        self.targets = dataset.targets()  # [N, C]
        self.heads = [heads.head_of(sample) for sample in dataset.samples]  # fails early on a missing head

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> tuple[PersonViews, np.ndarray]:
        epoch, index = item
        sample = self.dataset.samples[index]
        path = self.dataset.root / sample.image
        image = cv2.imread(str(path))
        if image is None:
            raise DatasetError(f"{path}: cannot be read as an image")
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, index])
            views = train_views(rgb, sample.body, self.heads[index], rng, self.resize)
        else:
            views = plain_views(rgb, sample.body, self.heads[index], self.resize)
        return views, self.targets[index]


def collate(items: Sequence[tuple[PersonViews, np.ndarray]]) -> TrainBatch:
    views = [v for v, _ in items]
    inputs = FrameBatch(
        context=torch.stack([v.context for v in views]),  # [B, 3, 224, 224]
        body=torch.stack([v.body for v in views]),
        head=torch.stack([v.head for v in views]),
        coord_body=torch.stack([v.coord_body for v in views]),  # [B, 4]
        coord_head=torch.stack([v.coord_head for v in views]),
        index=torch.arange(len(views)),
    )
    return TrainBatch(inputs, torch.from_numpy(np.stack([t for _, t in items])))


def epoch_loader(
    persons: PersonViewsSet, plan: BatchPlan, epoch: int, first_step: int, rank: int, workers: int
) -> DataLoader[tuple[PersonViews, np.ndarray]]:
    """This process's micro-batches of one epoch, from `first_step` on.

    The loader seeds its workers from a generator of its own: drawing from the
    global one would shift the dropout masks of a resumed run.
    """
    batches = list(plan.micro_batches(epoch, first_step, rank))
    return DataLoader(
        persons,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(plan.seed),
        pin_memory=torch.cuda.is_available(),
    )
