"""CocoER core speed: one batched call per frame against the official-style per-person loop.

    python bench/core_speed.py [--persons 1 4 8 16] [--device cpu|cuda] [--precision fp32|fp16|bf16]

Both paths use the same weights (the golden-A fill rule: the official GWT.pth
cannot be downloaded here) in the same run, on a real photo with N person
boxes. The baseline is `cocoer_core.reference`: persons one at a time, the
context recomputed for each, coordination by autograd SGD steps (two full
backward passes per level), as the release does. Prints seconds per frame,
the speed ratio, peak memory and the largest output difference. On a GPU the
batched path can also run under fp16/bf16 autocast (CLIP in fp16); the
baseline then stays fp32, as the release's model.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402 - before av/torch users, see ENVIRONMENT.md

import torch  # noqa: E402

from cocoer_core.api import PersonRegion  # noqa: E402
from cocoer_core.reference import reference_forward  # noqa: E402
from cocoer_core.runtime import CocoERModel, prepare_frame  # noqa: E402
from cocoer_core.verify_golden import build_golden_models  # noqa: E402

DESIGN = ROOT.parent / "shared" / "design"
MEDIA = ROOT.parent / "shared" / "media"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-reference-above", type=int, default=64, help="don't run the slow loop for more persons")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_grad_enabled(False)

    spec = json.loads((DESIGN / "cocoer_golden_A.json").read_text())
    model, clip = build_golden_models(spec)
    reference_model, reference_clip = build_golden_models(spec)
    reference_model.to(device)
    reference_clip.to(device)
    runtime = CocoERModel(model, clip.visual, str(device), precision=args.precision)
    print(
        f"device={device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
        f"threads={torch.get_num_threads()}, batched precision={args.precision}, reference fp32"
    )
    print(
        f"{'persons':>7} {'batched s':>10} {'loop s':>9} {'speed-up':>9} {'batched MB':>11} {'loop MB':>9} {'max|diff| logits':>17}"
    )
    for count in args.persons:
        image, persons = persons_on_photo(count)
        batch = prepare_frame(image, persons, "pil")
        with PeakMemory(device) as batched_mem:
            batched_s, ours = timed(lambda b=batch: runtime.forward_frame(b), device, args.repeats)
        line = f"{count:>7} {batched_s:>10.3f}"
        if count > args.skip_reference_above:
            print(line + f" {'-':>9} {'-':>9} {batched_mem.peak_mb:>11.0f}")
            continue
        ctx = batch.context.to(device).expand(count, -1, -1, -1)
        inputs = (
            ctx,
            batch.body.to(device),
            batch.head.to(device),
            batch.coord_body.to(device),
            batch.coord_head.to(device),
        )

        def loop(inputs=inputs, ctx=ctx):  # type: ignore[no-untyped-def]
            features = reference_clip.encode_image(ctx)
            return reference_forward(reference_model, *inputs, features)

        with PeakMemory(device) as loop_mem:
            loop_s, ref = timed(loop, device, 1)
        diff = max(
            (getattr(ours, k).float() - getattr(ref, k).float()).abs().max().item()
            for k in ("final", "vi", "head", "body", "context")
        )
        print(
            line
            + f" {loop_s:>9.3f} {loop_s / batched_s:>8.1f}x {batched_mem.peak_mb:>11.0f} {loop_mem.peak_mb:>9.0f} {diff:>17.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
