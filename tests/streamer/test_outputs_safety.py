"""Outputs under faults: a full disk, a crash, two runs at once, a stop request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.errors import OutputError
from streamer.outputs.claim import claim_outputs
from streamer.outputs.records import JsonlOutput
from streamer.outputs.video import Mp4Writer
from streamer.privacy.retention import LOCK, MANIFEST
from tests.conftest import ROOT, media_file


def _decoded(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_full_disk_is_an_output_error_naming_the_file() -> None:
    jsonl = JsonlOutput(Path("/dev/full"))
    with pytest.raises(OutputError, match=r"cannot write /dev/full \(No space left on device\)"):
        jsonl.write_line({"frame": 0})
    jsonl.close()  # and closing afterwards is fine
    video = Mp4Writer(Path("/dev/full"), Fraction(1, 25), 25.0)
    with pytest.raises(OutputError, match="/dev/full"):
        for i in range(200):  # the encoder and muxer buffer a little before the first write reaches the disk
            video.write(np.zeros((64, 64, 3), np.uint8), i / 25)
    with pytest.raises(OutputError, match="/dev/full"):
        video.write(np.zeros((64, 64, 3), np.uint8), 9.0)
    video.close()


def test_a_jsonl_line_that_hits_the_size_limit_is_cut_back(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE) as a stand-in for a disk filling up mid-line."""
    out = tmp_path / "x.jsonl"
    script = f"""
import resource, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from streamer.errors import OutputError
from streamer.outputs.records import JsonlOutput
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
sink = JsonlOutput(Path({str(out)!r}))
try:
    for i in range(100):
        sink.write_line({{"frame": i, "pad": "x" * 40}})
except OutputError as exc:
    print("lines", sink.lines, exc)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "File too large" in done.stdout, done.stdout + done.stderr
    written = int(done.stdout.split()[1])
    lines = out.read_text().splitlines()
    assert len(lines) == written and [json.loads(line)["frame"] for line in lines] == list(range(written))
    assert out.read_bytes().endswith(b"\n"), "no half line at the end"


def test_live_keyframes_follow_the_real_write_rate(tmp_path: Path, shared_media: Path) -> None:
    """A camera that claims 25 fps but is written at ~5 fps: a crash still loses only ~2 s (it lost 7 s)."""
    out = tmp_path / "slow.mp4"
    script = f"""
import os, sys, threading, time
sys.path.insert(0, {str(ROOT)!r})
import cv2, av
from fractions import Fraction
from pathlib import Path
from streamer.config import SourceConfig
from streamer.outputs.video import Mp4Writer
from streamer.privacy.retention import LOCK, MANIFEST
from streamer.sources import open_source
source = open_source({str(media_file(shared_media, "face_man_smiling_short.mp4"))!r}, SourceConfig())
sink = Mp4Writer(Path({str(out)!r}), Fraction(1, 90000), 25.0, fragment_s=2.0)
started = time.monotonic()
for count, frame in enumerate(source.frames(threading.Event()), start=1):
    sink.write(frame.image, time.monotonic() - started)
    time.sleep(0.2)
    if count == 25:
        break
os._exit(1)  # a crash after 25 frames in ~5 s
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    # At ~5 fps, 2 s is ~10 frames: the nominal 25 fps GOP (50 frames) would have lost all 25.
    assert _decoded(out) >= 25 - 13


def test_a_file_recording_survives_sigkill(tmp_path: Path, shared_media: Path) -> None:
    """File mode writes crash-safe MP4s too: after SIGKILL everything but the last ~2 s plays."""
    out = tmp_path / "file.mp4"
    source_path = media_file(shared_media, "face_expressive_liveportrait_d12.mp4")
    script = f"""
import sys, threading, time
sys.path.insert(0, {str(ROOT)!r})
import cv2, av
from pathlib import Path
from streamer.config import SourceConfig
from streamer.outputs.video import Mp4Writer
from streamer.privacy.retention import LOCK, MANIFEST
from streamer.sources import open_source
source = open_source({str(source_path)!r}, SourceConfig())
sink = Mp4Writer(Path({str(out)!r}), source.info.time_base, source.info.fps)
for count, frame in enumerate(source.frames(threading.Event()), start=1):
    sink.write(frame.image, frame.pts_s)
    print(count, flush=True)
    time.sleep(0.05)
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    written = 0
    for line in process.stdout:
        written = int(line)
        if written == 120:
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # 25 fps media written at ~18 fps: a fragment at least every 2 s of video (50 frames) and of wall time.
    assert _decoded(out) >= written - 52


def test_a_second_run_on_the_same_outputs_is_refused_while_the_first_writes(tmp_path: Path) -> None:
    first = claim_outputs(tmp_path, "clip", unique=False, existing=["{stem}.jsonl"])
    with pytest.raises(OutputError, match="another run is writing"):
        claim_outputs(tmp_path, "clip", unique=False, existing=["{stem}.jsonl"])
    first.release()
    again = claim_outputs(tmp_path, "clip", unique=False, existing=["{stem}.jsonl"])
    again.release()
    assert not list(tmp_path.iterdir()), "the lock file goes away with the claim"


def test_live_runs_take_the_next_free_name(tmp_path: Path) -> None:
    (tmp_path / "cam_20261201-101500.jsonl").write_text("")
    held = claim_outputs(tmp_path, "cam_20261201-101500-2", unique=True, existing=["{stem}.jsonl"])
    claim = claim_outputs(tmp_path, "cam_20261201-101500", unique=True, existing=["{stem}.jsonl"])
    assert claim.stem == "cam_20261201-101500-3", "-1 has files, -2 is being written"
    claim.release()
    held.release()


def test_a_killed_run_leaves_no_stale_claim(tmp_path: Path) -> None:
    script = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from streamer.outputs.claim import claim_outputs
claim_outputs(Path({str(tmp_path)!r}), "clip", unique=False, existing=[])
print("held", flush=True)
time.sleep(60)
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    with pytest.raises(OutputError):
        claim_outputs(tmp_path, "clip", unique=False, existing=[])
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    claim_outputs(tmp_path, "clip", unique=False, existing=[]).release()


def test_run_json_brought_up_to_date_on_a_full_disk_keeps_the_whole_old_file(tmp_path: Path) -> None:
    """At the run's end run.json's runtimes are rewritten: a disk full by then (RLIMIT_FSIZE standing in) leaves
    the file written at the start, whole, one warning, and no partial copy beside it."""
    script = f"""
import logging, resource, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from streamer.config import load_config
from streamer.privacy.declaration import declare_runtimes, write_declaration
logging.basicConfig(format="%(levelname)s %(message)s")
out = Path({str(tmp_path)!r})
write_declaration(out, load_config(None, []), {{"faces": "mtcnn"}}, ["cam"], {{"faces": "torch"}})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))
declare_runtimes(out, {{"faces": "torch", "people": "onnxruntime, torch at " + "640x480, " * 200}})
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run.json").read_text())["runtimes"] == {"faces": "torch"}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in (MANIFEST, LOCK)) == ["run.json"]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "File too large" in warnings[0] and "run.json" in warnings[0], done.stderr


def test_files_rewritten_whole_on_a_full_disk_keep_their_last_whole_copy(tmp_path: Path) -> None:
    """metrics.json, a JSON output and the retention manifest are replaced whole: a disk full (RLIMIT_FSIZE
    standing in) when they are rewritten leaves each as it was and no partial copy beside it."""
    script = f"""
import resource, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from streamer.backends.monitor import RunMonitor
from streamer.errors import OutputError
from streamer.outputs.base import write_json
from streamer.privacy.retention import RetentionKeeper, manifest_for
out = Path({str(tmp_path)!r})
monitor = RunMonitor(None, False, metrics_path=out / "metrics.json")
monitor._write_metrics([{{"name": "cam"}}])
write_json(out / "doc.json", {{"small": 1}})
manifest_for(out).add([out / "metrics.json", out / "doc.json"])
listed = [out / ("clip-%02d-" % i + "x" * 40 + ".jsonl") for i in range(30)]
for path in listed:
    path.write_text("{{}}\\n")
manifest_for(out).add(listed)
print("manifest", (out / ".cocoer-manifest").stat().st_size, flush=True)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))
monitor._write_metrics([{{"name": "cam-%d" % i, "fps": 25.0}} for i in range(100)])
try:
    write_json(out / "doc.json", {{"big": "x" * 5000}})
except OutputError as exc:
    print("refused:", exc)
RetentionKeeper(out, "30d", "", 60).sweep_once()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "refused: cannot write" in done.stdout and "File too large" in done.stdout, done.stdout
    assert "retention: cannot sweep" in done.stderr and "File too large" in done.stderr, done.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["sources"] == [{"name": "cam"}]
    assert json.loads((tmp_path / "doc.json").read_text()) == {"small": 1}
    manifest = (tmp_path / MANIFEST).read_text().splitlines()
    assert len(manifest) == 32 and all(json.loads(line)["path"] for line in manifest), "the listing is whole"
    assert int(done.stdout.split()[1]) > 600, "the manifest's rewrite was over the limit"
    names = {p.name for p in tmp_path.iterdir()}
    assert not [n for n in names if n.endswith(".tmp")], names
    assert names == {"metrics.json", "doc.json", MANIFEST, LOCK, *(f"clip-{i:02d}-{'x' * 40}.jsonl" for i in range(30))}
