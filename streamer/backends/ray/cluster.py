"""Joining a Ray cluster, or starting a local one, in bounded time and interruptibly.

`ray.init(address=...)` on an address where no cluster answers waits for
minutes (a closed port: ~40 s of retries; a port where something else
listens: indefinitely) and prints nothing useful. So a remote address is
first checked with a plain TCP connection (`ray.connect_timeout_s`), and the
join itself runs in a helper thread that the main thread waits on in short
steps: the wait ends with one error line after `ray.connect_timeout_s`, and
Ctrl+C ends it at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import ray

from streamer.config import AppConfig
from streamer.errors import UserError
from streamer.stages.pipeline import PipelineThread

logger = logging.getLogger(__name__)

#: The checkout the actors import from: the folder that holds the `streamer` package (never the package
#: itself: its `types.py` would shadow the standard library's and every worker would die at start).
ROOT = Path(__file__).resolve().parents[3]
#: What a cluster never needs of the checkout (the venv alone is gigabytes).
UPLOAD_EXCLUDES = [".venv/", ".git/", "recordings/", "checkpoints/", "outputs/", "*.mp4", "*.jsonl"]
#: Ray's default ports, when an address gives none.
DEFAULT_PORTS = {"ray": 10001, "": 6379}


def host_port(address: str) -> tuple[str, int] | None:
    """The (host, port) a cluster address points at; None for `auto` (Ray finds the local one itself)."""
    if address in ("auto", "local"):
        return None
    scheme, _, rest = address.rpartition("://")
    rest = rest.split("/", 1)[0]
    host, colon, port_text = rest.rpartition(":")
    if not colon:
        host, port_text = rest, ""
    host = host.strip("[]")
    try:
        port = int(port_text) if port_text else DEFAULT_PORTS.get(scheme, 6379)
    except ValueError:
        raise UserError(f"--address {address!r} is not HOST:PORT, ray://HOST:PORT or auto") from None
    if not host or not 0 < port < 65536:
        raise UserError(f"--address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    return host, port


def check_reachable(address: str, timeout_s: float) -> None:
    """One line when nothing listens at the address (before Ray spends minutes finding that out)."""
    target = host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout_s).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or type(exc).__name__
        raise UserError(
            f"cannot reach a Ray cluster at {address} ({reason}); is `ray start --head` running there?"
        ) from None


@contextlib.contextmanager
def _stderr_to_log() -> Iterator[None]:
    """While joining, Ray's C++ core writes a warning a second to fd 2 when the address is not a cluster:
    keep those out of the terminal (they go to the debug log), so the outcome is one line of ours."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                logger.debug("ray: %s", line)


def _init_bounded(kwargs: dict[str, Any], what: str, timeout_s: float) -> None:
    """`ray.init(**kwargs)` in a helper thread; one line when it fails or takes longer than `timeout_s`."""
    outcome: dict[str, BaseException | None] = {}

    def join() -> None:
        try:
            ray.init(**kwargs)
            outcome["error"] = None
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    # A PipelineThread: if it is still stuck inside Ray at exit, the CLI leaves without waiting for it.
    thread = PipelineThread(target=join, name="ray-init", daemon=True)
    with _stderr_to_log():
        thread.start()
        deadline = time.monotonic() + timeout_s
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.1)  # short steps: Ctrl+C reaches the main thread at once
    if thread.is_alive():
        raise UserError(f"{what} did not answer in {timeout_s:.0f} s (is it a Ray cluster, and the same Ray version?)")
    error = outcome.get("error")
    if error is not None:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot join {what} ({first})") from error


def start_cluster(address: str, sources: int, config: AppConfig) -> bool:
    """Connect to `address`, or start a local cluster; True when we started it (and so shut it down)."""
    if ray.is_initialized():
        return False
    timeout_s = config.ray.connect_timeout_s
    if address:
        check_reachable(address, timeout_s)
        _init_bounded(
            {
                "address": address,
                "runtime_env": {"working_dir": str(ROOT), "excludes": UPLOAD_EXCLUDES},
                "log_to_driver": False,
                "logging_level": logging.ERROR,
            },
            f"the Ray cluster at {address}",
            timeout_s,
        )
        return True
    # A local cluster: enough logical CPUs to place every actor, whatever this machine has. Started in
    # this thread: Ctrl+C interrupts it, and the caller shuts down whatever part of it had started.
    needed = sources * config.ray.source_cpus + 1
    ray.init(
        num_cpus=max(os.cpu_count() or 1, int(np.ceil(needed))),
        include_dashboard=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        },
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    return True
