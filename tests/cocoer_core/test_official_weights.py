"""`fetch_models --cocoer`: the official weights downloaded (through Drive's confirmation page), unpacked, checked.

The real Google Drive is out of reach here; a local HTTP server plays it (a warning page whose form leads to
the file, as Drive answers for large files), serving an archive in the official layout.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.serialization

from cocoer_core.checkpoint import read_checkpoint
from cocoer_core.errors import CheckpointError
from cocoer_core.official import fetch_official, unpack
from tests.conftest import ROOT
from tests.support.servers import Download, free_port

CONFIRM_PAGE = (
    '<html><body><form id="download-form" action="http://127.0.0.1:{port}/real" method="get">'
    '<input type="hidden" name="id" value="abc"><input type="hidden" name="confirm" value="t">'
    '<input type="hidden" name="uuid" value="u-1"></form></body></html>'
)


def _save_on_cuda1(obj: object, path: Path) -> None:
    """torch.save as on a machine whose tensors live on cuda:1 (the official w.pth's case)."""
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:1"  # type: ignore[assignment]
    try:
        torch.save(obj, path)
    finally:
        torch.serialization.location_tag = original


def test_a_checkpoint_saved_on_a_cuda_device_loads_on_the_cpu(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    _save_on_cuda1({"model": {"W.weight": torch.eye(4)}}, path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # what the official loading code does
    loaded = read_checkpoint(path)
    assert loaded["model"]["W.weight"].device.type == "cpu" and torch.equal(loaded["model"]["W.weight"], torch.eye(4))


def _fetch(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer.tools.fetch_models", "--cocoer", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "COCOER_WEIGHTS_URL": url},
    )  # fmt: skip


def test_offline_it_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    done = _fetch("--dir", str(tmp_path / "checkpoints"), url=f"http://127.0.0.1:{free_port()}/download")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot download the official CocoER weights" in done.stderr
    assert "drive.google.com" in done.stderr, "it says where to get them by hand"
    assert not (tmp_path / "checkpoints" / "GWT.pth").exists()


@pytest.fixture()
def drive(tmp_path: Path, checkpoint_dir: Path) -> Iterator[str]:
    """A Drive look-alike: /download answers with the warning page, /real with the zip of the official layout."""
    archive = tmp_path / "CocoER_weights.zip"
    w = tmp_path / "w.pth"
    _save_on_cuda1({"model": {"W.weight": torch.randn(1024, 1024)}}, w)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:
        zipped.write(checkpoint_dir / "GWT.pth", "checkpoints/GWT.pth")
        zipped.write(w, "checkpoints/VI_weights/w.pth")
        zipped.writestr("__MACOSX/checkpoints/._GWT.pth", b"resource fork")
    port = free_port()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/download"):
                body = CONFIRM_PAGE.format(port=port).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path.startswith("/real?") and "confirm=t" in self.path:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(archive.stat().st_size))
                self.end_headers()
                with archive.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        self.wfile.write(chunk)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None: ...

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/download"
    server.shutdown()


@pytest.mark.slow
@pytest.mark.integration
def test_the_official_download_is_unpacked_where_weights_looks_and_checked(drive: str, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    done = _fetch("--dir", str(folder), url=drive)
    assert done.returncode == 0, done.stderr
    assert "every key and shape" in done.stdout and "W.weight 1024x1024" in done.stdout
    assert (folder / "GWT.pth").is_file() and (folder / "VI_weights" / "w.pth").is_file()
    assert not any(p.name.endswith((".part", "download")) for p in folder.rglob("*")), "no leftovers"
    again = _fetch("--dir", str(folder), url=drive)
    assert again.returncode == 0 and "already there" in again.stdout


def test_a_damaged_download_is_one_line_and_leaves_nothing_behind(tmp_path: Path) -> None:
    # A download damaged on the way: the member's compressed bytes fail to inflate or their checksum. It
    # raised zipfile's or zlib's error (a traceback) and left GWT.pth.part in the checkpoints folder.
    payload = tmp_path / "GWT.pth"
    torch.save({"model": {"W.weight": torch.randn(256, 256)}}, payload)
    archive = tmp_path / "CocoER_weights.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(payload, "checkpoints/GWT.pth")
    data = bytearray(archive.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)  # inside the member's compressed bytes
    archive.write_bytes(bytes(data))
    folder = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError) as info:
        unpack(archive, folder)
    message = str(info.value)
    assert message.startswith("cannot unpack checkpoints/GWT.pth from the download (") and "\n" not in message
    assert "drive.google.com" in message, "it says where to get them by hand"
    assert list(folder.iterdir()) == []


def test_a_tar_download_cut_short_is_one_line_and_leaves_nothing_behind(tmp_path: Path) -> None:
    # The archive's index is read before anything is unpacked: a .tar.gz that ends early raised EOFError
    # (and a zip with a damaged directory BadZipFile) as a traceback from listing it.
    payload = tmp_path / "GWT.pth"
    torch.save({"model": {"W.weight": torch.randn(256, 256)}}, payload)
    archive = tmp_path / "CocoER_weights.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        tarred.add(payload, "checkpoints/GWT.pth")
        tarred.add(payload, "checkpoints/VI_weights/w.pth")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    folder = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError) as info:
        unpack(archive, folder)
    message = str(info.value)
    assert message.startswith("cannot ") and "(" in message and "\n" not in message, message
    assert "drive.google.com" in message and str(folder) in message
    assert not folder.exists() or list(folder.rglob("*")) == []


@pytest.fixture()
def stalling_drive() -> Iterator[str]:
    """A download that sends 1 MB of its archive, then nothing (the connection stays open)."""
    port = free_port()
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            self.wfile.write(bytes(1 << 20))
            self.wfile.flush()
            release.wait(60)

        def log_message(self, *args: object) -> None: ...

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/download"
    release.set()
    server.shutdown()


def test_a_download_killed_midway_is_cleared_by_the_next_fetch(stalling_drive: str, tmp_path: Path) -> None:
    # SIGKILL (or power loss) mid-download runs no cleanup: the part of the archive it had (up to 3 GB) stayed
    # in checkpoints/ for good, in a temporary folder of a random name.
    folder = tmp_path / "checkpoints"
    fetch = subprocess.Popen(
        [sys.executable, "-m", "streamer.tools.fetch_models", "--cocoer", "--dir", str(folder)],
        cwd=ROOT, env={**os.environ, "COCOER_WEIGHTS_URL": stalling_drive},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        left.stat().st_size >= 1 << 20 for left in folder.glob(f".download-{fetch.pid}-*/download")
    ):
        time.sleep(0.1)
    (left,) = folder.glob(f".download-{fetch.pid}-*/download")
    fetch.kill()
    fetch.wait(timeout=30)
    assert left.stat().st_size >= 1 << 20, "the killed download left its part behind"
    other = folder / f".download-{os.getpid()}"  # a download still running (this process)
    other.mkdir()
    an_hour_ago = time.time() - 3600
    for path in (left, left.parent):
        os.utime(path, (an_hour_ago, an_hour_ago))
    done = _fetch("--dir", str(folder), url=f"http://127.0.0.1:{free_port()}/download")  # offline this time
    assert done.returncode == 2 and "cannot download" in done.stderr
    assert sorted(path.name for path in folder.iterdir()) == [other.name]


def test_a_download_cut_short_is_one_line_and_leaves_nothing(download_server, tmp_path: Path) -> None:
    # Streamed with read(n), a connection closed early looked like the end of the file: the 1 MB that came was
    # taken for a bare checkpoint and kept as GWT.pth, which the check then refused (and every later fetch
    # found "already there").
    url = download_server(Download(os.urandom(3 << 20), cut_after=1 << 20)) + "/download"
    folder = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError) as info:
        fetch_official(folder, url)
    message = str(info.value)
    assert message.startswith("cannot download the official CocoER weights (the connection ended after 1.0 MB of")
    assert "\n" not in message and "drive.google.com" in message
    assert list(folder.iterdir()) == []


def test_a_download_that_is_not_the_weights_is_removed_not_kept(download_server, tmp_path: Path) -> None:
    bare = tmp_path / "other.pth"
    torch.save({"model": {"fc.weight": torch.randn(8, 8)}}, bare)  # a readable checkpoint of another model
    served = Download(bare.read_bytes())
    url = download_server(served) + "/download"
    folder = tmp_path / "checkpoints"
    for attempt in (1, 2):
        with pytest.raises(CheckpointError) as info:
            fetch_official(folder, url)
        assert "not the official weights, removed it" in str(info.value) and "\n" not in str(info.value)
        assert list(folder.iterdir()) == [] and served.requests == attempt, "fetched again, not 'already there'"
