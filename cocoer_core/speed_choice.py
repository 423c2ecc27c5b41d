"""`runtime: auto`: the faster of two correct runtimes, timed once per machine and remembered beside the export.

An export is only kept when it matched PyTorch (each exporter checks it), so
both runtimes give the same results; which one is faster depends on the CPU,
the thread count and the library versions (ONNX Runtime is 2-8x faster on the
CPUs measured so far, but a GPU build or a busy machine can turn that around).
So `auto` times each on the model's real input sizes (one warm-up call, then
the best of a few) the first time it meets a machine, and stores the figures
in the export's JSON sidecar under "speed", keyed by the machine; later runs
read them. A sidecar that cannot be written (a read-only folder) only means
the timing is done again next time.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from cocoer_core.sidecar import read_sidecar, write_sidecar

logger = logging.getLogger(__name__)

SPEED_KEY = "speed"


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(device: str = "cpu") -> str:
    """What the timings depend on: the processor (or GPU), threads and library versions."""
    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "none"
    where = torch.cuda.get_device_name() if device.startswith("cuda") else f"{cpu_name()} x{torch.get_num_threads()}"
    return f"{where}; torch {torch.__version__}; onnxruntime {ort}"


def best_ms(call: Callable[[], object], repeats: int) -> float:
    """One warm-up call, then the fastest of `repeats` (the least disturbed by other processes)."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1e3 * min(times)


def recorded(sidecar: Path, key: str, names: tuple[str, ...]) -> dict[str, float] | None:
    """The timings stored for this machine, when there are some for every runtime."""
    speed = read_sidecar(sidecar).get(SPEED_KEY)
    entry = speed.get(key) if isinstance(speed, dict) else None
    if not isinstance(entry, dict) or set(entry) != set(names):
        return None
    if not all(isinstance(v, int | float) and v > 0 for v in entry.values()):
        return None
    return {name: float(entry[name]) for name in names}


def record(sidecar: Path, key: str, timings: Mapping[str, float]) -> None:
    """Add this machine's timings to the sidecar."""
    data = read_sidecar(sidecar)
    speed = data.get(SPEED_KEY)
    speed = speed if isinstance(speed, dict) else {}
    data[SPEED_KEY] = {**speed, key: {name: round(ms, 3) for name, ms in timings.items()}}
    try:
        write_sidecar(sidecar, data)
    except OSError as exc:
        logger.debug("could not store the runtime timings in %s: %s", sidecar, exc)


def faster(
    sidecar: Path, what: str, calls: Mapping[str, Callable[[], object]], device: str = "cpu", repeats: int = 3
) -> tuple[str, dict[str, float]]:
    """The runtime whose call is fastest on this machine, timed now unless the sidecar has this machine's figures."""
    names = tuple(calls)
    key = machine_key(device)
    timings = recorded(sidecar, key, names)
    if timings is None:
        logger.info("%s runtime auto: timing %s once on this machine", what, " and ".join(names))
        timings = {name: best_ms(call, repeats) for name, call in calls.items()}
        record(sidecar, key, timings)
    return min(names, key=lambda name: timings[name]), timings
