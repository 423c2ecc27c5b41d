"""An ONNX Runtime session for an exported file: execution providers by device, one line when it can't open.

Imports nothing heavy (the face baseline's start-up path uses it; CocoER's
model code pulls torchvision in).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cocoer_core.errors import CheckpointError, first_line

#: Preferred first; only those the installed onnxruntime offers are asked for.
PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def runtime_label(providers: Sequence[str]) -> str:
    """What runs a session, for the log and run.json: "onnxruntime CPU", "onnxruntime Tensorrt", ..."""
    return f"onnxruntime {providers[0].removesuffix('ExecutionProvider')}"


def provider_choice(available: Sequence[str], device: str, precision: str, cache: Path) -> list[Any]:
    """The execution providers to ask for, best first: on a GPU TensorRT (its engine built once and cached in
    `cache`, fp16 unless fp32 is asked for), then CUDA; the CPU always, last."""
    wanted: list[Any] = []
    for name in PROVIDERS:
        if name not in available or (device == "cpu" and name != "CPUExecutionProvider"):
            continue
        if name == "TensorrtExecutionProvider":
            options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                       "trt_fp16_enable": precision != "fp32"}  # fmt: skip
            wanted.append((name, options))
        else:
            wanted.append(name)
    return wanted


def open_session(path: Path, what: str, device: str = "cpu", threads: int = 0, precision: str = "fp32") -> Any:
    """An ONNX Runtime session over `path`, or a one-line `CheckpointError` naming the file."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise CheckpointError("onnxruntime is not installed (pip install onnxruntime)") from None
    if not path.is_file():
        raise CheckpointError(f"exported {what} {path} not found (python -m cocoer_core.export makes it)")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # No busy-waiting between calls: the pipeline's other stages need the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = provider_choice(ort.get_available_providers(), device, precision, path.parent / "tensorrt")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for damaged files
        raise CheckpointError(f"{path} is not a readable ONNX model ({first_line(exc)})") from None
