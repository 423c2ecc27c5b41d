"""The training loop: the official recipe, selection on val, and runs that resume exactly.

Per optimizer step: `accumulate` forward/backward passes over this process's
share of the batch (DDP averages the shares), optional clipping, AdamW;
StepLR at each epoch's end. Evaluations (val, no coordination step, as the
release evaluates) pick the model saved as GWT.pth; early stopping counts
evaluations without improvement. At the end the selected model's per-class
thresholds are chosen on val as the live pipeline scores (coordination with
eta 1.0) and saved beside it.

What the release does that is not repeated here: selecting on the test split
(only with select_on="test", which warns), the QP (its scalar has no gradient),
and the junk gradients of its inner backward passes. Parameters that get no
gradient from the loss (the unused modules and the per-level classifiers' last
layers, spec §9.3) are frozen, so AdamW leaves them as loaded; the release
applies its weight decay to the latter (a factor >= 0.994 over its 20 epochs).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cocoer_core.data import DatasetError, PersonDataset, open_dataset, read_head_boxes
from cocoer_core.errors import CheckpointError
from cocoer_core.evaluate import caer_metrics, emotic_metrics, score_dataset, thresholds_for
from cocoer_core.model import CocoER
from cocoer_core.runtime import LABELS_FILE, THRESHOLDS_FILE, CocoERModel, autocast_for
from cocoer_core.training import state as files
from cocoer_core.training.distributed import World
from cocoer_core.training.initial import initial_model
from cocoer_core.training.loader import BatchPlan, PersonViewsSet, TrainBatch, epoch_loader
from cocoer_core.training.objective import LossParts, Objective, static_weights
from cocoer_core.training.options import TrainOptions

logger = logging.getLogger(__name__)

#: Modules the forward pass never uses (spec §6.7) and the per-level last layers, which get no gradient.
NEVER_TRAINED = (
    "query_embedding.", "query_embedding_gwt.", "en_pos_gwt.", "encoder_head.", "encoder_body.", "encoder_ctx.",
    "decoder_head.", "decoder_body.", "decoder_ctx.", "shar_after.", "cls_en_all.",
    "cls_HFE_head.4.", "cls_HFE_body.4.", "cls_HFE_ctx.4.",
)  # fmt: skip
STOPPED = 130


class Interrupted(Exception):
    """Ctrl+C or SIGTERM during training: the state was saved, exit 130."""


def freeze_never_trained(model: CocoER) -> list[str]:
    frozen = []
    for name, param in model.named_parameters():
        if name.startswith(NEVER_TRAINED):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def selection_metric(kind: str) -> str:
    return "mAP" if kind.startswith("emotic") else "accuracy"


@contextmanager
def scoring(model: CocoER, refine: bool, inside_lr: float) -> Iterator[None]:
    """Eval mode with a given coordination setting; the training settings come back afterwards."""
    config, was_training = model.config, model.training
    model.config = dataclasses.replace(config, refine=refine, inside_lr=inside_lr)
    model.eval()
    try:
        yield
    finally:
        model.config = config
        model.train(was_training)


def forward_loss(
    network: nn.Module, clip: nn.Module, objective: Objective, batch: TrainBatch, device: torch.device
) -> LossParts:
    """CLIP features (frozen, fp16 on CUDA as the release), the model's forward pass and the loss."""
    moved = batch.inputs.to(device)
    with torch.no_grad():
        clip_features = clip(moved.context.half() if device.type == "cuda" else moved.context).float()  # [B, 1024]
    out = network(*moved.model_inputs(), clip_features, moved.index)
    return objective(out, batch.targets.to(device))


class StopRequests:
    """The first Ctrl+C or SIGTERM asks for a clean stop at the next step; a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (again to stop at once)...", file=sys.stderr)

    def __enter__(self) -> StopRequests:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(ValueError):  # not the main thread (a library caller): no handler
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """One process's share of a training run (all of it without torchrun)."""

    def __init__(self, options: TrainOptions, world: World, resume: bool = False) -> None:
        self.options = o = options
        self.world = world
        self.run_dir = Path(o.out)
        self.device = world.device(o.device)
        self.cuda = self.device.type == "cuda"
        self.train_set = open_dataset(o.dataset, Path(o.root), "train")
        if not self.train_set.samples:
            raise DatasetError(f"{o.dataset} train under {o.root} holds no annotated person")
        self.select_set = open_dataset(o.dataset, Path(o.root), o.select_on)
        self.val_set = self.select_set if o.select_on == "val" else open_dataset(o.dataset, Path(o.root), "val")
        splits = [self.train_set, self.select_set] + ([] if self.val_set is self.select_set else [self.val_set])
        for split in splits:  # seconds now, rather than an error when an epoch reaches the image
            split.check_images()
        self.heads = read_head_boxes(Path(o.heads))
        self.metric = selection_metric(o.dataset)
        self.plan = BatchPlan(len(self.train_set), o.batch_size, o.accumulate, world.size, o.seed)
        self.persons = PersonViewsSet(self.train_set, self.heads, o.seed, augment=o.augment)
        # A resumed run reads its state first (a damaged last.pt says so before minutes of set-up) and
        # starts from random weights: last.pt replaces them, so nothing is downloaded again.
        saved = files.load_last(self.run_dir) if resume else None
        initial = initial_model(
            "random" if resume else o.init, len(self.train_set.classes), Path(o.weights_dir),
            Path(o.clip) if o.clip else None, Path(o.vi_weights) if o.vi_weights else None,
            o.inside_lr, o.dropout, o.seed,
        )  # fmt: skip
        self.notes = initial.notes
        self.clip_path = initial.clip_path
        self.model = initial.model.to(self.device)
        self.frozen = freeze_never_trained(self.model)
        clip = initial.clip.eval().to(self.device)
        self.clip = clip.half() if self.cuda else clip
        self.clip.requires_grad_(False)
        self.precision = o.precision if o.precision != "auto" else ("fp16" if self.cuda else "fp32")
        if self.precision == "fp16" and not self.cuda:
            raise ValueError("--precision fp16 needs CUDA (use bf16 or fp32 on a CPU)")
        self.trained = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.trained, lr=o.lr, betas=(o.beta1, o.beta2), eps=1e-8, weight_decay=o.weight_decay, fused=True
        )
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=o.lr_step, gamma=o.lr_gamma)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        emotic = o.dataset.startswith("emotic")
        self.objective = Objective(o.class_weights, static_weights(self.train_set.targets(), emotic))
        self.progress = files.Progress()
        self._grad_norm: float | None = None
        self._step_epoch = 0
        self._last_eval = -1
        if saved is not None:
            self._restore(saved)
            del saved
            resumed = f"weights: resumed at step {self.progress.step} from {self.run_dir / files.LAST_FILE}"
            self.notes = [resumed, *(n for n in self.notes if not n.startswith("weights"))]
        self.network: nn.Module = self.model
        if world.distributed:
            if self.cuda:
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)  # type: ignore[assignment]
            self.network = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.cuda else None)
        self.scorer = CocoERModel(self.model, self.clip, str(self.device), labels=self.train_set.classes, fold=False)
        self.model.train()
        self._set_batch_norm()
        workers = o.workers if o.workers >= 0 else (min(8, torch.get_num_threads()) if self.cuda else 0)
        self.workers = workers

    # -- state -------------------------------------------------------------------------------------

    def _restore(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"], strict=True)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        self.progress = files.Progress(**saved["progress"])
        rngs = saved["rng"]
        files.restore_rng(rngs[self.world.rank] if self.world.rank < len(rngs) else rngs[0])
        if self.world.is_main:
            files.trim_metrics(self.run_dir, self.progress.step)

    def save_last(self) -> None:
        """last.pt on process 0 (with every process's RNG state); the others wait."""
        rngs = self.world.gather(files.rng_state())
        if self.world.is_main:
            files.save_last(
                self.run_dir,
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                    "progress": dataclasses.asdict(self.progress),
                    "rng": rngs,
                    "options": self.options.to_json(),
                },
            )
        self.world.barrier()

    def _set_batch_norm(self) -> None:
        if self.options.freeze_bn:
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    # -- one step ----------------------------------------------------------------------------------

    def _micro_step(self, batch: TrainBatch, sync: bool) -> tuple[float, float, float, float]:
        quiet = self.network.no_sync() if (self.world.distributed and not sync) else nullcontext()  # type: ignore[operator]
        with quiet, torch.enable_grad():  # whatever the caller's grad mode (a library caller may be in no_grad)
            with autocast_for(self.precision, self.device):
                parts = forward_loss(self.network, self.clip, self.objective, batch, self.device)
            self.scaler.scale(parts.trained / self.options.accumulate).backward()
        return parts.total, parts.final, parts.vi, parts.levels

    def _optimizer_step(self) -> float | None:
        """Clip (if asked) and step; returns the gradient norm when clipping measured it."""
        norm = None
        if self.options.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            norm = float(torch.nn.utils.clip_grad_norm_(self.trained, self.options.clip_grad))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    # -- evaluation --------------------------------------------------------------------------------

    def evaluate(self, dataset: PersonDataset, refine: bool) -> tuple[dict[str, Any], Any]:
        inside_lr = 1.0 if refine else self.options.inside_lr
        with scoring(self.model, refine, inside_lr):
            scores = score_dataset(self.scorer, dataset, self.heads, progress=False)
        self._set_batch_norm()
        metrics = emotic_metrics(dataset, scores) if self.metric == "mAP" else caer_metrics(dataset, scores)
        return metrics, scores

    def _evaluate_and_select(self) -> None:
        """Process 0: score the selection split, save GWT.pth when it improved, log; then last.pt."""
        o, p = self.options, self.progress
        if self.world.is_main:
            started = time.monotonic()
            metrics, _ = self.evaluate(self.select_set, refine=False)
            value = metrics[self.metric]
            improved = value is not None and (p.best is None or value > p.best)
            if improved:
                p.best, p.best_step, p.evals_since_best = value, p.step, 0
                files.save_model(self.run_dir, self.model.state_dict())
            else:
                p.evals_since_best += 1
            files.append_metrics(
                self.run_dir,
                {
                    "kind": "eval", "step": p.step, "epoch": p.epoch, "split": o.select_on,
                    self.metric: value, "levels": metrics["levels"], "best": p.best, "best_step": p.best_step,
                    "seconds": round(time.monotonic() - started, 2),
                },
            )  # fmt: skip
            files.plot_metrics(self.run_dir, self.metric)
            logger.info("step %d: %s %s %s", p.step, o.select_on, self.metric, value)
        self.world.barrier()
        self._share_progress()
        self.save_last()

    def _share_progress(self) -> None:
        """Every process learns process 0's selection counters (early stopping is decided the same everywhere)."""
        if self.world.distributed:
            shared = self.world.gather(dataclasses.asdict(self.progress))[0]
            for name, value in shared.items():  # in place: the loop holds this object
                setattr(self.progress, name, value)

    def _log_train(self, lr: float) -> None:
        p = self.progress
        if not p.count:
            return
        keys = sorted(p.sums)
        means = self.world.mean([p.sums[k] / p.count for k in keys])  # every process calls it
        p.sums, p.count = {}, 0
        if not self.world.is_main:
            return
        record: dict[str, Any] = {"kind": "train", "step": p.step, "epoch": self._step_epoch, "lr": lr}
        record.update({k: round(v, 6) for k, v in zip(keys, means, strict=True)})
        if self._grad_norm is not None:
            record["grad_norm"] = round(self._grad_norm, 4)
        files.append_metrics(self.run_dir, record)

    def finish(self) -> dict[str, Any]:
        """Process 0: per-class thresholds of the selected model on val (as the pipeline scores), labels."""
        from cocoer_core.checkpoint import GWT_FILE, read_cocoer_state

        summary: dict[str, Any] = {"best": self.progress.best, "best_step": self.progress.best_step}
        if self.world.is_main:
            gwt = self.run_dir / GWT_FILE
            if not gwt.is_file():  # never evaluated (no step done): the current weights
                files.save_model(self.run_dir, self.model.state_dict())
            self.model.load_state_dict(read_cocoer_state(gwt), strict=True)
            files.save_json(self.run_dir / LABELS_FILE, list(self.train_set.classes))
            files.link_clip(self.run_dir, self.clip_path)
            _, scores = self.evaluate(self.val_set, refine=True)
            files.save_json(self.run_dir / THRESHOLDS_FILE, {**thresholds_for(self.val_set, scores), "mode": "live"})
        self.world.barrier()
        return summary

    # -- the loop ----------------------------------------------------------------------------------

    def _step(self, stop: StopRequests, on_step: Any) -> None:
        """The optimizer step that ends a batch, then the epoch's end, logging, evaluation and stop requests."""
        o, p = self.options, self.progress
        p.count += 1
        lr = self.optimizer.param_groups[0]["lr"]
        self._grad_norm = self._optimizer_step()
        self._step_epoch = p.epoch  # the log names the epoch the step belonged to
        p.step, p.step_in_epoch = p.step + 1, p.step_in_epoch + 1
        if p.step_in_epoch == self.plan.steps_per_epoch:
            self.scheduler.step()
            p.epoch, p.step_in_epoch = p.epoch + 1, 0
        due = self._eval_due()
        if p.step % o.log_every == 0 or due or self._done():  # the loss up to an evaluation, before it
            self._log_train(lr)
        if on_step is not None:
            on_step(p)
        if due:
            self._evaluate_and_select()
            self._last_eval = p.step
        elif o.save_every and p.step % o.save_every == 0:
            self.save_last()
        if self.world.any(stop.requested):
            self._log_train(lr)
            self.save_last()
            raise Interrupted(f"stopped at step {p.step}; resume with --resume {self.run_dir}")

    def _done(self) -> bool:
        o, p = self.options, self.progress
        if o.max_steps and p.step >= o.max_steps:
            return True
        if p.epoch >= o.epochs:
            return True
        return bool(o.patience and p.evals_since_best >= o.patience)

    def _eval_due(self) -> bool:
        o, p = self.options, self.progress
        if o.eval_every:
            return p.step % o.eval_every == 0
        return p.step_in_epoch == 0  # an epoch just ended

    def run(self, stop: StopRequests, on_step: Any = None) -> dict[str, Any]:
        """Train until the epochs, --max-steps or patience run out; raises Interrupted after saving on a stop."""
        o, p = self.options, self.progress
        self._last_eval, ran = -1, 0
        while not self._done():
            loader = epoch_loader(self.persons, self.plan, p.epoch, p.step_in_epoch, self.world.rank, self.workers)
            micro = 0
            for batch in loader:
                micro += 1
                total, final, vi, levels = self._micro_step(batch, sync=micro % o.accumulate == 0)
                for key, value in (("loss", total), ("final", final), ("vi", vi), ("levels", levels)):
                    p.sums[key] = p.sums.get(key, 0.0) + value / o.accumulate
                if micro % o.accumulate:
                    continue
                if not math.isfinite(total):
                    raise FloatingPointError(f"the loss is {total} at step {p.step + 1}: lower --lr or use --clip-grad")
                self._step(stop, on_step)
                ran += 1
                if self._done():
                    break
        self._log_train(self.optimizer.param_groups[0]["lr"])
        if ran and self._last_eval != p.step:
            self._evaluate_and_select()  # the run's last weights are a candidate too
        elif not ran and not (self.run_dir / files.LAST_FILE).is_file():
            self.save_last()
        return self.finish()


__all__ = ["STOPPED", "CheckpointError", "Interrupted", "StopRequests", "Trainer"]
