"""`python -m cocoer_core.train` on tiny datasets built from real media: augmentation, batches, the loss,
learning, exact resume after a stop, torchrun, and the trained model in the live pipeline."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2

import numpy as np
import pytest
import torch

from cocoer_core.data import open_dataset, read_head_boxes
from cocoer_core.labels import CAER_S_LABELS
from cocoer_core.train import main as train_main
from cocoer_core.training.augment import plain_views, random_crop, train_views
from cocoer_core.training.loader import BatchPlan
from cocoer_core.training.objective import EMOTIC_STATIC_WEIGHTS, count_weights, static_weights
from tests.conftest import ROOT
from tests.support.datasets import Image

TRAIN = [sys.executable, "-m", "cocoer_core.train"]


def _run(
    args: list[str], timeout: float = 900, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _train_lines(run_dir: Path) -> int:
    """Train lines logged so far (a line being written is not counted)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return 0
    return sum(line.endswith("}") and '"train"' in line for line in path.read_text().splitlines())


@pytest.fixture
def run_root(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run folders hold GBs (GWT.pth, last.pt): removed after the test, whatever pytest keeps."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_augmented_views_keep_the_head_in_the_body_and_depend_only_on_the_seed(
    emotic: tuple[Path, list[Image]], emotic_heads: Path
) -> None:
    root, _ = emotic
    dataset = open_dataset("emotic", root, "train")
    heads = read_head_boxes(emotic_heads)
    sample = dataset.samples[0]
    rgb = cv2.cvtColor(cv2.imread(str(root / sample.image)), cv2.COLOR_BGR2RGB)
    head = heads.head_of(sample)
    height, width = rgb.shape[:2]
    int_head = tuple(int(v) for v in head)
    int_body = tuple(int(v) for v in sample.body)
    for seed in range(200):
        context, body, kept_head = random_crop(np.random.default_rng(seed), int_head, int_body, width, height)
        assert kept_head == int_head
        assert body[0] <= int_head[0] and body[1] <= int_head[1] and body[2] >= int_head[2] and body[3] >= int_head[3]
        assert min(int_head[0], int_body[0]) <= body[0] and body[2] <= max(int_head[2], int_body[2])
        assert 0 <= context[0] <= body[0] and 0 <= context[1] <= body[1]
        assert body[2] <= context[2] <= width and body[3] <= context[3] <= height
    a = train_views(rgb, sample.body, head, np.random.default_rng([0, 1, 2]))
    b = train_views(rgb, sample.body, head, np.random.default_rng([0, 1, 2]))
    c = train_views(rgb, sample.body, head, np.random.default_rng([0, 1, 3]))
    assert torch.equal(a.context, b.context) and torch.equal(a.head, b.head) and torch.equal(a.coord_head, b.coord_head)
    assert not torch.equal(a.context, c.context), "another (epoch, index) is another augmentation"
    for views in (a, c):
        assert views.context.shape == (3, 224, 224) and views.body.shape == (3, 224, 224)
        hx1, hy1, hx2, hy2 = views.coord_head.tolist()
        bx1, by1, bx2, by2 = views.coord_body.tolist()
        assert 0 <= bx1 <= hx1 < hx2 <= bx2 <= 224 and 0 <= by1 <= hy1 < hy2 <= by2 <= 224
    plain = plain_views(rgb, sample.body, head)
    assert plain.coord_body.tolist() == [
        int(v * 224 / s) for v, s in zip(sample.body, (width, height) * 2, strict=True)
    ]


def test_every_step_sees_the_same_persons_split_between_processes_and_after_a_resume() -> None:
    one = BatchPlan(persons=23, batch_size=8, seed=5)
    assert one.steps_per_epoch == 2 and one.micro_batch == 8
    epoch = [b for b in one.micro_batches(1, 0, 0)]
    assert [len(b) for b in epoch] == [8, 8] and len({i for b in epoch for _, i in b}) == 16
    assert list(one.micro_batches(1, 1, 0)) == epoch[1:], "a resume mid-epoch continues with the same batches"
    assert epoch != list(one.micro_batches(2, 0, 0)), "each epoch is shuffled anew"
    two = BatchPlan(persons=23, batch_size=8, accumulate=2, world=2, seed=5)
    assert two.micro_batch == 2
    shares = [list(two.micro_batches(1, 0, rank)) for rank in (0, 1)]
    for step in range(2):
        together = {i for rank in (0, 1) for micro in shares[rank][2 * step : 2 * step + 2] for _, i in micro}
        assert together == {i for _, i in epoch[step]}, "the processes' shares make up the one-process batch"
    with pytest.raises(ValueError, match="multiple of"):
        BatchPlan(persons=23, batch_size=6, accumulate=2, world=2)


def test_class_weights_follow_the_release() -> None:
    targets = np.zeros((10, 26), np.float32)
    assert torch.allclose(static_weights(targets, emotic=True), torch.tensor(EMOTIC_STATIC_WEIGHTS))
    caer = np.eye(7, dtype=np.float32)[[0, 0, 0, 1, 2, 3, 4, 5]]
    weights = static_weights(caer, emotic=False)
    assert weights[0] == pytest.approx(1 / np.log(3 + 1.2)) and weights[6] == pytest.approx(1e-4)
    assert count_weights(torch.tensor([1.0]))[0] == pytest.approx(1 / np.log(2.2)), "the model's inner weight"


def test_bad_input_and_offline_pretrained_weights_end_in_one_line(
    emotic: tuple[Path, list[Image]], emotic_heads: Path, tmp_path: Path
) -> None:
    root, _ = emotic
    base = ["--dataset", "emotic", "--heads", str(emotic_heads), "--out", str(tmp_path / "run")]
    no_root = _run([*TRAIN, *base, "--root", str(tmp_path / "nowhere")])
    assert no_root.returncode == 2 and no_root.stderr.strip().splitlines() == [
        f"error: dataset root {tmp_path / 'nowhere'} is not a folder"
    ]
    no_resume = _run([*TRAIN, "--resume", str(tmp_path / "nothing")])
    assert no_resume.returncode == 2 and "cannot resume" in no_resume.stderr and "Traceback" not in no_resume.stderr
    # A run whose last.pt a kill cut short (and the temporary file of the save it was making).
    cut = tmp_path / "cut"
    cut.mkdir()
    options = {"dataset": "emotic", "root": str(root), "heads": str(emotic_heads), "out": str(cut),
               "init": "random", "batch_size": 2}  # fmt: skip
    (cut / "train_options.json").write_text(json.dumps(options))
    (cut / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    (cut / ".last.pt.tmp").write_bytes(b"half a save")
    damaged = _run([*TRAIN, "--resume", str(cut)], env_extra={"TORCH_HOME": str(tmp_path)})
    assert damaged.returncode == 2 and "Traceback" not in damaged.stderr
    assert damaged.stderr.strip().splitlines()[-1].startswith(f"error: {cut / 'last.pt'} cannot be read")
    assert not (cut / ".last.pt.tmp").exists(), "the cut save's temporary file is cleared"
    # ImageNet weights neither cached nor reachable (this machine has no internet; TORCH_HOME is empty).
    offline = _run(
        [*TRAIN, *base, "--root", str(root), "--init", "pretrained", "--batch-size", "2"],
        env_extra={"TORCH_HOME": str(tmp_path)},
    )
    assert offline.returncode == 2
    errors = [line for line in offline.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ImageNet ResNet-50 weights cannot be downloaded" in errors[0], offline.stderr
    assert "--init random" in errors[0] and "Traceback" not in offline.stderr and "Downloading" not in offline.stderr


@pytest.mark.parametrize(
    ("option", "said"),
    [(["--lr-gamma", "nan"], "--lr-gamma must be a finite number; got nan"),
     (["--lr", "0"], "--lr must be > 0; got 0.0"), (["--dropout", "1.5"], "--dropout must be in [0, 1); got 1.5"),
     (["--epochs", "0"], "--epochs must be >= 1; got 0"), (["--workers", "-2"], "--workers must be >= -1; got -2")],
)  # fmt: skip
def test_options_no_run_can_use_are_one_line_before_anything_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], said: str
) -> None:
    # The dataset root does not exist: an option refused before it is looked at never gets that far.
    args = ["--dataset", "emotic", "--root", str(tmp_path / "nowhere"), "--heads", str(tmp_path / "heads.json"),
            "--out", str(tmp_path / "run"), *option]  # fmt: skip
    assert train_main(args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {said}"]
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def clip_file(checkpoint_dir: Path) -> str:
    return str(checkpoint_dir / "RN50.pt")


def _emotic_args(emotic: tuple[Path, list[Image]], heads: Path, clip: str) -> list[str]:
    root, _ = emotic
    return ["--dataset", "emotic", "--root", str(root), "--heads", str(heads), "--init", "random", "--clip", clip,
            "--quiet", "--log-every", "1"]  # fmt: skip


def test_only_what_the_loss_reaches_is_trained_and_the_coordination_is_first_order(
    emotic: tuple[Path, list[Image]], emotic_heads: Path, clip_file: str, run_root: Path
) -> None:
    from cocoer_core.training.distributed import World
    from cocoer_core.training.loader import epoch_loader
    from cocoer_core.training.options import TrainOptions
    from cocoer_core.training.trainer import NEVER_TRAINED, Trainer

    root, _ = emotic
    options = TrainOptions(dataset="emotic", root=str(root), heads=str(emotic_heads), out=str(run_root),
                           init="random", clip=clip_file, batch_size=2, dropout=0.0)  # fmt: skip
    trainer = Trainer(options, World())
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    batch = next(iter(epoch_loader(trainer.persons, trainer.plan, 0, 0, 0, 0)))
    trainer._micro_step(batch, sync=True)
    trained = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert all(p.grad is not None for n, p in trainer.model.named_parameters() if n in trained)
    assert {n for n, _ in trainer.model.named_parameters()} - trained == set(trainer.frozen)
    assert {"cls_HFE_head.4.weight", "cls_HFE_ctx.4.bias", "shar_after.weight"} <= set(trainer.frozen)
    assert all(n.startswith(NEVER_TRAINED) for n in trainer.frozen)
    assert "cls_HFE_head.1.weight" in trained and "W.weight" in trained and "VI_ffn.1.weight" in trained
    trainer._optimizer_step()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in trainer.frozen), "AdamW leaves frozen weights as they were"
    assert not torch.equal(before["cls_global_all.8.weight"], after["cls_global_all.8.weight"])


@pytest.mark.integration
def test_a_stopped_and_resumed_run_ends_bit_identical_to_an_uninterrupted_one(
    emotic: tuple[Path, list[Image]], emotic_heads: Path, clip_file: str, run_root: Path
) -> None:
    # 9 train persons, batch 2: 4 steps per epoch, so 6 steps cross an epoch (and a StepLR step of 1 epoch).
    args = [*_emotic_args(emotic, emotic_heads, clip_file), "--batch-size", "2", "--lr-step", "1", "--eval-every", "4"]
    whole, parts = run_root / "whole", run_root / "parts"
    done = _run([*TRAIN, *args, "--out", str(whole), "--max-steps", "6"])
    assert done.returncode == 0, done.stderr
    # Leg 1: stopped by Ctrl+C once step 2 is logged (the stop comes after the step under way).
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    with subprocess.Popen([*TRAIN, *args, "--out", str(parts), "--max-steps", "6"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if _train_lines(parts):
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.2)
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert "resume with --resume" in err and "Traceback" not in err
    again = _run([*TRAIN, *args, "--out", str(parts), "--max-steps", "6"])
    assert again.returncode == 2 and "already holds a run" in again.stderr
    stopped_at = torch.load(parts / "last.pt", weights_only=False)["progress"]["step"]
    assert 1 <= stopped_at < 6
    changed = _run([*TRAIN, "--resume", str(parts), "--batch-size", "4"])
    assert changed.returncode == 2 and "--batch-size 4 differs from the run being resumed" in changed.stderr
    last = _run([*TRAIN, "--resume", str(parts), "--max-steps", "6"])
    assert last.returncode == 0, last.stderr
    a = torch.load(whole / "last.pt", weights_only=False)
    b = torch.load(parts / "last.pt", weights_only=False)
    assert a["progress"]["step"] == b["progress"]["step"] == 6 and a["progress"]["epoch"] == 1
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), f"{key} differs after stop and resume"
    for (_, x), (_, y) in zip(
        sorted(a["optimizer"]["state"].items()), sorted(b["optimizer"]["state"].items()), strict=True
    ):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert a["scheduler"] == b["scheduler"] and a["scheduler"]["last_epoch"] == 1
    assert [r for r in _metrics(whole) if r["kind"] == "train"] == [r for r in _metrics(parts) if r["kind"] == "train"]
    assert [r["lr"] for r in _metrics(whole) if r["kind"] == "train"] == [6e-5] * 4 + [6e-6] * 2
    whole_model = torch.load(whole / "GWT.pth", weights_only=True)
    assert set(whole_model) == {"model"} and len(whole_model["model"]) == 1305, "the official format"
    assert (whole / "metrics.png").stat().st_size > 0 and (whole / "thresholds.json").is_file()


@pytest.mark.integration
def test_two_torchrun_processes_train_as_one_does(
    emotic: tuple[Path, list[Image]], emotic_heads: Path, clip_file: str, run_root: Path
) -> None:
    # Dropout off and BatchNorm on running statistics: the two ways differ only in summation order.
    args = [*_emotic_args(emotic, emotic_heads, clip_file), "--batch-size", "4", "--max-steps", "2",
            "--freeze-bn", "--dropout", "0"]  # fmt: skip
    one = _run([*TRAIN, *args, "--out", str(run_root / "one")])
    assert one.returncode == 0, one.stderr
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env_threads = {"OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [torchrun, "--nproc-per-node", "2", "-m", "cocoer_core.train", *args, "--out", str(run_root / "two")],
        cwd=ROOT, env={**os.environ, **env_threads, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 process(es)" in two.stderr
    a, b = _metrics(run_root / "one"), _metrics(run_root / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b, strict=True):
        if x["kind"] == "train":  # step 2's loss is computed with the weights step 1 made
            assert y["loss"] == pytest.approx(x["loss"], rel=1e-4) and y["final"] == pytest.approx(x["final"], rel=1e-4)
        else:
            assert y["levels"] == pytest.approx(x["levels"], abs=0.02)
    one_model = torch.load(run_root / "one" / "GWT.pth", weights_only=True)["model"]
    two_model = torch.load(run_root / "two" / "GWT.pth", weights_only=True)["model"]
    moved = (
        one_model["cls_global_all.8.weight"]
        - torch.load(run_root / "one" / "last.pt", weights_only=False)["model"]["cls_global_all.8.weight"]
    )
    assert moved.abs().max() == 0, "GWT.pth is the evaluated model (the last here)"
    close = [
        torch.allclose(one_model[k], two_model[k], atol=2e-4) for k in one_model if one_model[k].is_floating_point()
    ]
    assert all(close), "within two Adam steps of each other everywhere"
    # Gradient accumulation: two passes of 2 persons per step make the same steps as one pass of 4.
    accumulated = _run([*TRAIN, *args, "--accumulate", "2", "--out", str(run_root / "accumulated")])
    assert accumulated.returncode == 0, accumulated.stderr
    for x, y in zip(a, _metrics(run_root / "accumulated"), strict=True):
        if x["kind"] == "train":
            assert y["loss"] == pytest.approx(x["loss"], rel=1e-4) and y["final"] == pytest.approx(x["final"], rel=1e-4)


@pytest.mark.integration
def test_training_lowers_the_loss_and_fits_its_tiny_set(
    emotic: tuple[Path, list[Image]], emotic_heads: Path, clip_file: str, run_root: Path
) -> None:
    """From random weights, 15 steps on 9 persons: the loss falls, in training and scored in eval mode.

    Scored as the evaluation does, the final probabilities come closer to the labels (binary cross-entropy
    over the 26 classes). Not the split's mAP: on 9 persons after 15 steps it moved with a face box's few
    pixels (a change to MTCNN's resampling turned +0.10 into -0.02); memorising the set outright takes
    hundreds of steps from random weights, minutes too many on 2 cores.
    """
    from cocoer_core.training.distributed import World
    from cocoer_core.training.options import TrainOptions
    from cocoer_core.training.trainer import StopRequests, Trainer

    root, _ = emotic
    options = TrainOptions(dataset="emotic", root=str(root), heads=str(emotic_heads), out=str(run_root),
                           init="random", clip=clip_file, batch_size=3, max_steps=15, lr=1e-3, lr_step=100,
                           dropout=0.0, augment=False, log_every=1, eval_every=100)  # fmt: skip
    trainer = Trainer(options, World())
    before, scores_before = trainer.evaluate(trainer.train_set, refine=False)
    with StopRequests() as stop:
        trainer.run(stop)
    after, scores_after = trainer.evaluate(trainer.train_set, refine=False)
    final = [r["final"] for r in _metrics(run_root) if r["kind"] == "train"]
    assert len(final) == 15 and np.mean(final[-3:]) < 0.6 * np.mean(final[:3]), f"the loss falls: {final}"
    targets = trainer.train_set.targets()
    loss_before, loss_after = (_bce(s.levels["final"], targets) for s in (scores_before, scores_after))
    print(f"eval BCE {loss_before:.4f} -> {loss_after:.4f}, mAP {before['mAP']} -> {after['mAP']}")
    assert loss_after < 0.8 * loss_before, (loss_before, loss_after)


@pytest.mark.integration
def test_a_7_class_caer_s_model_trains_and_runs_in_the_live_pipeline(
    caer_s: tuple[Path, Path], clip_file: str, run_root: Path, shared_media: Path
) -> None:
    root, heads = caer_s
    run_dir = run_root / "caer"
    done = _run([*TRAIN, "--dataset", "caer-s", "--root", str(root), "--heads", str(heads), "--out", str(run_dir),
                 "--init", "random", "--clip", clip_file, "--batch-size", "7", "--max-steps", "4", "--quiet",
                 "--eval-every", "1", "--patience", "1", "--clip-grad", "1.0"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "14 persons, 2 steps per epoch of 7" in done.stderr and "val accuracy" in done.stdout
    records = _metrics(run_dir)
    assert all(r["grad_norm"] > 0 for r in records if r["kind"] == "train"), "clipping measures the norm"
    evals = [r["accuracy"] for r in records if r["kind"] == "eval"]
    first_flat = next((k for k in range(1, len(evals)) if evals[k] <= max(evals[:k])), None)
    expected = 4 if first_flat is None else first_flat + 1
    assert len(evals) == expected, f"early stopping at the first evaluation without improvement: {evals}"
    assert [r["kind"] for r in records[:2]] == ["train", "eval"]
    assert json.loads((run_dir / "labels.json").read_text()) == list(CAER_S_LABELS)
    assert len(json.loads((run_dir / "thresholds.json").read_text())["final"]) == 7
    evaluated = _run([sys.executable, "-m", "cocoer_core.evaluate", "--dataset", "caer-s", "--root", str(root),
                      "--heads", str(heads), "--split", "test", "--weights", str(run_dir),
                      "--out", str(run_root / "eval")])  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    # The trained weights on a shared video: run_stream.py --weights RUN_DIR (its RN50.pt links to the CLIP used).
    assert (run_dir / "RN50.pt").resolve() == Path(clip_file).resolve()
    clip = shared_media / "person_in_context_liveportrait_s32.mp4"
    out = run_root / "stream"
    streamed = _run([sys.executable, "run_stream.py", "--source", str(clip), "--weights", str(run_dir),
                     "--out", str(out), "--max-frames", "6", "--no-progress",
                     "--set", "detector.allow_download=false", "--set", "emotion.allow_download=false"])  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    assert "CocoER, 7 CAER-S classes" in streamed.stderr
    lines = [json.loads(x) for x in (out / f"{clip.stem}.jsonl").read_text().splitlines()]
    person = lines[-1]["persons"][0]  # tracks show from their 3rd detection
    assert set(person["raw"]["scores"]["final"]) == set(CAER_S_LABELS), "the checkpoint's own 7 classes"
    assert set(person["raw"]["pred"]) <= set(CAER_S_LABELS)


def _bce(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities against 0/1 targets."""
    p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p)))
