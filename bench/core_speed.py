"""CocoER core speed per runtime: one batched call per frame against the official-style per-person loop.

    python bench/core_speed.py [--persons 1 8 32] [--device cpu|cuda] [--runtimes torch-fp32 torch-bf16 onnxruntime]

Every path uses the same weights (the golden-A fill rule: the official GWT.pth
cannot be downloaded here) in the same run, on a real photo with N person
boxes. The baseline is `cocoer_core.reference`: persons one at a time, the
context recomputed for each, coordination by autograd SGD steps (two full
backward passes per level), as the release does. The batched runtimes:
PyTorch fp32; PyTorch under bf16 autocast (a CPU with native bf16) or fp16
(CUDA, CLIP in fp16 as the release); the graph `cocoer_core.export` writes, in
ONNX Runtime (exported once here, ~1 min). Per runtime: seconds per frame,
speed against the loop, peak memory, and its accuracy against PyTorch fp32
(largest probability difference, exclusion orders changed). Threads as the
CLI sets them (OMP_WAIT_POLICY=PASSIVE before torch loads).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import DESIGN, MEDIA  # first: the CLI's thread settings before torch loads, cv2 before av

# isort: split
import cv2

import torch

from cocoer_core.api import PersonRegion
from cocoer_core.reference import reference_forward
from cocoer_core.runtime import CocoERModel, cpu_has_bf16, prepare_frame
from cocoer_core.verify_golden import build_golden_models


class PeakMemory:
    """Peak resident memory (CPU, sampled from /proc) or peak CUDA allocation during a block."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def _rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return 0.0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss_mb())
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            self._thread.join()


def persons_on_photo(count: int) -> tuple[object, list[PersonRegion]]:
    """A real group photo with `count` person boxes (its faces, repeated if needed)."""
    from streamer.detectors.association import body_from_face
    from streamer.detectors.faces import MtcnnFaceDetector

    image = cv2.imread(str(MEDIA / "group_cheering_crowd.jpg"))
    h, w = image.shape[:2]
    faces = MtcnnFaceDetector(max_side=0).detect(image)
    persons = [PersonRegion(body_from_face(f.box, w, h).as_tuple(), f.box.as_tuple()) for f in faces]
    return image, [persons[i % len(persons)] for i in range(count)]


def timed(fn, device: torch.device, repeats: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    result = fn()  # warm-up (allocations, cuDNN autotune)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats, result


def build_runtimes(spec: dict, device: torch.device, names: list[str], workdir: Path) -> dict[str, CocoERModel]:
    """Each asked-for runtime that this machine has, on its own copy of the golden model."""
    out: dict[str, CocoERModel] = {}
    for name in names:
        model, clip = build_golden_models(spec)
        if name == "torch-fp32":
            out[name] = CocoERModel(model, clip.visual, str(device), precision="fp32")
        elif name == "torch-bf16":
            low = "fp16" if device.type == "cuda" else "bf16"
            if device.type == "cpu" and not cpu_has_bf16():
                print("torch-bf16: this CPU has no native bf16, skipped")
                continue
            out[f"torch-{low}"] = CocoERModel(model, clip.visual, str(device), precision=low)
        elif name == "onnxruntime":
            from cocoer_core.export import export_onnx
            from cocoer_core.labels import EMOTIC_LABELS
            from cocoer_core.onnx_core import OnnxCore

            path = workdir / "golden.onnx"
            started = time.perf_counter()
            export_onnx(model, clip.visual, path, EMOTIC_LABELS, {"golden": spec["seed_tag"]})
            core = OnnxCore(path, str(device))
            print(f"onnxruntime: exported in {time.perf_counter() - started:.0f} s, providers {core.providers}")
            out[name] = CocoERModel(model, clip.visual, str(device), onnx=core)
    return out


def probabilities(out: object) -> torch.Tensor:
    return torch.cat(
        [torch.sigmoid(getattr(out, k).float().cpu()) for k in ("final", "vi", "head", "body", "context")], 1
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runtimes", nargs="+", default=["torch-fp32", "torch-bf16", "onnxruntime"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-reference-above", type=int, default=8, help="don't run the slow loop for more persons")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_grad_enabled(False)

    spec = json.loads((DESIGN / "cocoer_golden_A.json").read_text())
    reference_model, reference_clip = build_golden_models(spec)
    reference_model.to(device)
    reference_clip.to(device)
    with tempfile.TemporaryDirectory(prefix="core-speed-") as workdir:
        runtimes = build_runtimes(spec, device, args.runtimes, Path(workdir))
        print(
            f"device={device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
            f"threads={torch.get_num_threads()}, reference fp32 per person"
        )
        print(
            f"{'persons':>7} {'runtime':<18} {'s/frame':>8} {'vs loop':>8} {'vs fp32':>8} {'peak MB':>8} "
            f"{'max|dp| vs fp32':>15} {'orders changed':>14}"
        )
        for count in args.persons:
            image, persons = persons_on_photo(count)
            batch = prepare_frame(image, persons, "pil")
            loop_s = None
            if count <= args.skip_reference_above:
                ctx = batch.context.to(device).expand(count, -1, -1, -1)
                inputs = (ctx, batch.body.to(device), batch.head.to(device),
                          batch.coord_body.to(device), batch.coord_head.to(device))  # fmt: skip

                def loop(inputs=inputs, ctx=ctx):  # type: ignore[no-untyped-def]
                    return reference_forward(reference_model, *inputs, reference_clip.encode_image(ctx))

                with PeakMemory(device) as loop_mem:
                    loop_s, _ = timed(loop, device, 1)
                print(f"{count:>7} {'official loop':<18} {loop_s:>8.3f} {'1.00x':>8} {'':>8} {loop_mem.peak_mb:>8.0f}")
            base_s, base = None, None
            for name, runtime in runtimes.items():
                with PeakMemory(device) as mem:
                    seconds, out = timed(lambda b=batch, r=runtime: r.forward_frame(b), device, args.repeats)
                if base is None:
                    base_s, base = seconds, out
                dp = (probabilities(out) - probabilities(base)).abs().max().item()
                changed = int((out.exclusion.cpu() != base.exclusion.cpu()).any(dim=1).sum())
                vs_loop = f"{loop_s / seconds:.2f}x" if loop_s else "-"
                vs_base = f"{base_s / seconds:.2f}x" if base_s else "-"
                print(
                    f"{count:>7} {name:<18} {seconds:>8.3f} {vs_loop:>8} {vs_base:>8} {mem.peak_mb:>8.0f} "
                    f"{dp:>15.2e} {changed:>7}/{count}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
