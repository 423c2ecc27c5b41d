"""CocoER as an `EmotionModel`: all persons of a frame in one batched call.

The frame is the context: its ResNet-50 trunk, context self-attention, CLIP
RN50 and VI branch run once per frame, not once per person. Inference is
deterministic: eval mode, no colour jitter, RGB input (the release's
inference script runs in train mode with random jitter on BGR-as-RGB input;
see the spec's §10). On CUDA the trunks run under fp16 (or bf16) autocast
and CLIP in fp16, as the release; the competition step always runs in fp32.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2

import numpy as np
import torch

from cocoer_core.api import COMPETING_LEVELS, EmotionResult, FramePersons, Level, PersonRegion
from cocoer_core.checkpoint import (
    GWT_FILE,
    classes_in,
    find_clip_weights,
    load_clip_rn50,
    load_state,
    read_cocoer_state,
)
from cocoer_core.clip_rn50 import ModifiedResNet
from cocoer_core.config import CocoERConfig
from cocoer_core.errors import CheckpointError
from cocoer_core.labels import CAER_S_LABELS, EMOTIC_LABELS
from cocoer_core.model import CocoER, CocoEROutput
from cocoer_core.onnx_core import OnnxCore
from cocoer_core.onnx_session import runtime_label
from cocoer_core.postprocess import FINAL_THRESHOLD, LEVEL_THRESHOLD, LabelRule, Threshold
from cocoer_core.preprocess import boxes_to_224, crop, integer_box, resize_224, to_tensor

logger = logging.getLogger(__name__)

OUTPUT_LEVELS = (Level.FINAL, Level.VI, Level.HEAD, Level.BODY, Level.CONTEXT)


def estimated_head(body: Sequence[float]) -> tuple[float, float, float, float]:
    """A head box guessed from a body box (top centre), for persons with no detected face."""
    x1, y1, x2, y2 = body
    side = max(0.35 * (x2 - x1), 1.0)
    cx = (x1 + x2) / 2.0
    return cx - side / 2.0, y1, cx + side / 2.0, min(y1 + 1.2 * side, y2)


@dataclass
class FrameBatch:
    """CocoER's inputs for the persons of one or more frames; person i's context is `context[index[i]]`."""

    context: torch.Tensor  # [F, 3, 224, 224]
    body: torch.Tensor  # [B, 3, 224, 224]
    head: torch.Tensor  # [B, 3, 224, 224]
    coord_body: torch.Tensor  # [B, 4]
    coord_head: torch.Tensor  # [B, 4]
    index: torch.Tensor | None = None  # [B] frame of each person (None: all from frame 0)

    def person_index(self) -> torch.Tensor:
        """[B] each person's context (all 0 when `index` is None)."""
        return self.index if self.index is not None else torch.zeros(self.body.shape[0], dtype=torch.long)

    def to(self, device: torch.device) -> FrameBatch:
        """On `device`, with the person index spelled out."""
        return FrameBatch(
            context=self.context.to(device, non_blocking=True),
            body=self.body.to(device, non_blocking=True),
            head=self.head.to(device, non_blocking=True),
            coord_body=self.coord_body.to(device),
            coord_head=self.coord_head.to(device),
            index=self.person_index().to(device),
        )

    def model_inputs(self) -> tuple[torch.Tensor, ...]:
        """(context, body, head, coord_body, coord_head): CocoER's first five arguments."""
        return self.context, self.body, self.head, self.coord_body, self.coord_head

    @staticmethod
    def concat(batches: Sequence[FrameBatch]) -> FrameBatch:
        """Several single-frame batches as one: contexts stacked, persons mapped to their frame."""
        counts = torch.tensor([b.body.shape[0] for b in batches])
        return FrameBatch(
            context=torch.cat([b.context for b in batches]),  # [F, 3, 224, 224]
            body=torch.cat([b.body for b in batches]),  # [B, 3, 224, 224]
            head=torch.cat([b.head for b in batches]),
            coord_body=torch.cat([b.coord_body for b in batches]),  # [B, 4]
            coord_head=torch.cat([b.coord_head for b in batches]),
            index=torch.repeat_interleave(torch.arange(len(batches)), counts),  # [B]
        )


def prepare_frame(image_bgr: np.ndarray, persons: Sequence[PersonRegion], resize: str = "pil") -> FrameBatch:
    """Crop and normalise one frame's persons (spec §2)."""
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    bodies = [integer_box(p.body_xyxy, width, height) for p in persons]
    heads = [integer_box(p.head_xyxy or estimated_head(p.body_xyxy), width, height) for p in persons]
    return FrameBatch(
        context=to_tensor([resize_224(rgb, resize)]),
        body=to_tensor([resize_224(crop(rgb, b), resize) for b in bodies]),
        head=to_tensor([resize_224(crop(rgb, h), resize) for h in heads]),
        coord_body=boxes_to_224(bodies, width, height),
        coord_head=boxes_to_224(heads, width, height),
    )


class CocoERModel:
    """The full CocoER behind the pipeline's `EmotionModel` interface."""

    name: str = "cocoer"
    levels: tuple[Level, ...] = OUTPUT_LEVELS

    def __init__(
        self,
        model: CocoER,
        clip: ModifiedResNet,
        device: str = "cpu",
        precision: str = "auto",
        final_threshold: Threshold = FINAL_THRESHOLD,
        level_threshold: Threshold = LEVEL_THRESHOLD,
        resize: str = "pil",
        labels: tuple[str, ...] | None = None,
        fold: bool = True,
        onnx: OnnxCore | None = None,
    ) -> None:
        """`fold=False` keeps the model trainable (the unfolded VI layer; the training loop scores with it);
        `onnx`, an exported copy of `model` (cocoer_core.export), runs instead of it."""
        self.device = torch.device(device)
        self.labels: tuple[str, ...] = labels or default_labels(model.config.num_class)
        if len(self.labels) != model.config.num_class:
            raise CheckpointError(f"{len(self.labels)} label names for a {model.config.num_class}-class model")
        kind = {EMOTIC_LABELS: "EMOTIC", CAER_S_LABELS: "CAER-S"}.get(self.labels, "custom")
        self.onnx = onnx
        self.label_rule = LabelRule(final_threshold, level_threshold)
        self.resize = resize
        self.precision = choose_precision(precision, self.device) if onnx is None else onnx.precision
        self.runtime = runtime_label(onnx.providers) if onnx else "torch"
        self.kind = kind
        self.description = self.describe()
        if fold:
            model.fold_vi()
            release_unfolded_vi(model)
        self.model = model.eval().to(self.device)
        clip = clip.eval().to(self.device)
        self.clip = clip.half() if self.device.type == "cuda" else clip.float()

    def describe(self) -> str:
        """What runs, for the log and run.json: classes, levels, runtime and precision."""
        return f"CocoER, {len(self.labels)} {self.kind} classes, head+body+context ({self.runtime} {self.precision})"

    @classmethod
    def from_directory(
        cls,
        weights_dir: Path,
        device: str = "cpu",
        precision: str = "auto",
        final_threshold: Threshold = FINAL_THRESHOLD,
        level_threshold: Threshold = LEVEL_THRESHOLD,
        inside_lr: float = 1.0,
        trust_pickle: bool = False,
        allow_download: bool = True,
        refine: bool = True,
        runtime: str = "torch",
    ) -> CocoERModel:
        """Load `<dir>/GWT.pth` and OpenAI's RN50.pt (from `<dir>` or clip's cache, else downloaded).

        The class count is the checkpoint's; `<dir>/labels.json` names the classes (else EMOTIC's 26 or
        CAER-S's 7), and `<dir>/thresholds.json` (per-class thresholds chosen on a validation split by
        `cocoer_core.evaluate`) replaces `final_threshold` when it is there. `refine=False` skips the
        coordination step, as the official training code's evaluation does (spec §9.4).

        `runtime`: `torch`; `onnxruntime` runs `<dir>/cocoer.onnx`, exported (and checked) first when it is
        missing or was made from another checkpoint or settings; `auto` runs it on a CPU when a current
        export is there, else PyTorch. A runtime that cannot run says so in one line and PyTorch runs.
        """
        path = weights_dir / GWT_FILE
        state = read_cocoer_state(path, trust_pickle)
        model = CocoER(CocoERConfig(num_class=classes_in(state, path), inside_lr=inside_lr, refine=refine))
        load_state(model, state, path)
        labels = read_labels(weights_dir, model.config.num_class)
        chosen = read_thresholds(weights_dir, labels)
        clip = load_clip_rn50(find_clip_weights(weights_dir, allow_download))
        final = chosen if chosen is not None else final_threshold
        onnx = None
        on_cpu = torch.device(device).type == "cpu"
        # auto stays on PyTorch on a GPU and for a reduced precision asked for (the export runs fp32 on a CPU).
        reduced = precision in ("bf16", "fp16")
        if runtime == "onnxruntime" or (runtime == "auto" and on_cpu and not reduced):
            from cocoer_core.export import exported_core

            # TensorRT's precision on a GPU; a CPU runs the file's fp32 (said below when something else was asked).
            engine = "fp32" if on_cpu else choose_precision(precision, torch.device(device))
            onnx = exported_core(weights_dir, model, clip.visual, labels, device, runtime == "onnxruntime", engine)
            if onnx is not None and reduced and on_cpu:
                logger.warning("emotion.precision=%s: CocoER runs in ONNX Runtime in fp32 on a CPU", precision)
        loaded = cls(model, clip.visual, device, precision, final, level_threshold, labels=labels, onnx=onnx)
        if runtime == "auto" and onnx is not None:
            loaded.keep_the_faster()
        return loaded

    def keep_the_faster(self) -> None:
        """runtime auto: keep ONNX Runtime only where it runs a frame of two persons faster than PyTorch (timed
        once per machine, remembered beside the export; both give the same logits: the export was checked)."""
        from cocoer_core.speed_choice import faster

        onnx = self.onnx
        if onnx is None:
            return
        image = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
        people = (PersonRegion((40.0, 60.0, 240.0, 350.0), (100.0, 70.0, 170.0, 150.0)),
                  PersonRegion((380.0, 40.0, 600.0, 355.0), None))  # fmt: skip
        batch = prepare_frame(image, people, self.resize)

        def exported() -> CocoEROutput:
            return onnx.output(*batch.model_inputs(), batch.person_index())

        calls = {"torch": lambda: self._torch_forward(batch), "onnxruntime": exported}
        chosen, timings = faster(onnx.path.with_suffix(".json"), "emotion (CocoER)", calls, str(self.device))
        logger.debug("CocoER per frame of two persons: %s", timings)
        if chosen == "torch":
            self.onnx = None
            self.precision = choose_precision("auto", self.device)
            self.runtime = "torch"
            self.description = self.describe()

    def _autocast(self) -> AbstractContextManager[object]:
        return autocast_for(self.precision, self.device)

    @torch.inference_mode()
    def forward_frame(self, batch: FrameBatch) -> CocoEROutput:
        """One call: each frame's context once, every person batched."""
        if self.onnx is not None:
            return self.onnx.output(*batch.model_inputs(), batch.person_index())
        return self._torch_forward(batch)

    @torch.inference_mode()
    def _torch_forward(self, batch: FrameBatch) -> CocoEROutput:
        moved = batch.to(self.device)
        clip_in = moved.context.half() if self.device.type == "cuda" else moved.context
        # CUDA: CLIP in fp16 as the release; a CPU with bf16 runs it in bf16 too (the float32 cast follows).
        with self._autocast() if self.device.type == "cpu" else nullcontext():
            clip_features = self.clip(clip_in).float()  # [F, 1024]
        with self._autocast():
            return self.model(*moved.model_inputs(), clip_features, context_index=moved.index)

    def predict(self, image_bgr: np.ndarray, persons: Sequence[PersonRegion]) -> list[EmotionResult | None]:
        return self.predict_frames([FramePersons(image_bgr, tuple(persons))])[0]

    def predict_frames(self, frames: Sequence[FramePersons]) -> list[list[EmotionResult | None]]:
        """The persons of several frames (several streams) in one forward pass."""
        busy = [f for f in frames if f.persons]
        if not busy:
            return [[] for _ in frames]
        batch = FrameBatch.concat([prepare_frame(f.image_bgr, f.persons, self.resize) for f in busy])
        flat = iter(results_from_output(self.forward_frame(batch), self.name, self.labels, self.label_rule))
        return [[next(flat) for _ in f.persons] for f in frames]


def autocast_for(precision: str, device: torch.device) -> AbstractContextManager[object]:
    """Autocast to `precision` (fp16 or bf16) on `device`; nothing for fp32."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def cpu_has_bf16() -> bool:
    """Native bfloat16 on this CPU (AVX512-BF16 or AMX); elsewhere autocast to bf16 is emulated and slower."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def choose_precision(precision: str, device: torch.device) -> str:
    """auto: fp16 on CUDA, fp32 on a CPU; bf16 on a CPU without it, and fp16 on a CPU, fall back to fp32."""
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if device.type == "cpu" and precision == "fp16":
        logger.warning("emotion.precision=fp16 needs a GPU: CocoER runs in fp32 on the CPU (bf16 may help)")
        return "fp32"
    if device.type == "cpu" and precision == "bf16" and not cpu_has_bf16():
        logger.warning("emotion.precision=bf16: this CPU has no native bfloat16, CocoER runs in fp32")
        return "fp32"
    return precision


LABELS_FILE = "labels.json"
THRESHOLDS_FILE = "thresholds.json"


def default_labels(num_class: int) -> tuple[str, ...]:
    if num_class == len(EMOTIC_LABELS):
        return EMOTIC_LABELS
    if num_class == len(CAER_S_LABELS):
        return CAER_S_LABELS
    raise CheckpointError(f"a {num_class}-class CocoER needs its label names in {LABELS_FILE} beside GWT.pth")


def read_labels(weights_dir: Path, num_class: int) -> tuple[str, ...]:
    """`<dir>/labels.json` (a list of names, in output order), else the default names for the class count."""
    path = weights_dir / LABELS_FILE
    if not path.is_file():
        return default_labels(num_class)
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path} is not a JSON list of label names ({type(exc).__name__})") from None
    if not isinstance(names, list) or len(names) != num_class or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path} must list the checkpoint's {num_class} label names")
    return tuple(names)


def read_thresholds(weights_dir: Path, labels: tuple[str, ...]) -> tuple[float, ...] | None:
    """Per-class final thresholds from `<dir>/thresholds.json` ({"labels": [...], "final": [...]}), if any."""
    path = weights_dir / THRESHOLDS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        names, values = data["labels"], data["final"]
        chosen = tuple(float(values[names.index(label)]) for label in labels)
    except (OSError, ValueError, RecursionError, KeyError, TypeError, IndexError, AttributeError):
        raise CheckpointError(f"{path} is not per-class thresholds for these labels") from None
    if not all(0.0 <= t <= 1.0 for t in chosen):
        raise CheckpointError(f"{path}: thresholds must be within 0..1")
    logger.info("per-class thresholds from %s", path)
    return chosen


def results_from_output(
    out: CocoEROutput, name: str, labels: tuple[str, ...], rule: LabelRule
) -> list[EmotionResult | None]:
    """Probabilities, thresholded labels and exclusion sequences per person."""
    probs = {
        Level.FINAL: torch.sigmoid(out.final.float()).cpu().numpy(),
        Level.VI: torch.sigmoid(out.vi.float()).cpu().numpy(),
        Level.HEAD: torch.sigmoid(out.head.float()).cpu().numpy(),
        Level.BODY: torch.sigmoid(out.body.float()).cpu().numpy(),
        Level.CONTEXT: torch.sigmoid(out.context.float()).cpu().numpy(),
    }
    losses = out.level_losses.float().cpu().numpy()
    orders = out.exclusion.cpu().tolist()
    results: list[EmotionResult | None] = []
    for i, order in enumerate(orders):
        scores = {level: values[i].astype(np.float32) for level, values in probs.items()}
        results.append(
            EmotionResult(
                model_name=name,
                labels=labels,
                scores=scores,
                pred=rule.final_labels(labels, scores[Level.FINAL]),
                level_pred={level: rule.level_labels(labels, scores[level]) for level in OUTPUT_LEVELS[1:]},
                exclusion=tuple(COMPETING_LEVELS[j] for j in order),
                level_losses={level: float(losses[i, j]) for j, level in enumerate(COMPETING_LEVELS)},
            )
        )
    return results


def release_unfolded_vi(model: CocoER) -> None:
    """Free the 708 MB unfolded VI_ffn.1 weight once the folded one exists (inference only)."""
    if not model.vocabulary.is_folded:
        raise RuntimeError("fold the VI branch before releasing its unfolded weight")
    first = cast(torch.nn.Linear, model.VI_ffn[1])
    first.weight = torch.nn.Parameter(torch.empty(0, dtype=first.weight.dtype), requires_grad=False)
