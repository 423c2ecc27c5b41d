"""The TF.js graph runner: TensorFlow's conv semantics on a hand-written graph, and clear refusals."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from streamer.detectors.tfjs_graph import GraphModel, GraphModelError


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _write_graph(folder: Path, weights: dict[str, np.ndarray], nodes: list[dict], fp16: set[str]) -> Path:
    manifest, blob = [], b""
    for name, value in weights.items():
        spec = {"name": name, "shape": list(value.shape), "dtype": "int32" if value.dtype == np.int32 else "float32"}
        if name in fp16:
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blob += value.astype(np.float16).tobytes()
        else:
            blob += value.tobytes()
        manifest.append(spec)
    (folder / "g.bin").write_bytes(blob)
    consts = [{"name": n, "op": "Const", "attr": {}} for n in weights]
    model = {
        "format": "graph-model",
        "modelTopology": {"node": consts + nodes},
        "weightsManifest": [{"paths": ["g.bin"], "weights": manifest}],
    }
    path = folder / "model.json"
    path.write_text(json.dumps(model))
    return path


def _reference_conv_same(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Direct NHWC convolution with TensorFlow's SAME padding (the odd pixel goes after)."""
    _, h, width, _ = x.shape
    kh, kw, _, cout = w.shape
    out_h, out_w = -(-h // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + kh - h, 0)
    pad_w = max((out_w - 1) * stride + kw - width, 0)
    padded = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((1, out_h, out_w, cout), np.float32)
    for i in range(out_h):
        for j in range(out_w):
            patch = padded[0, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[0, i, j] = np.tensordot(patch, w, axes=([0, 1, 2], [0, 1, 2]))
    return out


def test_fused_conv_same_padding_relu6_and_mean_match_tensorflow_semantics(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float16).astype(np.float32)  # exact in fp16
    b = np.array([0.5, -0.5, 2.0, 0.0], np.float32)
    axes = np.array([1, 2], np.int32)
    nodes = [
        {
            "name": "x",
            "op": "Placeholder",
            "attr": {"shape": {"shape": {"dim": [{"size": "1"}, {"size": "6"}, {"size": "6"}, {"size": "2"}]}}},
        },
        {
            "name": "conv",
            "op": "_FusedConv2D",
            "input": ["x", "w", "b"],
            "attr": {
                "strides": {"list": {"i": ["1", "2", "2", "1"]}},
                "padding": {"s": _b64("SAME")},
                "data_format": {"s": _b64("NHWC")},
                "fused_ops": {"list": {"s": [_b64("BiasAdd"), _b64("Relu6")]}},
                "num_args": {"i": "1"},
            },
        },
        {"name": "pool", "op": "Mean", "input": ["conv", "axes"], "attr": {"keep_dims": {"b": True}}},
    ]
    graph = GraphModel(_write_graph(tmp_path, {"w": w, "b": b, "axes": axes}, nodes, fp16={"w"}))
    x = rng.normal(size=(1, 5, 7, 2)).astype(np.float32)  # not the declared 6x6, odd sizes: SAME pads unevenly
    conv, pooled = graph.run({"x": torch.from_numpy(x)}, ["conv", "pool"])
    expected = np.clip(_reference_conv_same(x, w, 2) + b, 0.0, 6.0)
    assert conv.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(conv.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(pooled.numpy(), expected.mean(axis=(1, 2), keepdims=True), atol=1e-5)


def _reference_legacy_resize(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1's ResizeBilinear on NHWC: each output sample at source = dest * in / out, blended from the samples
    either side (the next one clamped at the far edge); bilinear is one axis after the other."""

    def along(a: np.ndarray, axis: int, out: int) -> np.ndarray:
        n = a.shape[axis]
        samples = []
        for d in range(out):
            source = d * n / out
            low = min(int(np.floor(source)), n - 1)
            high = min(low + 1, n - 1)
            t = source - low
            samples.append(np.take(a, low, axis) * (1 - t) + np.take(a, high, axis) * t)
        return np.stack(samples, axis)

    return along(along(x.astype(np.float64), 1, out_h), 2, out_w)


@pytest.mark.parametrize("size", [(10, 14), (8, 11), (3, 4)], ids=["doubled", "uneven", "smaller"])
def test_tf1_bilinear_resize_matches_tensorflow_semantics(tmp_path: Path, size: tuple[int, int]) -> None:
    """CenterNet upsamples with TF1's ResizeBilinear (no half-pixel centres): the doubling CenterNet does has
    its own path of slices, other sizes gather; both are TensorFlow's samples."""
    x = np.random.default_rng(1).normal(size=(1, 5, 7, 3)).astype(np.float32)
    shape = {"shape": {"dim": [{"size": str(d)} for d in x.shape]}}
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {"shape": shape}},
        {"name": "up", "op": "ResizeBilinear", "input": ["x", "size"], "attr": {}},
    ]
    graph = GraphModel(_write_graph(tmp_path, {"size": np.array(size, np.int32)}, nodes, set()))
    (up,) = graph.run({"x": torch.from_numpy(x)}, ["up"])
    assert up.shape == (1, *size, 3)
    np.testing.assert_allclose(up.numpy(), _reference_legacy_resize(x, *size), atol=1e-5)


def test_an_unsupported_op_is_refused_when_the_graph_is_read(tmp_path: Path) -> None:
    nodes = [{"name": "x", "op": "Placeholder", "attr": {}}, {"name": "y", "op": "Einsum", "input": ["x"], "attr": {}}]
    with pytest.raises(GraphModelError, match="unsupported ops Einsum"):
        GraphModel(_write_graph(tmp_path, {}, nodes, set()))


def test_truncated_weights_are_refused(tmp_path: Path) -> None:
    nodes = [{"name": "x", "op": "Placeholder", "attr": {}}]
    path = _write_graph(tmp_path, {"w": np.ones((4, 4), np.float32)}, nodes, set())
    (tmp_path / "g.bin").write_bytes((tmp_path / "g.bin").read_bytes()[:10])
    with pytest.raises(GraphModelError, match="truncated"):
        GraphModel(path)
