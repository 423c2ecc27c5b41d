"""Run a TensorFlow.js graph model (model.json + weight shards) in PyTorch.

npm packages ship detectors in this format; this reads one once into torch
tensors and evaluates the graph's nodes in order, with TensorFlow's
semantics (NHWC tensors, SAME padding), for the ops such detector graphs
use. No TensorFlow is needed. An op outside that set fails when the graph
is read, not mid-run.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


class GraphModelError(ValueError):
    """The files are not a TF.js graph model this runner can evaluate."""


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    attr: dict


_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANTIZED = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


def read_weights(model_dir: Path, manifest: list[dict]) -> dict[str, torch.Tensor]:
    """The graph's constants, dequantized to their original dtype."""
    weights: dict[str, torch.Tensor] = {}
    for group in manifest:
        data = b"".join((model_dir / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(s) for s in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            stored = np.dtype(_QUANTIZED[quant["dtype"]] if quant else _DTYPES[spec["dtype"]])
            size = count * stored.itemsize
            if offset + size > len(data):
                raise GraphModelError(f"{model_dir}: weight shards end before {spec['name']} (truncated download?)")
            values = np.frombuffer(data, stored, count, offset).reshape(shape)
            offset += size
            if quant and quant["dtype"] != "float16":
                values = values * quant["scale"] + quant["min"]
            weights[spec["name"]] = torch.from_numpy(values.astype(_DTYPES[spec["dtype"]]))
    return weights


def _text(attr: dict, key: str, default: str = "") -> str:
    value = attr.get(key, {}).get("s")
    return base64.b64decode(value).decode() if value else default


def _ints(attr: dict, key: str) -> list[int]:
    return [int(i) for i in attr.get(key, {}).get("list", {}).get("i", [])]


def _placeholder_shape(node: Node) -> list[int]:
    dims = node.attr.get("shape", {}).get("shape", {}).get("dim", [])
    return [int(d.get("size", -1)) for d in dims]


def _same_pads(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]):
    """TensorFlow's SAME padding of an NCHW tensor: ((top, bottom), (left, right)), the extra pixel after."""
    pads = []
    for size, k, s, d in zip(x.shape[2:], kernel, stride, dilation, strict=True):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def _same_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int], value=0.0):
    """`x` padded as TensorFlow's SAME padding pads it."""
    (top, bottom), (left, right) = _same_pads(x, kernel, stride, dilation)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


class GraphModel:
    """One TF.js graph model, evaluated node by node in PyTorch."""

    def __init__(self, model_json: Path, device: str = "cpu") -> None:
        model_json = Path(model_json)
        try:
            spec = json.loads(model_json.read_text())
            nodes = spec["modelTopology"]["node"]
            manifest = spec["weightsManifest"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GraphModelError(f"{model_json}: not a TF.js graph model ({exc})") from exc
        self.device = torch.device(device)
        self.consts = {k: v.to(self.device) for k, v in read_weights(model_json.parent, manifest).items()}
        self.nodes = [
            Node(n["name"], n["op"], tuple(n.get("input", ())), n.get("attr", {})) for n in nodes if n["op"] != "Const"
        ]
        unknown = sorted({n.op for n in self.nodes} - set(_OPS))
        if unknown:
            raise GraphModelError(f"{model_json}: unsupported ops {', '.join(unknown)}")
        self.inputs = [n.name for n in self.nodes if n.op == "Placeholder"]
        self.input_shapes = {n.name: _placeholder_shape(n) for n in self.nodes if n.op == "Placeholder"}
        self._filters: dict[str, torch.Tensor] = {}
        self._prepare_filters()

    def _prepare_filters(self) -> None:
        """Conv filters from TF's HWIO layout to torch's OIHW, once."""
        for node in self.nodes:
            if node.op in ("Conv2D", "_FusedConv2D") and node.inputs[1] in self.consts:
                self._filters[node.inputs[1]] = self.consts[node.inputs[1]].permute(3, 2, 0, 1).contiguous()
            elif node.op in ("DepthwiseConv2dNative", "FusedDepthwiseConv2dNative") and node.inputs[1] in self.consts:
                kh, kw, cin, mult = self.consts[node.inputs[1]].shape
                w = self.consts[node.inputs[1]].permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
                self._filters[node.inputs[1]] = w.contiguous()

    def needed(self, outputs: Iterable[str]) -> list[Node]:
        """The nodes `outputs` depend on, in graph order."""
        by_name = {n.name: n for n in self.nodes}
        wanted: set[str] = set()
        stack = [o.split(":")[0] for o in outputs]
        while stack:
            name = stack.pop()
            if name in wanted or name not in by_name:
                continue
            wanted.add(name)
            stack.extend(i.split(":")[0].lstrip("^") for i in by_name[name].inputs)
        return [n for n in self.nodes if n.name in wanted]

    def _spatial_scale(self, feeds: dict[str, torch.Tensor]) -> tuple[float, float]:
        """How much larger than the graph's own NHWC input the fed image is.

        Converters fold upsampling sizes into constants computed for the
        declared input; scaling them by this lets the graph run at other sizes.
        """
        for name, tensor in feeds.items():
            shape = self.input_shapes.get(name)
            if shape and len(shape) == 4 and tensor.dim() == 4 and shape[1] > 0 and shape[2] > 0:
                return int(tensor.shape[1]) / shape[1], int(tensor.shape[2]) / shape[2]  # ints: constants in a trace
        return 1.0, 1.0

    @torch.inference_mode()
    def run(self, feeds: dict[str, torch.Tensor], outputs: list[str]) -> list[torch.Tensor]:
        """Evaluate the graph on `feeds` (input name -> tensor) and return `outputs`."""
        values: dict[str, list[torch.Tensor]] = {k: [v.to(self.device)] for k, v in feeds.items()}
        run = _Run(self.consts, self._filters, self._spatial_scale(feeds))

        def get(ref: str) -> torch.Tensor:
            name, _, index = ref.lstrip("^").partition(":")
            if name in values:
                return values[name][int(index or 0)]
            return self.consts[name]

        for node in self.needed(outputs):
            if node.op == "Placeholder":
                if node.name not in values:
                    raise GraphModelError(f"no value fed for input {node.name}")
                continue
            result = _OPS[node.op](run, node, get)
            values[node.name] = list(result) if isinstance(result, tuple) else [result]
        return [get(o) for o in outputs]


@dataclass(frozen=True)
class _Run:
    """What ops see of one evaluation (per call, so threads can share a GraphModel)."""

    consts: dict[str, torch.Tensor]
    filters: dict[str, torch.Tensor]
    scale: tuple[float, float]


OpFn = Callable[[_Run, Node, Callable[[str], torch.Tensor]], torch.Tensor | tuple[torch.Tensor, ...]]


def _conv(model: _Run, node: Node, get, depthwise: bool) -> torch.Tensor:
    if _text(node.attr, "data_format", "NHWC") != "NHWC":
        raise GraphModelError(f"{node.name}: only NHWC convolutions are supported")
    x = get(node.inputs[0]).permute(0, 3, 1, 2)
    w = model.filters.get(node.inputs[1])
    if w is None:
        raise GraphModelError(f"{node.name}: filters must be constants")
    _, sh, sw, _ = _ints(node.attr, "strides") or [1, 1, 1, 1]
    _, dh, dw, _ = _ints(node.attr, "dilations") or [1, 1, 1, 1]
    padding = _text(node.attr, "padding", "VALID")
    inside: tuple[int, int] = (0, 0)  # padding the convolution does itself (one fused op in ONNX Runtime)
    if padding == "SAME":
        (top, bottom), (left, right) = _same_pads(x, (int(w.shape[2]), int(w.shape[3])), (sh, sw), (dh, dw))
        if top == bottom and left == right:
            inside = (top, left)
        else:
            x = F.pad(x, (left, right, top, bottom))
    elif padding == "EXPLICIT":
        p = _ints(node.attr, "explicit_paddings")
        x = F.pad(x, (p[4], p[5], p[2], p[3]))
    groups = x.shape[1] if depthwise else 1
    y = F.conv2d(x, w, None, (sh, sw), inside, (dh, dw), groups)
    fused = [base64.b64decode(s).decode() for s in node.attr.get("fused_ops", {}).get("list", {}).get("s", [])]
    extra = [get(i) for i in node.inputs[2:]]
    for op in fused:
        if op == "BiasAdd":
            y = y + extra[0].view(1, -1, 1, 1)
        elif op == "Relu":
            y = F.relu(y)
        elif op == "Relu6":
            y = F.relu6(y)
        elif op == "LeakyRelu":
            y = F.leaky_relu(y, node.attr.get("leakyrelu_alpha", {}).get("f", 0.2))
        elif op == "Prelu":
            y = torch.where(y > 0, y, y * extra[1].view(1, -1, 1, 1))
        else:
            raise GraphModelError(f"{node.name}: fused op {op} is not supported")
    return y.permute(0, 2, 3, 1)


def _pool(node: Node, get) -> torch.Tensor:
    x = get(node.inputs[0]).permute(0, 3, 1, 2)
    _, kh, kw, _ = _ints(node.attr, "ksize")
    _, sh, sw, _ = _ints(node.attr, "strides")
    if _text(node.attr, "padding") == "SAME":
        x = _same_pad(x, (kh, kw), (sh, sw), (1, 1), value=float("-inf"))
    return F.max_pool2d(x, (kh, kw), (sh, sw)).permute(0, 2, 3, 1)


def _resize(model: _Run, node: Node, get) -> torch.Tensor:
    x = get(node.inputs[0]).permute(0, 3, 1, 2)
    size = [int(v) for v in get(node.inputs[1]).tolist()]
    if node.inputs[1] in model.consts:
        size = [round(size[0] * model.scale[0]), round(size[1] * model.scale[1])]
    if node.attr.get("align_corners", {}).get("b"):
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    elif node.attr.get("half_pixel_centers", {}).get("b"):
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    else:
        # TF1's default: source = dest * in/out, no half-pixel offset, clamped at the far edge. One axis at a
        # time, as slices and a blend: CenterNet in ONNX Runtime runs 1.7x faster than with an equal grid_sample.
        y = _legacy_resize_axis(_legacy_resize_axis(x, 2, size[0]), 3, size[1])
    return y.permute(0, 2, 3, 1)


def _legacy_resize_axis(x: torch.Tensor, axis: int, out: int) -> torch.Tensor:
    """Bilinear resampling of one axis to `out` samples at source = dest * in / out (TF1's ResizeBilinear)."""
    n = x.shape[axis]
    if out == 2 * n:  # each sample, then the mean of it and the next (the last repeated): slices, no gathers
        following = torch.cat([x.narrow(axis, 1, n - 1), x.narrow(axis, n - 1, 1)], dim=axis)
        both = torch.stack([x, (x + following) * 0.5], dim=axis + 1)
        return both.flatten(axis, axis + 1)
    source = torch.arange(out, device=x.device, dtype=torch.float32) * (n / out)
    low = source.floor().long().clamp(max=n - 1)
    high = (low + 1).clamp(max=n - 1)
    shape = [1] * x.dim()
    shape[axis] = out
    weight = (source - low).view(shape)
    a, b = x.index_select(axis, low), x.index_select(axis, high)
    return a + (b - a) * weight


def _strided_slice(node: Node, get) -> torch.Tensor:
    x = get(node.inputs[0])
    begin, end, strides = (get(i).tolist() for i in node.inputs[1:4])
    masks = {k: int(node.attr.get(k, {}).get("i", 0)) for k in ("begin_mask", "end_mask", "shrink_axis_mask")}
    if int(node.attr.get("ellipsis_mask", {}).get("i", 0)) or int(node.attr.get("new_axis_mask", {}).get("i", 0)):
        raise GraphModelError(f"{node.name}: ellipsis/new-axis slices are not supported")
    index = []
    for axis, (b, e, s) in enumerate(zip(begin, end, strides, strict=True)):
        if masks["shrink_axis_mask"] >> axis & 1:
            index.append(b)
            continue
        index.append(
            slice(None if masks["begin_mask"] >> axis & 1 else b, None if masks["end_mask"] >> axis & 1 else e, s)
        )
    return x[tuple(index)]


def _split_v(node: Node, get) -> tuple[torch.Tensor, ...]:
    x = get(node.inputs[0])
    sizes = [int(v) for v in get(node.inputs[1]).tolist()]
    axis = int(get(node.inputs[2]))
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    return tuple(torch.split(x, sizes, dim=axis))


def _sparse_to_dense(node: Node, get) -> torch.Tensor:
    indices, shape, values, default = (get(i) for i in node.inputs)
    out = torch.full([int(s) for s in shape.reshape(-1).tolist()], default.item(), dtype=values.dtype)
    if indices.numel():
        idx = indices.reshape(-1, out.dim()).long()
        out[tuple(idx.t())] = values.to(out.dtype) if values.dim() else values.item()
    return out


def _pad(node: Node, get) -> torch.Tensor:
    x = get(node.inputs[0])
    pads = get(node.inputs[1]).tolist()
    value = float(get(node.inputs[2])) if len(node.inputs) > 2 else 0.0
    flat = [p for before_after in reversed(pads) for p in before_after]
    return F.pad(x, flat, value=value)


def _cast(node: Node, get) -> torch.Tensor:
    target = node.attr["DstT"]["type"]
    dtype = {"DT_FLOAT": torch.float32, "DT_INT32": torch.int32, "DT_INT64": torch.int64, "DT_BOOL": torch.bool}
    return get(node.inputs[0]).to(dtype[target])


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> OpFn:
    def op(model: _Run, node: Node, get) -> torch.Tensor:
        a, b = get(node.inputs[0]), get(node.inputs[1])
        if a.dtype != b.dtype and a.is_floating_point() != b.is_floating_point():
            b = b.to(a.dtype)
        return fn(a, b)

    return op


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> OpFn:
    return lambda model, node, get: fn(get(node.inputs[0]))


_OPS: dict[str, OpFn] = {
    "Placeholder": lambda model, node, get: torch.empty(0),
    "Identity": _unary(lambda x: x),
    "Conv2D": lambda model, node, get: _conv(model, node, get, depthwise=False),
    "_FusedConv2D": lambda model, node, get: _conv(model, node, get, depthwise=False),
    "DepthwiseConv2dNative": lambda model, node, get: _conv(model, node, get, depthwise=True),
    "FusedDepthwiseConv2dNative": lambda model, node, get: _conv(model, node, get, depthwise=True),
    "MaxPool": lambda model, node, get: _pool(node, get),
    "ResizeBilinear": lambda model, node, get: _resize(model, node, get),
    "Add": _binary(torch.add),
    "AddV2": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "FloorDiv": _binary(torch.floor_divide),
    "FloorMod": _binary(torch.remainder),
    "Equal": _binary(torch.eq),
    "Relu": _unary(F.relu),
    "Relu6": _unary(F.relu6),
    "Sigmoid": _unary(torch.sigmoid),
    "LeakyRelu": lambda model, node, get: F.leaky_relu(get(node.inputs[0]), node.attr.get("alpha", {}).get("f", 0.2)),
    "Mean": lambda model, node, get: get(node.inputs[0]).mean(
        dim=[int(a) for a in get(node.inputs[1]).reshape(-1).tolist()],
        keepdim=bool(node.attr.get("keep_dims", {}).get("b")),
    ),
    "ConcatV2": lambda model, node, get: torch.cat([get(i) for i in node.inputs[:-1]], dim=int(get(node.inputs[-1]))),
    "Reshape": lambda model, node, get: get(node.inputs[0]).reshape(
        [int(s) for s in get(node.inputs[1]).reshape(-1).tolist()]
    ),
    "Transpose": lambda model, node, get: get(node.inputs[0]).permute([int(p) for p in get(node.inputs[1]).tolist()]),
    "ExpandDims": lambda model, node, get: get(node.inputs[0]).unsqueeze(int(get(node.inputs[1]))),
    "Cast": lambda model, node, get: _cast(node, get),
    "StridedSlice": lambda model, node, get: _strided_slice(node, get),
    "SplitV": lambda model, node, get: _split_v(node, get),
    "SparseToDense": lambda model, node, get: _sparse_to_dense(node, get),
    "Pad": lambda model, node, get: _pad(node, get),
    "PadV2": lambda model, node, get: _pad(node, get),
    "TopKV2": lambda model, node, get: tuple(
        torch.topk(get(node.inputs[0]), int(get(node.inputs[1])), dim=-1, sorted=True)
    ),
    "GatherV2": lambda model, node, get: torch.index_select(
        get(node.inputs[0]), int(get(node.inputs[2])), get(node.inputs[1]).reshape(-1).long()
    ).reshape(
        *get(node.inputs[0]).shape[: int(get(node.inputs[2]))],
        *get(node.inputs[1]).shape,
        *get(node.inputs[0]).shape[int(get(node.inputs[2])) + 1 :],
    ),
}
