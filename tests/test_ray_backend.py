"""The Ray backend on a local cluster (num_cpus=2): same results as one process, a killed actor restarts."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import av
import pytest

from streamer.config import load_config
from streamer.sources.entries import entries_from_specs
from tests.conftest import ROOT, media_file
from tests.support.runs import CLIPS, FRAMES, assert_same_run, jsonl_lines

ray = pytest.importorskip("ray", reason="ray is in requirements.txt; install it to test the Ray backend")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster():
    """A local cluster started as the CLI starts it (its workers import this checkout through the same path)."""
    from streamer.backends.ray.cluster import ROOT as SHIPPED_ROOT
    from streamer.backends.ray.cluster import start_cluster

    assert (SHIPPED_ROOT / "streamer" / "__init__.py").is_file(), "workers must import the checkout, not the package"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the workers inherit it
    assert start_cluster("", 2, _config(ROOT / "outputs"))
    yield
    ray.shutdown()


def _config(out: Path, *extra: str):
    # Two source actors and the (CPU-free) inference actor fit the two logical CPUs.
    return load_config(
        ROOT / "configs" / "default.yaml",
        [f"sink.out_dir={out}", "detector.allow_download=false", "ray.source_cpus=0.5", *extra],
    )


def test_two_videos_on_ray_equal_their_single_process_runs_and_a_missing_one_is_reported(
    cluster, shared_media: Path, tmp_path: Path, single_source_runs: dict[str, list[dict]]
) -> None:
    from streamer.backends.base import RunJob
    from streamer.backends.ray import RayBackend
    from streamer.view.web.board import LiveBoard

    config = _config(tmp_path, f"source.max_frames={FRAMES}")
    specs = [str(media_file(shared_media, clip)) for clip in CLIPS] + [str(tmp_path / "gone.mp4")]
    board = LiveBoard()
    report = RayBackend().run(RunJob(config, entries_from_specs(specs, config.source), live_view=board))
    published = {s["name"]: s["frames_published"] for s in board.snapshot()["sources"]}
    assert published == {Path(clip).stem: FRAMES for clip in CLIPS}, "the live view sees every frame the driver writes"
    assert [str(error) for _, error in report.unopened] == [f"no such file: {tmp_path / 'gone.mp4'}"]
    assert [s.error for s in report.sources] == [None, None]
    for clip in CLIPS:
        stem = Path(clip).stem
        assert_same_run(jsonl_lines(tmp_path / f"{stem}.jsonl"), single_source_runs[clip])
        with av.open(str(tmp_path / f"{stem}.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == FRAMES
    assert report.batches > 0 and report.persons_inferred >= FRAMES
    metrics = (tmp_path / "metrics.json").read_text()
    assert '"node"' in metrics and '"restarts": 0' in metrics


def test_a_killed_source_actor_restarts_and_its_file_continues_while_the_other_finishes(
    cluster, shared_media: Path, tmp_path: Path
) -> None:
    from streamer.backends.base import RunJob
    from streamer.backends.ray.driver import RayRun

    config = _config(tmp_path)
    victim_clip, other_clip = "face_woman_talking_pexels.mp4", "face_woman_head_pose.mp4"  # 472 and 23 frames
    specs = [str(media_file(shared_media, victim_clip)), str(media_file(shared_media, other_clip))]
    stop = threading.Event()
    run = RayRun(RunJob(config, entries_from_specs(specs, config.source), stop=stop))
    run.open()
    done: dict = {}
    thread = threading.Thread(target=lambda: done.setdefault("report", run.run()), daemon=True)
    thread.start()
    victim = tmp_path / "face_woman_talking_pexels.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not victim.exists() or len(victim.read_text().splitlines()) < 10):
        time.sleep(0.2)
    killed_after = len(victim.read_text().splitlines())
    ray.kill(run.sources[0].actor, no_restart=False)  # the process dies at once, as with SIGKILL
    time.sleep(1.0)
    after_kill = jsonl_lines(victim)
    dead_model = run.inference[0]
    ray.kill(dead_model, no_restart=True)  # and the model's actor too: it is replaced
    other_path = tmp_path / "face_woman_head_pose.jsonl"

    def other_done() -> bool:
        return other_path.exists() and len(other_path.read_text().splitlines()) >= 23

    # Stop only once both have had their chance: on a loaded machine the short clip can still be running.
    while time.monotonic() < deadline and (len(jsonl_lines(victim)) < killed_after + 20 or not other_done()):
        time.sleep(0.2)
    stop.set()
    thread.join(timeout=120)
    report = done["report"]
    victim_report, other_report = report.sources
    assert victim_report.restarts == 1 and victim_report.error is None
    assert run.inference[0] is not dead_model, "a new inference actor took over the dead one's batches"
    lines = jsonl_lines(victim)
    assert [x["frame"] for x in lines] == list(range(len(lines))), "every frame once, in order, across the restart"
    assert len(lines) >= killed_after + 20
    old_ids = {p["track_id"] for x in after_kill for p in x["persons"]}
    ends = [e for x in lines for e in x.get("events", []) if e["event"] == "track_end"]
    assert {e["track_id"] for e in ends} >= old_ids, "the dead actor's tracks end"
    new_ids = {p["track_id"] for x in lines[len(after_kill) + 5 :] for p in x["persons"]}
    assert new_ids and min(new_ids) > max(old_ids), "ids after the restart never reuse the old ones"
    other = jsonl_lines(other_path)
    assert other_report.error is None and [x["frame"] for x in other] == list(range(23)), "the other source finished"


@pytest.fixture(scope="module")
def cocoer_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoints/ folder in the official formats, golden-filled (see tests/cocoer_core/conftest.py)."""
    import torch

    from cocoer_core.verify_golden import build_golden_models
    from tests.cocoer_core.conftest import golden_spec, write_rn50_archive

    model, clip = build_golden_models(golden_spec("cocoer_golden_A.json"))
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.save({"model": model.state_dict(), "iter": 1000, "cur_epoch": 3}, folder / "GWT.pth")
    write_rn50_archive(clip, folder / "RN50.pt")
    return folder


def test_the_emotion_runtime_choice_reaches_the_inference_actor(
    cluster, cocoer_weights: Path, shared_media: Path, tmp_path: Path
) -> None:
    """`emotion.runtime` travels with the config to the node that builds CocoER: the actor exports it and
    runs it in ONNX Runtime (left alone, a folder with no export runs PyTorch), and run.json says what ran."""
    from streamer.backends.base import RunJob
    from streamer.backends.ray import RayBackend

    config = _config(tmp_path, "source.max_frames=3", "emotion.model=cocoer", f"emotion.weights={cocoer_weights}",
                     "emotion.runtime=onnxruntime", "emotion.allow_download=false")  # fmt: skip
    spec = str(media_file(shared_media, "person_in_context_liveportrait_s32.mp4"))
    report = RayBackend().run(RunJob(config, entries_from_specs([spec], config.source)))
    assert [s.error for s in report.sources] == [None] and report.persons_inferred > 0
    declared = json.loads((tmp_path / "run.json").read_text())
    emotion = declared["runtimes"]["emotion"]
    assert emotion.startswith("CocoER") and emotion.endswith("(onnxruntime CPU fp32)"), emotion
    # The detectors as the source actor's node built them: `auto` resolved there, with their licences.
    assert {role: model["name"] for role, model in declared["models"].items() if role != "emotion"} == {
        "faces": "mtcnn",
        "people": "centernet",
    }
    assert not declared["models"]["people"]["licence"].startswith("unknown")
    assert declared["runtimes"]["faces"] == "torch" and declared["runtimes"]["people"] in ("torch", "onnxruntime")
    assert (cocoer_weights / "cocoer.onnx").is_file(), "exported on the node, beside the weights"
    lines = jsonl_lines(tmp_path / "person_in_context_liveportrait_s32.jsonl")
    assert len(lines) == 3 and any(p.get("raw") for line in lines for p in line["persons"]), "CocoER ran on the node"


def test_run_json_says_each_role_once_or_what_each_node_chose() -> None:
    from streamer.backends.ray.driver import _across_nodes

    cpu = {"faces": "torch", "people": "onnxruntime"}
    gpu = {"faces": "torch", "people": "torch"}
    assert _across_nodes([cpu, cpu]) == cpu
    assert _across_nodes([cpu, gpu, cpu]) == {"faces": "torch", "people": "onnxruntime / torch"}
    assert _across_nodes([{"faces": "torch"}, gpu]) == gpu, "a node without a person detector adds nothing"
    assert _across_nodes([]) == {}


def test_privacy_holds_on_ray_a_masked_zone_hidden_faces_and_aggregate_only_output(
    cluster, shared_media: Path, models_without_exports: Path, tmp_path: Path
) -> None:
    """The zones travel to the source actors (nobody in a masked zone is detected there) and the driver's
    outputs hide faces and the zone; in aggregate mode nothing per person is written. (The aggregate run also
    asks for CenterNet in ONNX Runtime where its exports can't be written: run.json ends saying PyTorch ran it.)"""
    import numpy as np

    from streamer.backends.base import RunJob
    from streamer.backends.ray import RayBackend
    from streamer.detectors.faces import MtcnnFaceDetector

    clip = media_file(shared_media, "faces_two_people_head_pose.mp4")  # one person left, one right (480x270)
    left = "[[[0,0],[0.45,0],[0.45,1],[0,1]]]"
    zoned = tmp_path / "zoned"
    config = _config(zoned, "source.max_frames=8", f"privacy.mask={left}")
    report = RayBackend().run(RunJob(config, entries_from_specs([str(clip)], config.source)))
    assert [s.error for s in report.sources] == [None]
    lines = jsonl_lines(zoned / f"{clip.stem}.jsonl")
    centres = [(p["body_box"][0] + p["body_box"][2]) / 2 for line in lines for p in line["persons"]]
    assert len(lines) == 8 and centres and min(centres) > 0.45 * 480, "nobody in the masked zone is reported"
    faces = MtcnnFaceDetector()
    with av.open(str(zoned / f"{clip.stem}.mp4")) as container:
        images = [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]
    assert len(images) == 8
    for image in images:
        assert (np.abs(image[20:230, 4:200].astype(int) - 128) <= 6).all(axis=2).mean() > 0.9, "the zone is flat"
        assert faces.detect(image) == [], "the face outside the zone is hidden too"
    assert json.loads((zoned / "run.json").read_text())["privacy"]["mask"]

    counted = tmp_path / "aggregate"
    config = _config(counted, "source.max_frames=30", "privacy.mode=aggregate", "privacy.interval_s=1",
                     "detector.runtime=onnxruntime", f"detector.models_dir={models_without_exports}")  # fmt: skip
    report = RayBackend().run(RunJob(config, entries_from_specs([str(clip)], config.source)))
    assert [s.error for s in report.sources] == [None]
    written = sorted(p.name for p in counted.rglob("*") if p.is_file() and not p.name.startswith("."))
    stem = f"{clip.stem}.counts"
    assert written == sorted(["run.json", f"{stem}.jsonl", f"{stem}.html", f"{stem}.csv", "metrics.json"]), written
    assert json.loads((counted / "run.json").read_text())["runtimes"]["people"] == "torch", "what ran, at the end"
    for path in counted.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not any(word in text for word in ("track_id", "body_box", "head_box")), path.name
    intervals = jsonl_lines(counted / f"{stem}.jsonl")
    assert intervals and sum(i["frames"] for i in intervals) == 30 and all(i["persons_max"] <= 2 for i in intervals)


def test_a_camera_that_reconnected_just_before_the_end_is_reported_so(
    cluster, shared_media: Path, mjpeg_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver asked the source actors for their figures every few seconds while they ran and never again:
    a camera that reconnected after the last time it asked was reported as never having reconnected."""
    from streamer.backends.base import RunJob
    from streamer.backends.ray import RayBackend, driver

    monkeypatch.setattr(driver, "STATUS_EVERY_S", 3600.0)  # asked once, at the start: the end must ask again
    server = mjpeg_server("--file", str(media_file(shared_media, "face_woman_head_pose.mp4")), "--fps", "20")
    config = _config(tmp_path, "sink.report=false", "source.backoff_initial_s=0.2", "source.read_timeout_s=2")
    stop, seen = threading.Event(), []

    def on_frame(record) -> None:  # type: ignore[no-untyped-def]
        seen.append(record)
        if len(seen) == 8:  # the camera restarts
            server.stop()
            server.start()
        after = [r for r in seen if r.gap_before]
        if (after and len(seen) >= seen.index(after[0]) + 3) or len(seen) >= 200:
            stop.set()

    report = RayBackend().run(RunJob(config, entries_from_specs([server.url()], config.source), stop, on_frame))
    assert [r.gap_before for r in seen].count(True) == 1, "the camera came back once"
    assert [s.error for s in report.sources] == [None] and report.sources[0].reconnects >= 1
