"""CocoER fixtures: golden-filled weights, saved in the official file formats.

The official GWT.pth and RN50.pt cannot be downloaded here, so the tests
write files of the same formats from the golden fill rule (spec §15): a
`{'model': state_dict, ...}` checkpoint and a TorchScript RN50 archive in
fp16 with OpenAI's three settings entries.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from cocoer_core.clip_rn50 import CLIPRN50
from cocoer_core.config import CocoERConfig
from cocoer_core.model import CocoER
from cocoer_core.verify_golden import build_golden_models
from tests.conftest import ROOT
from tests.support.datasets import Image, emotic_images, write_caer_s, write_emotic

DESIGN = ROOT.parent / "shared" / "design"


def golden_spec(name: str) -> dict:
    path = DESIGN / name
    if not path.is_file():
        pytest.skip(f"{name} not found in {DESIGN}")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def spec_a() -> dict:
    return golden_spec("cocoer_golden_A.json")


@pytest.fixture(scope="session")
def golden_state(spec_a: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Golden-A-filled state dicts of CocoER and CLIP RN50 (built once: ~10 s)."""
    model, clip = build_golden_models(spec_a)
    return model.state_dict(), clip.state_dict()


def fresh_models(state: tuple[dict, dict], config: CocoERConfig | None = None) -> tuple[CocoER, CLIPRN50]:
    model = CocoER(config)
    model.load_state_dict(state[0], strict=True)
    clip = CLIPRN50()
    clip.load_state_dict(state[1], strict=True)
    return model.eval(), clip.eval()


class _Rn50Archive(nn.Module):
    """The layout of OpenAI's RN50.pt: CLIP's modules plus three settings entries."""

    def __init__(self, clip: CLIPRN50) -> None:
        super().__init__()
        for name, child in clip.named_children():
            self.add_module(name, child)
        for name, param in clip.named_parameters(recurse=False):
            self.register_parameter(name, param)
        self.register_buffer("input_resolution", torch.tensor(224))
        self.register_buffer("context_length", torch.tensor(77))
        self.register_buffer("vocab_size", torch.tensor(49408))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image)


def write_rn50_archive(clip: CLIPRN50, path: Path) -> None:
    archive = _Rn50Archive(clip).eval().half()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing warns about the half-precision trace
        traced = torch.jit.trace(archive, torch.zeros(1, 3, 224, 224, dtype=torch.half), check_trace=False)
    traced.save(str(path))


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory, golden_state) -> Path:
    """A checkpoints/ folder as a user would have it: GWT.pth and RN50.pt."""
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.save({"model": golden_state[0], "iter": 1000, "cur_epoch": 3}, folder / "GWT.pth")
    _, clip = fresh_models(golden_state)
    write_rn50_archive(clip, folder / "RN50.pt")
    return folder


@pytest.fixture(scope="session")
def emotic(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Image]]:
    root = tmp_path_factory.mktemp("emotic")
    images = emotic_images(shared_media)
    write_emotic(root, shared_media, images)
    return root, images


@pytest.fixture(scope="session")
def emotic_heads(emotic: tuple[Path, list[Image]]) -> Path:
    """The head-box tool, run once over the tiny EMOTIC (its real command line)."""
    root, _ = emotic
    return head_boxes("emotic", root)


@pytest.fixture(scope="session")
def caer_s(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny CAER-S (7 classes: 14 train, 7 val, 21 test persons) and its head-box file."""
    root = tmp_path_factory.mktemp("caer_s")
    write_caer_s(root, shared_media, per_class=3)
    return root, head_boxes("caer-s", root)


def head_boxes(kind: str, root: Path) -> Path:
    """`python -m streamer.tools.head_boxes` over a dataset (its real command line): `<root>/heads.json`."""
    done = subprocess.run(
        [sys.executable, "-m", "streamer.tools.head_boxes", "--dataset", kind, "--root", str(root),
         "--out", str(root / "heads.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root / "heads.json"
