"""`train --init pretrained`'s ImageNet ResNet-50: fetched whole with a timeout, checked by its name's hash, loaded.

download.pytorch.org is out of reach here; a local HTTP server plays it, serving a ResNet-50 state dict in
torchvision's layout (random weights: the layout is what is read) named as torch.hub names files.
"""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet50

from cocoer_core.backbones import resnet50_trunk
from cocoer_core.errors import CheckpointError
from cocoer_core.training.initial import imagenet_trunk_state
from tests.support.servers import Download, SilentServer


@pytest.fixture(scope="module")
def torchvision_file() -> tuple[str, bytes, dict[str, torch.Tensor]]:
    """(file name with its hash, its bytes, the state) of a ResNet-50 as torchvision publishes it."""
    torch.manual_seed(0)
    state = resnet50().state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    body = buffer.getvalue()
    return f"resnet50-{hashlib.sha256(body).hexdigest()[:8]}.pth", body, state


def test_the_imagenet_trunks_are_fetched_whole_and_loaded(
    download_server, torchvision_file, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # torch.hub kept no partial file either, but said a cut download's "invalid hash value" as a RuntimeError:
    # a traceback out of `train`.
    name, body, state = torchvision_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    served = Download(body, cut_after=len(body) // 3)
    url = f"{download_server(served)}/models/{name}"
    with pytest.raises(CheckpointError) as info:
        imagenet_trunk_state(url)
    message = str(info.value)
    assert message.startswith("ImageNet ResNet-50 weights cannot be downloaded (the connection ended after")
    assert "\n" not in message and "--init random" in message
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == [], "nothing kept"
    served.cut_after = None
    trunk = resnet50_trunk()
    trunk.load_state_dict(imagenet_trunk_state(url), strict=True)
    assert torch.equal(trunk[4][0].conv1.weight, state["layer1.0.conv1.weight"]), "layer1 is the trunk's index 4"
    assert (tmp_path / "hub" / "checkpoints" / name).read_bytes() == body, "kept where torch.hub keeps it"
    imagenet_trunk_state(url)
    assert served.requests == 2, "fetched once whole, then read from the cache"


def test_a_download_whose_bytes_are_not_the_named_file_is_refused(
    download_server, torchvision_file, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name, body, _ = torchvision_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = f"{download_server(Download(body[:-8] + bytes(8)))}/models/{name}"
    with pytest.raises(CheckpointError, match=r"is not resnet50-[0-9a-f]{8}\.pth \(its SHA-256 differs\)"):
        imagenet_trunk_state(url)
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []


def test_a_host_that_never_answers_is_given_up_on_at_the_timeout(
    silent_server: SilentServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # torch.hub's urlopen had no timeout: `train` waited for ever on a stalled connection.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    started = time.monotonic()
    with pytest.raises(CheckpointError, match=r"cannot be downloaded \(.*timed out"):
        imagenet_trunk_state(f"http://127.0.0.1:{silent_server.port}/models/resnet50-0676ba61.pth", timeout_s=1.0)
    assert time.monotonic() - started < 10
