"""Opening sources: several at once, Ctrl+C at once, and a source that does not answer said so (a
`SilentServer` on 127.0.0.1 plays the camera that does not answer)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import av
import pytest

from streamer.backends import assembly
from streamer.backends.assembly import open_sources
from streamer.config import SourceConfig
from streamer.shutdown import GracefulStop
from streamer.sources import Source, open_source, opened_here
from streamer.sources.entries import SourceEntry
from tests.conftest import ROOT, media_file
from tests.support.servers import SilentServer
from tests.test_cli import ENV, OFFLINE


def _open_fds_on(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


def test_sources_that_do_not_answer_open_together_and_say_so(silent_server: SilentServer, shared_media: Path) -> None:
    # Opened one after the other, each dead camera made every source after it wait out its open timeout.
    config = SourceConfig(open_timeout_s=2.0, read_timeout_s=2.0)
    urls = [f"rtsp://127.0.0.1:{silent_server.port}/a", f"http://127.0.0.1:{silent_server.port}/b.mp4",
            f"http://127.0.0.1:{silent_server.port}/c.m3u8"]  # fmt: skip
    clip = str(media_file(shared_media, "face_man_smiling_short.mp4"))
    opened, failed = open_sources([SourceEntry(spec, None, config) for spec in [*urls, clip]])
    try:
        assert [source.name for source in opened] == ["face_man_smiling_short"]
        assert [spec for spec, _ in failed] == urls, "reported in the order given"
        for _, error in failed:
            assert str(error).endswith("(no answer within 2 s; source.open_timeout_s waits longer)"), error
        assert silent_server.most_at_once >= 3, "the three were waited for at the same time"
    finally:
        for source in opened:
            source.source.close()


def test_no_more_sources_open_at_once_than_the_limit(
    silent_server: SilentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A folder of a thousand videos must not start a thousand opens (threads, file handles) at once.
    at_work, most, threads, lock = [0], [0], [0], threading.Lock()

    def counted(spec: str, config: SourceConfig) -> Source:
        with lock:
            at_work[0] += 1
            most[0] = max(most[0], at_work[0])
            threads[0] = max(threads[0], sum(t.name.startswith("open-") for t in threading.enumerate()))
        try:
            return opened_here(spec, config)
        finally:
            with lock:
                at_work[0] -= 1

    monkeypatch.setattr(assembly, "OPEN_AT_ONCE", 2)
    monkeypatch.setattr(assembly, "opened_here", counted)
    config = SourceConfig(open_timeout_s=1.0, read_timeout_s=1.0)
    urls = [f"rtsp://127.0.0.1:{silent_server.port}/{n}" for n in range(5)]
    opened, failed = open_sources([SourceEntry(url, None, config) for url in urls])
    assert opened == [] and [spec for spec, _ in failed] == urls
    assert most[0] == 2 and threads[0] == 2, "two opens at work, in two threads"


def test_ctrl_c_while_sources_open_ends_the_wait_and_closes_what_opened(
    silent_server: SilentServer, shared_media: Path
) -> None:
    clip = media_file(shared_media, "face_man_smiling_short.mp4")
    config = SourceConfig(open_timeout_s=60.0, read_timeout_s=60.0)
    entries = [
        SourceEntry(str(clip), None, config),
        SourceEntry(f"rtsp://127.0.0.1:{silent_server.port}/a", None, config),
    ]
    threading.Thread(
        target=lambda: (silent_server.accepted.wait(30), os.kill(os.getpid(), signal.SIGINT)), daemon=True
    ).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        open_sources(entries)
    assert time.monotonic() - started < 20, "not left to the 60 s open timeout"
    deadline = time.monotonic() + 10
    while _open_fds_on(clip) and time.monotonic() < deadline:
        time.sleep(0.1)  # the file's open may still be finishing in its own thread
    assert _open_fds_on(clip) == 0, "the file that had opened is closed again"


def test_ctrl_c_while_open_source_waits_reaches_the_caller(silent_server: SilentServer) -> None:
    # The Python API's own `open_source`, in this (the main) thread: the open used to go on to its timeout.
    config = SourceConfig(open_timeout_s=60.0, read_timeout_s=60.0)
    threading.Thread(
        target=lambda: (silent_server.accepted.wait(30), os.kill(os.getpid(), signal.SIGINT)), daemon=True
    ).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        open_source(f"http://127.0.0.1:{silent_server.port}/camera.mjpg", config)
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("kind", ["network", "fifo"])
def test_ctrl_c_while_a_source_opens_is_interrupted_at_once(
    silent_server: SilentServer, tmp_path: Path, kind: str
) -> None:
    # FFmpeg's open blocks in C; in the main thread Ctrl+C was dropped inside PyAV's callbacks and the run waited
    # out the open timeout, then said "Invalid data found" and exited 2 (a FIFO with no writer: "Interrupted
    # system call").
    if kind == "fifo":
        spec = tmp_path / "camera.ts"
        os.mkfifo(spec)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "run_stream.py"), "--source",
         str(spec) if kind == "fifo" else f"rtsp://127.0.0.1:{silent_server.port}/live",
         "--set", "source.open_timeout_s=60", "--model", "none", "--out", str(tmp_path / "out"), *OFFLINE],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        if kind == "fifo":
            writer = _writer_when_read(spec, process)  # the run is now reading: its open waits for data
        else:
            assert silent_server.accepted.wait(60), "the run never connected"
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        if kind == "fifo":
            os.close(writer)
    assert process.returncode == 130 and stderr.strip() == "interrupted", stderr
    assert time.monotonic() - sent < 10
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_fifo_is_waited_for_said_so_and_read_to_its_end(tmp_path: Path, shared_media: Path) -> None:
    # A FIFO has no open timeout: the run waits for its writer as long as it takes. It used to wait saying
    # nothing, as if it hung.
    fifo = tmp_path / "camera.ts"
    os.mkfifo(fifo)
    stream = _as_mpegts(media_file(shared_media, "face_expressive_liveportrait_d10.mp4"), frames=30)
    said = tmp_path / "stderr.txt"
    with said.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run_stream.py"), "--source", str(fifo), "--model", "none",
             "--out", str(tmp_path / "out"), *OFFLINE],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, text=True, env=ENV,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "is a FIFO: waiting for its writer" not in said.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, said.read_text()
            time.sleep(0.2)
        assert f"{fifo} is a FIFO: waiting for its writer's data (Ctrl+C stops)" in said.read_text()
        writer = _writer_when_read(fifo, process)
        os.set_blocking(writer, True)
        try:
            os.write(writer, stream)
        finally:
            os.close(writer)
        assert process.wait(timeout=120) == 0, said.read_text()
    finally:
        process.kill()
    records = (tmp_path / "out" / "camera.jsonl").read_text().splitlines()
    assert len(records) == 30, "every frame the writer sent"


def _as_mpegts(video: Path, frames: int) -> bytes:
    """The first `frames` frames of `video`'s stream, copied (not re-encoded) into MPEG-TS, as a camera's
    encoder writes it to a FIFO."""
    out = io.BytesIO()
    with av.open(str(video)) as source, av.open(out, "w", format="mpegts") as target:
        stream = source.streams.video[0]
        copied = target.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if packet.dts is None:
                continue
            if frames <= 0:
                break
            frames -= 1
            packet.stream = copied
            target.mux(packet)
    return out.getvalue()


def test_a_second_ctrl_c_while_the_first_ends_the_start_up_is_acknowledged_not_raised(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Ctrl+C now ends an open at once, so a second one could land while the first was on its way out (in the
    # CLI's "interrupted" line): a second KeyboardInterrupt, a traceback. Called as the signal would call it.
    stop = GracefulStop()
    with pytest.raises(KeyboardInterrupt):
        stop._handle(signal.SIGINT, None)
    try:
        stop._handle(signal.SIGINT, None)
        stop._handle(signal.SIGTERM, None)
    except KeyboardInterrupt:
        pytest.fail("a second signal raised KeyboardInterrupt again")
    assert capfd.readouterr().err.splitlines() == ["already stopping, please wait"] * 2
    assert stop.event.is_set(), "should the first be swallowed, the run stops once it is armed"


def _writer_when_read(fifo: Path, process: subprocess.Popen[str]) -> int:
    """The FIFO's write end, once the run has opened it to read (O_NONBLOCK: ENXIO until then)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the run never opened the FIFO: {process.communicate(timeout=30)[1]}")


def test_sources_opened_aside_give_the_frames_they_gave_before(shared_media: Path) -> None:
    # Opening aside changes nothing for a source that does answer: the same frames as before.
    clip = str(media_file(shared_media, "face_man_smiling_short.mp4"))
    config = replace(SourceConfig(), max_frames=5)
    opened, failed = open_sources([SourceEntry(clip, None, config), SourceEntry(clip, "again", config)])
    try:
        assert failed == [] and [source.name for source in opened] == ["face_man_smiling_short", "again"]
        first, second = (list(source.source.frames(threading.Event())) for source in opened)
        alone = list(open_source(clip, config).frames(threading.Event()))  # opened in this thread, as before
        assert len(first) == len(second) == len(alone) == 5
        for a, b, c in zip(first, second, alone, strict=True):
            assert (a.image == c.image).all() and (b.image == c.image).all() and a.pts_s == c.pts_s
    finally:
        for source in opened:
            source.source.close()
