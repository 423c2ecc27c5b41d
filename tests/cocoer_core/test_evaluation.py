"""Datasets (EMOTIC .mat and CSV, CAER-S), head boxes and `evaluate`, on tiny datasets built from real media."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cocoer_core.data import DatasetError, open_dataset, read_head_boxes
from cocoer_core.labels import CAER_S_LABELS, EMOTIC_LABELS
from cocoer_core.metrics import average_precision, equal_error_threshold
from cocoer_core.postprocess import ConfidenceRule, LabelRule, labels_with_hysteresis
from cocoer_core.runtime import CocoERModel
from cocoer_core.train import main as train_main
from streamer.tools.head_boxes import main as head_boxes_main
from tests.conftest import ROOT
from tests.support.datasets import Image, write_caer_s


def _expected(images: list[Image], split: str) -> list[tuple[str, int, tuple[str, ...]]]:
    out = []
    for image in (i for i in images if i.split == split):
        for k, person in enumerate(image.persons):
            names = person.categories if split == "train" else person.combined
            if names:
                canonical = {"doubt / confusion" if n == "Doubt/Confusion" else n.lower() for n in names}
                out.append(
                    (f"emotic/{image.folder}/{image.file}", k, tuple(x for x in EMOTIC_LABELS if x in canonical))
                )
    return out


@pytest.mark.parametrize("kind", ["emotic", "emotic-csv"])
def test_both_emotic_layouts_give_the_annotated_persons_and_labels(emotic: tuple[Path, list[Image]], kind: str) -> None:
    root, images = emotic
    for split in ("train", "val", "test"):
        dataset = open_dataset(kind, root, split)
        got = [(s.image, s.person, s.labels) for s in dataset.samples]
        assert got == _expected(images, split), f"{kind} {split}: val/test use the combined categories"
        assert all(s.vad is not None and len(s.vad) == 3 for s in dataset.samples)
    train = open_dataset(kind, root, "train")
    assert train.dropped["no category"] >= 1, "persons nobody labelled are dropped and counted"
    assert all(0 <= s.body[0] < s.body[2] and 0 <= s.body[1] < s.body[3] for s in train.samples)
    assert train.targets().shape == (len(train), 26) and train.targets().sum() >= len(train)


def test_bad_records_get_one_line_naming_the_file_and_the_record(
    emotic: tuple[Path, list[Image]], tmp_path: Path
) -> None:
    root, _ = emotic
    broken = tmp_path / "broken"
    (broken / "emotic_pre").mkdir(parents=True)
    rows = (root / "emotic_pre" / "val.csv").read_text().splitlines()
    rows[2] = rows[2].replace("[", "(", 1).replace("]", "", 1)  # a damaged Image Size on row 3
    (broken / "emotic_pre" / "val.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"val\.csv, row 3: Image Size"):
        open_dataset("emotic-csv", broken, "val")
    rows = (root / "emotic_pre" / "test.csv").read_text().splitlines()
    rows[1] = rows[1].replace("['", "['Grumpiness', '", 1)
    (broken / "emotic_pre" / "test.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"test\.csv, row 2: unknown category 'Grumpiness'"):
        open_dataset("emotic-csv", broken, "test")
    (broken / "Annotations").mkdir()
    (broken / "Annotations" / "Annotations.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(DatasetError, match=r"Annotations\.mat: not a MATLAB file"):
        open_dataset("emotic", broken, "train")
    with pytest.raises(DatasetError, match=r"emotic_pre/train\.csv not found"):
        open_dataset("emotic-csv", broken, "train")


def test_missing_or_damaged_images_are_named_all_at_once_before_any_work(
    emotic: tuple[Path, list[Image]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found one at a time when the loop met them: the head-box pass (an hour of MTCNN on EMOTIC's 23,000 images)
    # or an epoch ended there, and the next run stopped at the next one.
    root = tmp_path / "emotic"
    shutil.copytree(emotic[0], root)
    train = open_dataset("emotic", root, "train").images()
    (root / train[0]).unlink()  # a dataset unpacked partly
    (root / train[1]).write_text("<html>Access denied</html>")  # a download that saved an error page
    said = f"error: 2 of the {len(train)} images of emotic train under {root} are missing or not images: "
    assert head_boxes_main(["--dataset", "emotic", "--root", str(root), "--out", str(tmp_path / "heads.json")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"{said}{train[0]}, {train[1]}"]
    assert not (tmp_path / "heads.json").exists()
    run = ["--dataset", "emotic", "--root", str(root), "--heads", str(tmp_path / "heads.json"), "--out",
           str(tmp_path / "run"), "--init", "random"]  # fmt: skip
    assert train_main(run) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"{said}{train[0]}, {train[1]}"


def test_caer_s_folders_with_a_fixed_val_split_carved_from_train(shared_media: Path, tmp_path: Path) -> None:
    truth = write_caer_s(tmp_path, shared_media)
    train, val, test = (open_dataset("caer-s", tmp_path, s) for s in ("train", "val", "test"))
    assert train.classes == CAER_S_LABELS and "seed" in val.note
    assert {s.image for s in train.samples}.isdisjoint(s.image for s in val.samples), "val is carved out of train"
    assert len(train) + len(val) == sum(1 for k in truth if k.startswith("train/")) and len(test) == len(truth) // 2
    assert {s.labels[0] for s in val.samples} == set(CAER_S_LABELS), "every class in val"
    again = open_dataset("caer-s", tmp_path, "val")
    assert [s.image for s in again.samples] == [s.image for s in val.samples], "the same split every time"
    names = {"anger": "Angry"}
    assert all(truth[s.image] == names.get(s.labels[0], s.labels[0].capitalize()) for s in test.samples)
    assert all(s.body[2] == 160 and s.body[3] == 120 for s in test.samples), "the body is the whole frame"


def test_the_head_box_file_holds_a_face_for_every_person_and_says_how(
    emotic: tuple[Path, list[Image]], emotic_heads: Path
) -> None:
    root, _ = emotic
    heads = read_head_boxes(emotic_heads)
    assert heads.detector == "mtcnn" and heads.licence.startswith("MIT") and "one to one" in heads.rule
    persons = [s for split in ("train", "val", "test") for s in open_dataset("emotic", root, split).samples]
    assert {s.key for s in persons} == set(heads.heads)
    counts = heads.counts()
    assert counts["face"] >= 0.8 * len(persons), "bodies were grown from faces: their faces are found"
    for sample in persons:
        box, score, how = heads.heads[sample.key]
        x1, y1, x2, y2 = box
        bx1, by1, bx2, by2 = sample.body
        assert bx1 <= (x1 + x2) / 2 <= bx2 and by1 <= (y1 + y2) / 2 <= by2, "a person's head lies in its body"
        assert (how == "face") == (score > 0)
    faces = [heads.heads[s.key][0] for s in persons if heads.heads[s.key][2] == "face"]
    assert len(set(faces)) == len(faces), "one face per person"


def test_ap_is_sklearns_and_the_threshold_balances_precision_and_recall() -> None:
    sklearn = pytest.importorskip("sklearn.metrics", reason="scikit-learn is in requirements.txt")
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = (rng.random(40) < 0.3).astype(int)
        y[0] = 1
        s = np.round(rng.random(40), 1)  # ties, as real scores have
        assert average_precision(y, s) == pytest.approx(sklearn.average_precision_score(y, s), abs=1e-12)
        t = equal_error_threshold(y, s)
        assert t is not None
        chosen = s > t
        precision, recall = (chosen & (y == 1)).sum() / max(chosen.sum(), 1), (chosen & (y == 1)).sum() / y.sum()
        assert abs(precision - recall) <= 0.35
    assert average_precision(np.zeros(5), np.ones(5)) is None, "no positive: no AP"


def test_per_class_thresholds_pick_labels_and_judge_confidence() -> None:
    labels = ("a", "b", "c")
    rule = LabelRule((0.5, 0.1, 0.9), 0.6)
    assert rule.final_labels(labels, np.array([0.6, 0.2, 0.8])) == ("a", "b")
    sure = ConfidenceRule(min_margin=0.15)
    assert sure.uncertain(np.array([0.6, 0.2, 0.8]), rule.final_threshold), "no label clears its own by 0.15"
    assert not sure.uncertain(np.array([0.6, 0.3, 0.8]), rule.final_threshold), "b clears 0.1 by 0.2"
    held = labels_with_hysteresis(labels, np.array([0.55, 0.15, 0.95]), rule.final_threshold, ("a",), 0.1)
    assert held == ("a",), "a held above its 0.5 - 0.1; b and c need their own threshold + 0.1 to turn on"


@pytest.mark.slow
@pytest.mark.integration
def test_evaluate_writes_metrics_predictions_and_thresholds_that_the_pipeline_then_uses(
    emotic: tuple[Path, list[Image]], emotic_heads: Path, checkpoint_dir: Path, tmp_path: Path
) -> None:
    sklearn = pytest.importorskip("sklearn.metrics", reason="scikit-learn is in requirements.txt")
    root, _ = emotic
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("GWT.pth", "RN50.pt"):
        (weights / name).symlink_to(checkpoint_dir / name)
    out = tmp_path / "eval"
    done = subprocess.run(
        [sys.executable, "-m", "cocoer_core.evaluate", "--dataset", "emotic", "--root", str(root), "--heads",
         str(emotic_heads), "--split", "val", "--weights", str(weights), "--out", str(out), "--device", "cpu",
         "--mode", "live"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "mAP" in done.stdout and "levels: final" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "live"
    dataset = open_dataset("emotic", root, "val")
    with (out / "predictions.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["image", "person", *EMOTIC_LABELS]
    assert [(r[0], int(r[1])) for r in rows[1:]] == [(s.image, s.person) for s in dataset.samples]
    scores, targets = np.array([[float(v) for v in r[2:]] for r in rows[1:]]), dataset.targets()
    for c, name in enumerate(EMOTIC_LABELS):
        if targets[:, c].any():
            assert metrics["AP"][name] == pytest.approx(sklearn.average_precision_score(targets[:, c], scores[:, c]))
        else:
            assert metrics["AP"][name] is None
    present = [v for v in metrics["AP"].values() if v is not None]
    assert metrics["mAP"] == pytest.approx(np.mean(present), abs=1e-6)
    assert set(metrics["levels"]) == {"final", "head", "body", "context", "vi"}
    assert (out / "metrics.png").stat().st_size > 1000
    chosen = json.loads((weights / "thresholds.json").read_text())
    assert chosen["labels"] == list(EMOTIC_LABELS) and len(chosen["final"]) == 26
    model = CocoERModel.from_directory(weights, allow_download=False)
    assert model.label_rule.final_threshold == tuple(chosen["final"]), "the pipeline uses the val thresholds"
    paper = subprocess.run(
        [sys.executable, "-m", "cocoer_core.evaluate", "--dataset", "emotic", "--root", str(root), "--heads",
         str(emotic_heads), "--split", "val", "--weights", str(weights), "--out", str(tmp_path / "paper")],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert paper.returncode == 0, paper.stderr
    assert json.loads((tmp_path / "paper" / "metrics.json").read_text())["mode"] == "paper"
    assert json.loads((weights / "thresholds.json").read_text()) == chosen, "paper mode leaves the pipeline's alone"
    assert (tmp_path / "paper" / "predictions.csv").read_text() != (out / "predictions.csv").read_text(), (
        "the paper's scores skip the coordination step the live pipeline takes"
    )
    wrong = subprocess.run(
        [sys.executable, "-m", "cocoer_core.evaluate", "--dataset", "emotic-csv", "--root", str(root), "--heads",
         str(tmp_path / "none.json"), "--split", "test", "--weights", str(weights), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert wrong.returncode == 2 and wrong.stderr.strip().count("\n") == 0 and "head-box file" in wrong.stderr
