"""Live sources against a real RTSP server on 127.0.0.1: reading, dropping, reconnecting, masking."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.outputs.video import Mp4Writer, VideoOutput
from streamer.sources import SourceKind, open_source
from streamer.sources.container import ContainerSource
from streamer.sources.live import StreamSource
from streamer.stages.interval import highest_for
from streamer.stages.pipeline import Pipeline, QueuePolicy
from tests.conftest import ROOT, media_file
from tests.support.pipelines import drain
from tests.support.servers import free_port

pytestmark = pytest.mark.rtsp

FAST = SourceConfig(open_timeout_s=3.0, read_timeout_s=2.0, backoff_initial_s=0.2, backoff_max_s=1.0)


def _clip(shared_media: Path, name: str = "face_expressive_liveportrait_d6.mp4") -> str:
    return str(media_file(shared_media, name))


def _frames(source, count: int, stop: threading.Event | None = None):
    out = []
    for frame in source.frames(stop or threading.Event()):
        out.append(frame)
        if len(out) >= count:
            break
    return out


def test_reads_rtsp_as_a_live_source(shared_media: Path, rtsp_server) -> None:
    server = rtsp_server("--file", _clip(shared_media, "face_expressive_liveportrait_d12.mp4"))
    source = open_source(server.url(), FAST)
    assert isinstance(source, StreamSource) and source.info.is_live
    assert (source.info.width, source.info.height) == (512, 512)
    started = time.monotonic()
    frames = _frames(source, 60)
    elapsed = time.monotonic() - started
    source.close()
    assert [f.index for f in frames] == list(range(60))
    assert all(b.pts_s > a.pts_s for a, b in itertools.pairwise(frames))
    assert frames[0].image.shape == (512, 512, 3) and frames[30].image.std() > 10
    assert elapsed > 1.2, "a live source delivers at the camera's pace (25 fps), not as fast as it can"


def test_the_first_frames_come_at_the_cameras_pace_not_in_a_burst(shared_media: Path, rtsp_server) -> None:
    # FFmpeg's own stream probe reads ~1 s before the first frame and hands it all over at once: a live run
    # dropped those 25 frames as stale on every (re)connect. `stream_probe_s` keeps that read to a frame.
    server = rtsp_server("--file", _clip(shared_media, "face_expressive_liveportrait_d12.mp4"))
    spans = {}
    for probe_s in (FAST.stream_probe_s, 2.0):
        source = open_source(server.url(), replace(FAST, stream_probe_s=probe_s))
        frames = _frames(source, 10)
        source.close()
        spans[probe_s] = frames[-1].captured_at - frames[0].captured_at
    assert spans[FAST.stream_probe_s] > 0.25, f"10 frames at 25 fps take 0.36 s to come; got {spans}"
    assert spans[2.0] < 0.15, f"a long probe delivers its frames in one burst; got {spans}"


def test_a_udp_stream_joined_between_keyframes_waits_for_one_instead_of_reconnecting(
    shared_media: Path, ts_server
) -> None:
    # MPEG-TS over UDP has no session: the frames connection joins mid-stream, and until the next keyframe
    # (6.6 s into this clip) no packet decodes. Each one used to raise and reconnect; a reconnect joins between
    # keyframes again. Now they are skipped, as players do.
    server = ts_server("--udp", "--file", _clip(shared_media, "face_expressive_liveportrait_d12.mp4"), "--delay", "1")
    source = open_source(server.url(), FAST)  # listens before the first packet: the probe sees the first keyframe
    assert source.info.is_live and (source.info.width, source.info.height) == (512, 512)
    frames = _frames(source, 12)
    source.close()
    assert source.reconnects == 0 and not any(frame.gap_s for frame in frames)
    assert [frame.index for frame in frames] == list(range(12)) and frames[5].image.std() > 10
    assert frames[-1].captured_at - frames[0].captured_at > 0.25, "at the camera's pace (25 fps)"


def test_a_udp_stream_opened_between_keyframes_still_knows_its_size(shared_media: Path, ts_server) -> None:
    # FFmpeg's probe gives up after 5 s; this clip's second keyframe is 6.6 s in. The size was 0x0.
    server = ts_server("--udp", "--file", _clip(shared_media, "face_expressive_liveportrait_d12.mp4"))
    time.sleep(1)  # the camera has been sending for a while: its first keyframe is gone
    source = open_source(server.url(), FAST)
    source.close()
    assert (source.info.width, source.info.height) == (512, 512)


def test_a_stream_that_decodes_nothing_for_long_is_reconnected(
    shared_media: Path, ts_server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import streamer.sources.live as live

    monkeypatch.setattr(live, "UNDECODABLE_FOR_S", 0.5)  # 20 s: longer than a camera's keyframe interval
    server = ts_server("--udp", "--file", _clip(shared_media, "face_expressive_liveportrait_d12.mp4"), "--delay", "1")
    source = open_source(server.url(), replace(FAST, read_timeout_s=0.5))
    stop = threading.Event()
    reader = threading.Thread(target=lambda: _frames(source, 1, stop), daemon=True)
    reader.start()
    time.sleep(3)  # the next keyframe is 6.6 s into the clip
    stop.set()
    reader.join(timeout=10)
    source.close()
    assert not reader.is_alive() and source.reconnects >= 1
    assert any("no frame decoded in" in record.getMessage() for record in caplog.records)


def test_hls_is_handed_over_at_its_own_pace_not_a_segment_at_once(shared_media: Path, ts_server) -> None:
    # HLS arrives a segment (2 s here) at a time; a live run works on the newest frame and dropped the rest of
    # each segment as stale (84% of a 25 fps stream). `source.pace: auto` spaces HLS frames by their timestamps.
    server = ts_server("--hls", "--file", _clip(shared_media, "people_one_by_one_room.mp4"))  # 10 fps, 2 s segments
    spans = {}
    for pace in ("auto", "no"):
        source = open_source(server.url(), replace(FAST, pace=pace))
        assert source.info.is_live and source.info.fps == pytest.approx(10, abs=0.5)
        frames = _frames(source, 16)
        source.close()
        spans[pace] = frames[-1].captured_at - frames[0].captured_at
    assert spans["auto"] > 1.2, f"16 frames at 10 fps take 1.5 s to come; got {spans}"
    assert spans["no"] < 0.5, f"unpaced, a segment arrives in one burst; got {spans}"


def test_of_an_hls_master_playlists_variants_the_largest_is_analysed_and_only_it_fetched(
    shared_media: Path, ts_server
) -> None:
    # FFmpeg fetches every variant's segments unless told to discard them: each one more download and demux.
    videos = ("face_woman_talking_pexels.mp4", "people_one_by_one_room.mp4")  # 640x360, 768x432
    server = ts_server("--hls", *(arg for name in videos for arg in ("--file", _clip(shared_media, name))))
    source = open_source(server.url(path="/master.m3u8"), FAST)
    assert (source.info.width, source.info.height) == (768, 432)
    stop = threading.Event()
    frames = source.frames(stop)
    assert next(frames).image.shape == (432, 768, 3)

    def requested() -> list[str]:
        with urllib.request.urlopen(server.url(path="/requests"), timeout=5) as response:
            return response.read().decode().split()

    before = requested()
    for _ in range(60):  # 6 s of the 10 fps variant, paced: into segments not out at the start
        next(frames)
    since = requested()[len(before) :]
    stop.set()
    source.close()
    assert any(path.startswith("/v1/segment") for path in since), since
    assert not any(path.startswith("/v0/") for path in since), (before, since)


def test_the_variant_analysed_is_the_largest_up_to_1080p() -> None:
    from types import SimpleNamespace

    from streamer.sources.live import video_stream

    def chosen(*sizes: tuple[int, int]) -> tuple[int, int]:
        streams = [SimpleNamespace(index=i, codec_context=SimpleNamespace(width=w, height=h), discard=None)
                   for i, (w, h) in enumerate(sizes)]  # fmt: skip
        listing = type("Streams", (list,), {"video": streams})(streams)  # iterable, with .video as PyAV's
        stream = video_stream(SimpleNamespace(streams=listing))  # type: ignore[arg-type]
        assert all((s.discard is None) == (s is stream) for s in streams), "every other stream is discarded"
        return stream.codec_context.width, stream.codec_context.height

    assert chosen((640, 360), (3840, 2160), (1920, 1080)) == (1920, 1080)  # 4K would not decode in real time
    assert chosen((3840, 2160), (2560, 1440)) == (2560, 1440)  # none fits: the smallest
    assert chosen(
        (512, 512),
    ) == (512, 512)


def test_pacing_follows_the_timestamps_and_starts_afresh_after_a_stall_or_a_jump() -> None:
    from streamer.sources.live import Pacer

    pacer, stop = Pacer(), threading.Event()

    def take(*times: float | None) -> float:
        started = time.monotonic()
        for at_s in times:
            pacer.wait(at_s, stop)
        return time.monotonic() - started

    assert 0.28 < take(10.0, 10.1, 10.2, 10.3) < 0.5, "due 0.1 s apart from the first"
    time.sleep(0.3)  # the stream stalls (the next HLS segment is not out yet)
    assert 0.18 < take(10.4, 10.5, 10.6) < 0.4, "after a stall the frames keep their spacing, not rushed in a burst"
    assert take(500.0, 0.0, None) < 0.05, "a jump ahead, a restart at zero, no timestamp: none waits"
    stop.set()
    assert take(0.9) < 0.1, "due in 0.9 s, but the source is stopping"


def test_the_short_probe_is_for_the_schemes_it_was_measured_on() -> None:
    source = StreamSource.__new__(StreamSource)  # _options only: no connection
    source.config = FAST
    for url, short in (("rtsp://h/s", True), ("udp://127.0.0.1:5000", True), ("tcp://h:1", True),
                       ("rtmp://h/live", False), ("http://h/live.m3u8", False)):  # fmt: skip
        source.url = url
        assert ("analyzeduration" in source._options(probe=False)) == short, url
        assert "analyzeduration" not in source._options(probe=True), "the open-time probe reads the frame rate"


def test_a_protocol_this_ffmpeg_lacks_is_one_line() -> None:
    try:
        av.open("srt://127.0.0.1:9", timeout=1).close()
    except av.error.ProtocolNotFoundError:
        pass
    except (av.error.FFmpegError, OSError):
        pytest.skip("this FFmpeg has SRT")
    with pytest.raises(
        SourceError, match=r"^cannot open srt://user:\*\*\*@127\.0\.0\.1:9.*no srt:// support.*relay"
    ) as error:
        open_source("srt://user:secret@127.0.0.1:9?passphrase=secret", FAST)
    assert "secret" not in str(error.value)


@pytest.mark.parametrize("beside_a_file", [False, True])
def test_a_new_camera_size_is_set_up_before_its_stream_opens(
    shared_media: Path, rtsp_server, centernet_dir: Path, tmp_path: Path, beside_a_file: bool
) -> None:
    """CenterNet exports its ONNX graph once per input size (seconds): for a live source of a size never seen
    that happens on a black frame before the stream opens, not on the first camera frames (dropped meanwhile);
    also when a file of the same size comes first in the run (a file is not set up ahead: it waits anyway)."""
    from streamer.api import Analyzer
    from streamer.config import load_config

    pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")
    models = tmp_path / "models"  # the real CenterNet files, with an empty export cache beside them
    models.mkdir()
    (models / centernet_dir.name).symlink_to(centernet_dir)
    server = rtsp_server("--file", _clip(shared_media, "face_expressive_liveportrait_d12.mp4"))  # 512x512
    config = load_config(None, [f"source.spec={server.url()}", f"detector.models_dir={models}",
                                "detector.runtime=onnxruntime", "source.max_frames=10", f"sink.out_dir={tmp_path}"])  # fmt: skip
    exported = models / "onnx" / "centernet_640x640.onnx"
    at_open: list[bool] = []
    specs = [_clip(shared_media, "face_expressive_liveportrait_d12.mp4")] * beside_a_file + [config.source.spec]
    report = Analyzer(config).run(specs, on_open=lambda: at_open.append(exported.is_file()))
    assert at_open == [True], "the size was exported before the stream opened"
    assert all(s.frames > 0 for s in report.sources) and len(report.sources) == len(specs) and not report.errors


def test_udp_transport(shared_media: Path, rtsp_server) -> None:
    server = rtsp_server("--pattern")
    source = open_source(server.url(), SourceConfig(rtsp_transport="udp", read_timeout_s=3.0))
    frames = _frames(source, 20)
    source.close()
    assert len(frames) == 20 and frames[0].image.shape == (240, 320, 3)


def test_latest_policy_drops_stale_frames_behind_a_slow_stage(shared_media: Path, rtsp_server) -> None:
    server = rtsp_server("--pattern")  # 25 fps, live
    source = open_source(server.url(), FAST)

    def slow(frame):
        time.sleep(0.2)  # a 5 fps stage behind a 25 fps camera
        return frame

    pipeline = Pipeline(source.frames, [("slow", slow)], queue_size=2, policy=QueuePolicy.LATEST)
    pipeline.start()
    latencies, indices = [], []
    started = time.monotonic()
    for frame in drain(pipeline):
        latencies.append(time.monotonic() - frame.captured_at)
        indices.append(frame.index)
        if time.monotonic() - started > 4.0:
            break
    pipeline.close()
    source.close()
    assert indices == sorted(indices)
    assert pipeline.stats.dropped > 30, "most frames are dropped, and counted"
    assert pipeline.stats.dropped >= indices[-1] - len(indices) - 5
    assert np.percentile(latencies[3:], 95) < 1.2, "latency stays bounded instead of growing with the backlog"


def test_reconnects_after_the_server_dies_and_comes_back(shared_media: Path, rtsp_server) -> None:
    server = rtsp_server("--file", _clip(shared_media))
    source = open_source(server.url(), FAST)
    stop = threading.Event()
    frames = []
    restarted = threading.Event()

    def restart_later() -> None:
        time.sleep(1.5)
        server.start()
        restarted.set()

    gap_at = None
    for frame in source.frames(stop):
        frames.append(frame)
        if len(frames) == 20:
            server.kill()
            threading.Thread(target=restart_later, daemon=True).start()
        if frame.gap_before and gap_at is None:
            gap_at = len(frames)
        if gap_at is not None and len(frames) >= gap_at + 10:
            break
    stop.set()
    source.close()
    gap = next(f for f in frames if f.gap_before)
    assert restarted.is_set() and source.reconnects >= 1
    assert gap.gap_s >= 1.0
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(b.pts_s > a.pts_s for a, b in itertools.pairwise(frames))


def test_a_stalled_server_times_out_and_the_source_reconnects(rtsp_server) -> None:
    # A live pattern: a file may already sit in the socket buffers when the server freezes.
    server = rtsp_server("--pattern")
    source = open_source(server.url(), FAST)
    frames = []
    paused_at = None
    deadline = time.monotonic() + 60
    for frame in source.frames(threading.Event()):
        frames.append(frame)
        if len(frames) == 15:
            server.pause()  # the server hangs: no EOF, no error, just silence
            paused_at = time.monotonic()
            threading.Timer(10.0, server.resume).start()
        if frame.gap_before or time.monotonic() > deadline:
            break
    source.close()
    assert paused_at is not None and frames[-1].gap_before, "the read timeout fired and the source reconnected"
    assert frames[-1].gap_s > 1.0
    assert source.reconnects >= 1


def test_gives_up_after_the_configured_attempts(shared_media: Path, rtsp_server) -> None:
    server = rtsp_server("--file", _clip(shared_media))
    config = SourceConfig(open_timeout_s=1.0, read_timeout_s=1.0, backoff_initial_s=0.1, reconnect_attempts=2)
    source = open_source(server.url(), config)
    with pytest.raises(SourceError, match="gave up after 2 reconnect attempts"):
        for frame in source.frames(threading.Event()):
            if frame.index == 5:
                server.kill()


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        pytest.param("dead-port", "Connection refused", id="dead-port"),
        pytest.param("wrong-path", "404", id="wrong-path"),
        pytest.param("wrong-password", "401", id="wrong-password"),
    ],
)
def test_unreachable_streams_fail_fast_with_the_password_masked(
    shared_media: Path, rtsp_server, case: str, needle: str
) -> None:
    server = rtsp_server("--file", _clip(shared_media), "--user", "alice", "--password", "s3cret")
    url = {
        "dead-port": f"rtsp://alice:s3cret@127.0.0.1:{free_port()}/stream",
        "wrong-path": server.url("alice", "s3cret", "/nope"),
        "wrong-password": server.url("alice", "hunter2"),
    }[case]
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        open_source(url, FAST)
    message = str(info.value)
    assert needle in message and "alice:***@" in message
    assert "s3cret" not in message and "hunter2" not in message
    assert time.monotonic() - started < 5


def test_credentials_are_used_but_never_shown(shared_media: Path, rtsp_server) -> None:
    server = rtsp_server("--file", _clip(shared_media), "--user", "alice", "--password", "s3cret")
    source = open_source(server.url("alice", "s3cret"), FAST)
    frames = _frames(source, 5)
    source.close()
    assert len(frames) == 5
    assert "s3cret" not in source.info.display_name and "s3cret" not in source.info.stem
    assert all("s3cret" not in f.stream_id for f in frames)


def test_a_camera_back_at_another_resolution_is_recorded_at_that_resolution(
    shared_media: Path, mjpeg_server, tmp_path: Path
) -> None:
    from streamer.api import Analyzer
    from streamer.config import load_config

    clips = [
        _clip(shared_media, "face_woman_talking_pexels.mp4"),
        _clip(shared_media, "faces_two_people_head_pose.mp4"),
    ]
    server = mjpeg_server("--file", clips[0])
    config = load_config(None, [f"source.spec={server.url()}", "detector.allow_download=false",
                                f"sink.out_dir={tmp_path}", "sink.report=false"])  # fmt: skip
    config.source = replace(config.source, backoff_initial_s=0.2, read_timeout_s=2.0)
    stop, seen = threading.Event(), []

    def on_frame(record) -> None:  # type: ignore[no-untyped-def]
        seen.append(record)
        if len(seen) == 10:  # the camera is reconfigured: back after a moment at 480x270
            server.stop()
            server.args = ["--file", clips[1]]
            server.start()
        if (len(seen) >= 10 and record.frame_size == (480, 270)) or len(seen) >= 150:  # ~6 s at 25 fps
            stop.set()

    report = Analyzer(config).run(config.source.spec, on_frame=on_frame, stop=stop)
    assert not report.errors and report.sources[0].reconnects >= 1
    assert [r.frame_size for r in seen if r.frame_size] == [(640, 360), (480, 270)]
    videos = sorted(tmp_path.glob("*.mp4"))
    sizes = []
    for path in videos:
        with av.open(str(path)) as container:
            sizes.append({(frame.width, frame.height) for frame in container.decode(video=0)})
    assert sizes == [{(640, 360)}, {(480, 270)}]


def test_http_link_to_a_video_file_is_a_finite_source(shared_media: Path, http_server: str) -> None:
    # Matroska: Python's test server has no Range support, which MP4s with a trailing index need.
    source = open_source(f"{http_server}/person_signing_asl_again.mkv", SourceConfig())
    assert isinstance(source, ContainerSource) and not source.info.is_live
    assert source.info.stem == "person_signing_asl_again"
    frames = list(source.frames(threading.Event()))
    assert len(frames) == 77 and frames[-1].is_last


def test_an_http_mjpeg_camera_is_live_and_reconnects(shared_media: Path, mjpeg_server) -> None:
    # IP cameras and phone webcam apps serve multipart JPEGs over http://. Taken for a file, such a camera
    # had every frame queued (latency growing), one unfragmented MP4 and no reconnect.
    server = mjpeg_server("--file", _clip(shared_media, "face_woman_head_pose.mp4"), "--fps", "20")
    source = open_source(server.url(), FAST)
    assert isinstance(source, StreamSource) and source.info.is_live and source.info.kind is SourceKind.STREAM
    assert (source.info.width, source.info.height) == (480, 270)
    stop = threading.Event()
    frames = source.frames(stop)
    first = [next(frames) for _ in range(20)]
    assert first[-1].captured_at - first[0].captured_at > 0.7, "at the camera's pace (20 fps)"
    server.stop()
    server.start()  # the camera comes back on the same address
    later = next(frames)
    stop.set()
    source.close()
    assert source.reconnects >= 1 and later.gap_s > 0 and later.image.std() > 10


def test_a_live_video_starts_a_new_segment_when_the_frame_size_changes(tmp_path: Path, shared_media: Path) -> None:
    # A camera back at another resolution: its frames were stretched to the first size, silently.
    sizes = [(640, 360), (640, 360), (480, 270), (480, 270), (640, 360)]
    with av.open(str(media_file(shared_media, "face_woman_talking_pexels.mp4"))) as container:
        wide = next(container.decode(video=0)).to_ndarray(format="bgr24")
    with av.open(str(media_file(shared_media, "faces_two_people_head_pose.mp4"))) as container:
        small = next(container.decode(video=0)).to_ndarray(format="bgr24")
    sink = VideoOutput(tmp_path, "cam", 25.0, segment_s=600)
    for index, (width, _) in enumerate(sizes):
        sink.write_image(wide if width == 640 else small, index * 0.04)
    sink.close()
    found = []
    for path in sink.paths:
        with av.open(str(path)) as container:
            found.append([(frame.width, frame.height) for frame in container.decode(video=0)])
    assert found == [sizes[:2], sizes[2:4], sizes[4:]]


def test_segments_rotate_and_each_plays_from_zero(tmp_path: Path, shared_media: Path) -> None:
    source = open_source(_clip(shared_media, "face_woman_head_pose.mp4"), SourceConfig())
    frames = list(source.frames(threading.Event()))  # 23 frames at 12.5 fps = 1.84 s
    sink = VideoOutput(tmp_path, "cam", 12.5, segment_s=0.7)
    for frame in frames:
        sink.write_image(frame.image, frame.pts_s)
    sink.close()
    assert [p.name for p in sink.paths] == ["cam_001.mp4", "cam_002.mp4", "cam_003.mp4"]
    total = 0
    for path in sink.paths:
        with av.open(str(path)) as container:
            times = [float(f.time) for f in container.decode(video=0)]
        assert times[0] == pytest.approx(0.0, abs=1e-3) and times == sorted(times)
        total += len(times)
    assert total == 23


def test_a_fragmented_recording_survives_a_crash(tmp_path: Path, shared_media: Path) -> None:
    """The process dies without closing the file: what was written still plays."""
    out = tmp_path / "crash.mp4"
    script = f"""
import os, sys, threading
sys.path.insert(0, {str(ROOT)!r})
import cv2, av
from fractions import Fraction
from streamer.config import SourceConfig
from streamer.outputs.video import Mp4Writer
from streamer.sources import open_source
source = open_source({_clip(shared_media, "face_man_smiling_short.mp4")!r}, SourceConfig())
sink = Mp4Writer(__import__('pathlib').Path({str(out)!r}), Fraction(1, 90000), 30.0)
for frame in source.frames(threading.Event()):
    sink.write(frame.image, frame.pts_s)
os._exit(1)  # no close(), no flush: a crash
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    with av.open(str(out)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded >= 60, "all but the last fragment (2 s) plays"


def _run_cli(*args: str, **kwargs) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_stream.py"), *args, "--no-progress", "--set", "detector.allow_download=false"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


@pytest.mark.integration
def test_cli_records_an_rtsp_camera_through_a_restart(shared_media: Path, rtsp_server, tmp_path: Path) -> None:
    server = rtsp_server("--file", _clip(shared_media), "--user", "alice", "--password", "s3cret")
    process = _run_cli(
        "--source",
        server.url("alice", "s3cret"),
        "--out",
        str(tmp_path),
        "--set",
        "source.read_timeout_s=2",
        "--set",
        "source.backoff_initial_s=0.3",
        "--set",
        "sink.segment_s=4",
    )
    jsonl = None
    deadline = time.monotonic() + 240
    stage = "before-kill"
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        candidates = list(tmp_path.glob("*.jsonl"))
        if not candidates:
            continue
        jsonl = candidates[0]
        lines = jsonl.read_text().splitlines()
        if stage == "before-kill" and len(lines) >= 15:
            server.kill()
            time.sleep(1.0)
            server.start()
            stage = "restarted"
        elif stage == "restarted" and any('"gap_before":true' in line for line in lines):
            gap_line = next(i for i, line in enumerate(lines) if '"gap_before":true' in line)
            if len(lines) >= gap_line + 15 and len(list(tmp_path.glob("*.mp4"))) >= 2:  # a segment rotated
                break
    process.send_signal(2)  # Ctrl+C finalizes the open segment
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert jsonl is not None
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    gaps = [r for r in records if r.get("gap_before")]
    assert len(gaps) == 1 and gaps[0]["gap_s"] >= 1.0
    indices = [r["frame"] for r in records]
    assert indices == sorted(set(indices)), "stale frames were dropped, the rest kept in order"
    predicted = [r.get("detected") is False for r in records]
    assert 0 < sum(predicted) < len(records), "live: the tracker predicts between detections (interval auto)"
    runs = "".join("p" if p else "d" for p in predicted).split("d")
    assert max(len(run) for run in runs) < highest_for(30.0), "at most 0.2 s from one detection to the next"
    assert gaps[0].get("detected", True), "the first frame after the gap is detected"
    assert f"the detector ran on {len(records) - sum(predicted)}" in stderr, "the run's summary says how often"
    assert re.search(r"reconnected [1-9]\d* times?: wrote", stderr), "and that the camera came back"
    segments = sorted(tmp_path.glob("*.mp4"))
    assert len(segments) >= 2
    decoded = 0
    for segment in segments:
        with av.open(str(segment)) as container:
            decoded += sum(1 for _ in container.decode(video=0))
    assert abs(decoded - len(records)) <= 1, "every analyzed frame is in a playable recording"
    assert "reconnecting" in stderr
    everything = stdout + stderr + jsonl.read_text() + " ".join(p.name for p in tmp_path.iterdir())
    assert "s3cret" not in everything and "alice:***@" in stderr


@pytest.mark.integration
def test_cli_dead_rtsp_url_is_one_line_exit_2(tmp_path: Path) -> None:
    process = _run_cli("--source", f"rtsp://bob:pa55word@127.0.0.1:{free_port()}/cam", "--out", str(tmp_path))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot open rtsp://bob:***@127.0.0.1")
    assert "pa55word" not in stderr + stdout


def test_fragmented_video_sink_is_a_playable_mp4(tmp_path: Path) -> None:
    out = tmp_path / "x.mp4"
    with Mp4Writer(out, Fraction(1, 90000), 25.0) as sink:
        for i in range(3):
            sink.write(np.zeros((32, 32, 3), np.uint8), i / 25)
    with av.open(str(out)) as container:
        assert container.format.name.startswith("mov") and sum(1 for _ in container.decode(video=0)) == 3


def test_camera_source_reads_through_opencv_and_reopens_at_the_end(shared_media: Path) -> None:
    """No camera here: OpenCV's VideoCapture on a real clip stands in for one (it ends like an unplugged camera)."""
    from streamer.sources.live import CameraSource

    clip = _clip(shared_media, "face_woman_head_pose.mp4")  # 23 frames
    source = CameraSource(clip, SourceConfig(backoff_initial_s=0.1))
    assert source.info.is_live and source.info.kind is SourceKind.CAMERA
    frames = _frames(source, 30)
    source.close()
    assert frames[23].gap_before and not any(f.gap_before for f in frames[:23])
    assert source.reconnects == 1
    np.testing.assert_array_equal(frames[0].image, frames[23].image)  # it really reopened
