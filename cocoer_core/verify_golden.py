"""Check this re-implementation against a golden forward pass of the official model.

    python -m cocoer_core.verify_golden FILE.json [--media DIR]

Builds CocoER and CLIP RN50 with the deterministic fill rule of the spec's
§15 (seed tag, optional `options.inside_lr` and `fill_scale`), runs the JSON's
inputs on CPU in float32, prints the largest absolute difference per output
(every logit and the level losses) and whether the exclusion sequences match.
Exits 0 only when every difference is within the tolerance (1e-4) and every
sequence matches.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from cocoer_core.clip_rn50 import CLIPRN50
from cocoer_core.command_line import exit_with
from cocoer_core.config import CocoERConfig
from cocoer_core.errors import CheckpointError
from cocoer_core.golden import fill_module, golden_inputs
from cocoer_core.model import CocoER, CocoEROutput
from cocoer_core.postprocess import exclusion_names

TOLERANCE = 1e-4
DEFAULT_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def build_golden_models(spec: dict[str, Any], fold_vi: bool = False) -> tuple[CocoER, CLIPRN50]:
    options = spec.get("options", {})
    fill_scale = spec.get("fill_scale", {})
    model = CocoER(CocoERConfig(inside_lr=float(options.get("inside_lr", 1.0))))
    fill_module(model, spec["seed_tag"], "", fill_scale)
    clip = CLIPRN50()
    fill_module(clip, spec["seed_tag"], "clip.", fill_scale)
    if fold_vi:
        model.fold_vi()
    return model.eval(), clip.eval()


@torch.no_grad()
def run_golden(
    spec: dict[str, Any], media: Path, fold_vi: bool = False
) -> tuple[CocoEROutput, dict[str, torch.Tensor]]:
    model, clip = build_golden_models(spec, fold_vi)
    inputs = golden_inputs(spec, media)
    clip_features = clip.encode_image(inputs["context"])
    out = model(
        inputs["context"], inputs["body"], inputs["head"], inputs["coord_body"], inputs["coord_head"], clip_features
    )
    return out, inputs


@torch.no_grad()
def run_golden_onnx(spec: dict[str, Any], media: Path, workdir: Path) -> tuple[CocoEROutput, dict[str, torch.Tensor]]:
    """The golden model exported as `cocoer_core.export` exports (and checks) it, run in ONNX Runtime."""
    from cocoer_core.export import export_onnx
    from cocoer_core.labels import EMOTIC_LABELS
    from cocoer_core.onnx_core import OnnxCore

    model, clip = build_golden_models(spec, fold_vi=True)
    path = workdir / "golden.onnx"
    export_onnx(model, clip.visual, path, EMOTIC_LABELS, {"golden": spec["seed_tag"]})
    del model, clip
    inputs = golden_inputs(spec, media)
    index = torch.arange(inputs["body"].shape[0])
    core = OnnxCore(path)
    out = core.output(
        inputs["context"], inputs["body"], inputs["head"], inputs["coord_body"], inputs["coord_head"], index
    )
    return out, inputs


def compare(spec: dict[str, Any], out: CocoEROutput, inputs: dict[str, torch.Tensor]) -> tuple[list[str], bool]:
    """Report lines and whether everything is within tolerance."""
    lines, ok = [], True
    for name, key in (("context", "context"), ("body", "body"), ("head", "head")):
        ours = float(inputs[key].sum())
        theirs = spec["input_tensor_checksums"][name]
        lines.append(f"input checksum {name:<8} ours={ours:.4f} golden={theirs:.4f}")
    boxes_ok = (
        inputs["coord_body"].tolist() == spec["body_xyxy_224"]
        and inputs["coord_head"].tolist() == spec["head_xyxy_224"]
    )
    ok &= boxes_ok
    lines.append(f"boxes in the 224 frame: {'match' if boxes_ok else 'DIFFER'}")
    outputs = {"pred": out.final, "VI": out.vi, "head": out.head, "body": out.body, "ctx": out.context}
    for name, tensor in outputs.items():
        diff = (tensor - torch.tensor(spec["logits"][name])).abs().max().item()
        ok &= diff <= TOLERANCE
        lines.append(f"logits.{name:<5} max|diff| = {diff:.2e} {'ok' if diff <= TOLERANCE else 'FAIL'}")
    for column, name in enumerate(("head", "body", "ctx")):
        diff = (out.level_losses[:, column] - torch.tensor(spec["level_losses"][name])).abs().max().item()
        ok &= diff <= TOLERANCE
        lines.append(f"level_losses.{name:<4} max|diff| = {diff:.2e} {'ok' if diff <= TOLERANCE else 'FAIL'}")
    ours_seq = [exclusion_names(row) for row in out.exclusion.tolist()]
    same = ours_seq == spec["emo_process"]
    ok &= same
    lines.append(f"exclusion sequences: {'match' if same else 'DIFFER'} {ours_seq}")
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cocoer_core.verify_golden", description=__doc__.split("\n\n")[0])
    parser.add_argument("golden", type=Path, help="a cocoer_golden_*.json file")
    parser.add_argument(
        "--media", type=Path, default=DEFAULT_MEDIA, help=f"folder with the JSON's image (default {DEFAULT_MEDIA})"
    )
    parser.add_argument("--fold-vi", action="store_true", help="use the folded VI_ffn.1 (must give the same result)")
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="onnxruntime: export the golden model as cocoer_core.export does and run that file",
    )
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.golden.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read golden file {args.golden}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.runtime == "onnxruntime":
            with tempfile.TemporaryDirectory(prefix="cocoer-golden-") as workdir:
                out, inputs = run_golden_onnx(spec, args.media, Path(workdir))
        else:
            out, inputs = run_golden(spec, args.media, args.fold_vi)
    except (FileNotFoundError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lines, ok = compare(spec, out, inputs)
    print("\n".join(lines))
    print("PASS" if ok else "FAIL", f"(tolerance {TOLERANCE:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    exit_with(main)
