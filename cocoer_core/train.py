"""`python -m cocoer_core.train`: train or fine-tune CocoER on EMOTIC, CAER-S or your own data in their layouts.

    python -m cocoer_core.train --dataset emotic --root /data/EMOTIC --heads heads.json --out runs/emotic
    python -m cocoer_core.train --dataset caer-s --root /data/CAER-S --heads caer.json --out runs/caer --init checkpoints
    python -m cocoer_core.train --resume runs/emotic --max-steps 6000
    torchrun --nproc-per-node 4 -m cocoer_core.train --dataset emotic ...   # DDP, the same command

The official recipe is the default: AdamW lr 6e-5, betas (0.9, 0.96), weight
decay 0.01, StepLR(3, 0.1) per epoch, 20 epochs, batch 64, pseudo-label
threshold 0.3, inner step 0.1, static class weights (spec §9). The saved model
is picked on the validation split (`--select-on test` repeats the release's
choice, with a warning). `RUN_DIR/GWT.pth` is the official format with
`labels.json` and `thresholds.json` beside it: `run_stream.py --weights
RUN_DIR` runs it, as `cocoer_core.evaluate --weights RUN_DIR` measures it.

Ctrl+C (or SIGTERM) stops after the current step with the state saved; exit
130, and `--resume RUN_DIR` goes on from there with the same batches, the same
augmentation and the same random numbers (bit-identical on a CPU). Exit 2 with
one line on bad input or missing weights.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cocoer_core.data import KINDS, DatasetError
from cocoer_core.errors import CheckpointError
from cocoer_core.training import state as files
from cocoer_core.training.distributed import join, leave
from cocoer_core.training.initial import INITS
from cocoer_core.training.objective import WEIGHTINGS
from cocoer_core.training.options import TrainOptions, option_names, resumed
from cocoer_core.training.trainer import STOPPED, Interrupted, StopRequests, Trainer

logger = logging.getLogger("cocoer_core.train")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cocoer_core.train", description=__doc__.split("\n\n")[0])
    # Every default is None: what the command line gave is told apart from what a resumed run saved.
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=KINDS)
    data.add_argument("--root", type=Path, help="the dataset's own top folder")
    data.add_argument("--heads", type=Path, help="its head-box file (python -m streamer.tools.head_boxes)")
    data.add_argument("--out", type=Path, help="the run folder (GWT.pth, last.pt, metrics.jsonl, ...)")
    data.add_argument("--resume", type=Path, metavar="RUN_DIR", help="go on with a stopped run")
    start = p.add_argument_group("initial weights")
    start.add_argument("--init", help=f"{' | '.join(INITS)} | a folder with GWT.pth to fine-tune (default: pretrained)")
    start.add_argument("--weights-dir", help="where RN50.pt and VI_weights/w.pth are looked for (checkpoints)")
    start.add_argument("--clip", help="OpenAI's RN50.pt (default: the weights folder, clip's cache, download)")
    start.add_argument("--vi-weights", help="the stage-1 VI_weights/w.pth for --init pretrained")
    loop = p.add_argument_group("schedule")
    loop.add_argument("--epochs", type=int)
    loop.add_argument("--max-steps", type=int, help="stop after N optimizer steps over the whole run")
    loop.add_argument("--batch-size", type=int, help="persons per optimizer step, all processes together (64)")
    loop.add_argument("--accumulate", type=int, help="forward/backward passes per optimizer step (1)")
    loop.add_argument("--lr", type=float)
    loop.add_argument("--weight-decay", type=float)
    loop.add_argument("--lr-step", type=int, help="StepLR step, epochs (3)")
    loop.add_argument("--lr-gamma", type=float)
    loop.add_argument("--inside-lr", type=float, help="the coordination step while training (0.1)")
    loop.add_argument("--dropout", type=float)
    loop.add_argument("--class-weights", choices=WEIGHTINGS)
    loop.add_argument("--clip-grad", type=float, help="max gradient norm (default: no clipping)")
    loop.add_argument("--freeze-bn", action="store_true", default=None, help="BatchNorm keeps its running stats")
    loop.add_argument(
        "--no-augment", dest="augment", action="store_false", default=None, help="no crops, flips or jitter"
    )
    loop.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"))
    loop.add_argument("--seed", type=int)
    select = p.add_argument_group("selection")
    select.add_argument("--eval-every", type=int, help="evaluate every N steps (default: each epoch's end)")
    select.add_argument("--patience", type=int, help="stop after N evaluations without improvement")
    select.add_argument("--select-on", choices=("val", "test"), help="the split that picks GWT.pth (val)")
    run = p.add_argument_group("run")
    run.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when there is one)")
    run.add_argument("--workers", type=int, help="data-loader processes (default: 0 on CPU, up to 8 on CUDA)")
    run.add_argument("--save-every", type=int, help="also write last.pt every N steps")
    run.add_argument("--log-every", type=int, help="a train line in metrics.jsonl every N steps (10)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def options_from(args: argparse.Namespace) -> TrainOptions:
    given: dict[str, Any] = {
        name: getattr(args, name) for name in option_names() if getattr(args, name, None) is not None
    }
    for name in ("root", "heads", "out"):
        if name in given:
            given[name] = str(Path(given[name]).resolve())
    if args.resume is not None:
        given["out"] = str(args.resume.resolve())
        return resumed(args.resume / files.OPTIONS_FILE, given)
    missing = [f"--{n}" for n in ("dataset", "root", "heads", "out") if n not in given]
    if missing:
        raise DatasetError(f"{', '.join(missing)} required (or --resume RUN_DIR)")
    given.setdefault("device", "cuda" if torch.cuda.is_available() else "cpu")
    if given.get("select_on") == "test":
        logger.warning(
            "--select-on test picks the saved model on the test split, as the official code did: "
            "its test score is then optimistic; compare it only with numbers selected the same way"
        )
    return TrainOptions(**given)


def _check_run_dir(options: TrainOptions, resume: bool) -> None:
    run_dir = Path(options.out)
    if not resume and (run_dir / files.LAST_FILE).exists():
        raise CheckpointError(f"{run_dir} already holds a run: --resume {run_dir} to go on, or choose another --out")
    for stale in run_dir.glob(".*.tmp"):  # a save cut short by a kill (the file it replaces is whole)
        stale.unlink(missing_ok=True)


def _start_run_dir(options: TrainOptions) -> None:
    """Written once the data and the weights have loaded: a start that fails leaves no run folder behind."""
    run_dir = Path(options.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    files.save_json(run_dir / files.OPTIONS_FILE, options.to_json())


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    world = None
    try:
        options = options_from(args)
        resume = args.resume is not None
        world = join(options.device)
        _check_run_dir(options, resume)
        trainer = Trainer(options, world, resume=resume)  # a bad dataset or head-box file: one line, first
        if world.is_main:
            _start_run_dir(options)
        world.barrier()
        if world.is_main:
            for note in trainer.notes:
                logger.info("%s", note)
            logger.info(
                "%d persons, %d steps per epoch of %d; device %s, %s, %d process(es)",
                len(trainer.train_set), trainer.plan.steps_per_epoch, options.batch_size,
                trainer.device, trainer.precision, world.size,
            )  # fmt: skip
        with StopRequests() as stop, _progress_bar(trainer, enabled=world.is_main and not args.quiet) as on_step:
            summary = trainer.run(stop, on_step)
    except Interrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        return STOPPED
    except KeyboardInterrupt:  # a second Ctrl+C: at once; last.pt is whole (written under another name first)
        print("\nstopped at once; --resume goes on from the last saved step", file=sys.stderr)
        return STOPPED
    except (DatasetError, CheckpointError, ValueError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        if world is not None:
            leave(world)
    if world.is_main:
        best = summary["best"]
        metric = trainer.metric
        shown = "-" if best is None else f"{best:.4f}"
        print(f"{options.select_on} {metric} {shown} at step {summary['best_step']}; model: {Path(options.out)}")
    return 0


class _progress_bar:
    """A rich progress bar over the run's optimizer steps (process 0, when asked)."""

    def __init__(self, trainer: Trainer, enabled: bool) -> None:
        self.trainer = trainer
        self.enabled = enabled and sys.stderr.isatty()
        self.progress: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        o, plan = self.trainer.options, self.trainer.plan
        total = plan.steps_per_epoch * o.epochs
        if o.max_steps:
            total = min(total, o.max_steps)
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
        )  # fmt: skip
        self.progress.start()
        task = self.progress.add_task("train", total=total, completed=self.trainer.progress.step, info="")

        def on_step(p: files.Progress) -> None:
            loss = p.sums.get("loss", 0.0) / max(p.count, 1)
            best = "" if p.best is None else f" best {self.trainer.metric} {p.best:.4f}"
            self.progress.update(task, completed=p.step, info=f"epoch {p.epoch} loss {loss:.4f}{best}")

        return on_step

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


if __name__ == "__main__":
    sys.exit(main())
