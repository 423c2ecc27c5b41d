"""Official checkpoint formats load unchanged; wrong or missing files give one clear line."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
from pathlib import Path

import pytest
import torch

from cocoer_core.checkpoint import (
    download_clip_rn50,
    find_clip_weights,
    load_clip_rn50,
    load_cocoer_weights,
    load_vi_weights,
)
from cocoer_core.errors import CheckpointError
from cocoer_core.model import CocoER
from tests.cocoer_core.conftest import fresh_models
from tests.support.servers import Download


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gwt_checkpoint_round_trips_strictly(checkpoint_dir: Path, golden_state) -> None:
    model = CocoER()
    load_cocoer_weights(model, checkpoint_dir / "GWT.pth")
    assert _same(model.state_dict(), golden_state[0])


def test_data_parallel_prefix_and_bare_state_dicts(tmp_path: Path, golden_state) -> None:
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in golden_state[0].items()}, path)
    model = CocoER()
    load_cocoer_weights(model, path)
    assert torch.equal(model.W.weight, golden_state[0]["W.weight"])


def test_the_training_scripts_layout_loads_untrusted(tmp_path: Path, golden_state) -> None:
    """The training script pickles the whole AdamW object next to the weights (spec 8.3): `weights_only=True`
    refuses it, and it loaded only with full unpickling, trusted by default."""
    small = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(small.parameters(), lr=6e-5)
    small(torch.randn(3, 2)).sum().backward()
    optimizer.step()  # its state: a defaultdict keyed by parameters
    path = tmp_path / "with_opt.pth"
    torch.save({"model": golden_state[0], "iter": 5, "cur_epoch": 1, "opt": optimizer}, path)
    model = CocoER()
    load_cocoer_weights(model, path, trust_pickle=False)
    assert _same(model.state_dict(), golden_state[0])


class _RunsCode:
    """What a hostile checkpoint pickles: unpickling it calls os.mkdir (any call would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.marker),)


def test_a_checkpoint_that_runs_code_as_it_loads_is_refused_unless_trusted(tmp_path: Path, golden_state) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "hostile.pth"
    torch.save({"model": golden_state[0], "opt": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError) as info:
        load_cocoer_weights(CocoER(), path)
    message = str(info.value)
    assert "mkdir is not one of the training script's objects" in message and "emotion.trust_checkpoint=true" in message
    assert "\n" not in message and not marker.exists()
    trusted = CocoER()
    load_cocoer_weights(trusted, path, trust_pickle=True)  # said to be trusted: it runs
    assert marker.is_dir() and _same(trusted.state_dict(), golden_state[0])


def test_missing_checkpoint_names_the_file_and_the_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        load_cocoer_weights(CocoER(), tmp_path / "GWT.pth")
    message = str(info.value)
    assert "GWT.pth" in message and "checkpoints/" in message and "\n" not in message


def test_mismatched_checkpoint_lists_what_differs(tmp_path: Path, golden_state) -> None:
    state = dict(golden_state[0])
    del state["ln_after.weight"]
    state["extra.weight"] = torch.zeros(3)
    state["W.weight"] = torch.zeros(512, 1024)
    path = tmp_path / "wrong.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_cocoer_weights(CocoER(), path)
    message = str(info.value)
    assert "1 missing keys: ln_after.weight" in message
    assert "1 unexpected keys: extra.weight" in message
    assert "W.weight (512, 1024) vs (1024, 1024)" in message
    assert "\n" not in message


@pytest.mark.parametrize("content", [b"", b"this is text, not a checkpoint"], ids=["empty", "text"])
def test_files_that_are_not_checkpoints(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "GWT.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_cocoer_weights(CocoER(), path)


def test_vi_weights_file(tmp_path: Path) -> None:
    w = torch.randn(1024, 1024)
    path = tmp_path / "w.pth"
    torch.save({"model": {"W.weight": w}}, path)
    model = CocoER()
    load_vi_weights(model, path)
    assert torch.equal(model.W.weight, w)
    torch.save({"model": {"W.weight": w, "other": w}}, path)
    with pytest.raises(CheckpointError, match=r"exactly 'W\.weight'"):
        load_vi_weights(model, path)


def test_openai_rn50_archive_loads_in_float32(checkpoint_dir: Path, golden_state) -> None:
    clip = load_clip_rn50(checkpoint_dir / "RN50.pt")
    state = clip.state_dict()
    assert state["visual.conv1.weight"].dtype == torch.float32
    assert len(state) == 489
    # fp16 in the archive: equal to the original within half precision.
    torch.testing.assert_close(
        state["visual.attnpool.c_proj.weight"], golden_state[1]["visual.attnpool.c_proj.weight"], atol=1e-3, rtol=1e-3
    )
    _, reference = fresh_models(golden_state)
    image = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(clip.encode_image(image), reference.encode_image(image), atol=5e-2, rtol=5e-2)


def test_plain_clip_state_dict_also_loads(tmp_path: Path, golden_state) -> None:
    path = tmp_path / "RN50.pt"
    torch.save(golden_state[1], path)
    clip = load_clip_rn50(path)
    assert torch.equal(clip.visual.conv1.weight, golden_state[1]["visual.conv1.weight"])


def test_missing_clip_weights_offline_say_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/clip either
    with pytest.raises(CheckpointError) as info:
        find_clip_weights(tmp_path / "checkpoints", allow_download=False)
    assert "RN50.pt" in str(info.value) and str(tmp_path / "checkpoints") in str(info.value)


def test_clip_download_failure_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    def offline(*args, **kwargs):  # what urlopen does on a machine with no route out
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(CheckpointError) as info:
        find_clip_weights(tmp_path / "checkpoints", allow_download=True)
    message = str(info.value)
    assert "download failed" in message and "openaipublic" in message and "\n" not in message
    assert list((tmp_path / "checkpoints").iterdir()) == [], "nothing is left behind"


# A mirror of RN50.pt (COCOER_CLIP_URL) on 127.0.0.1; random bytes stand in for the 244 MB file, their own
# SHA-256 for OpenAI's.
_FAKE_RN50 = os.urandom(3 << 20)
_FAKE_SHA = hashlib.sha256(_FAKE_RN50).hexdigest()


def test_clip_comes_from_a_mirror_whole_and_checked(
    download_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COCOER_CLIP_URL", download_server(Download(_FAKE_RN50)) + "/RN50.pt")
    target = tmp_path / "clip" / "RN50.pt"
    assert download_clip_rn50(target, sha256=_FAKE_SHA) == target
    assert target.read_bytes() == _FAKE_RN50 and os.listdir(target.parent) == ["RN50.pt"]


def test_two_clip_downloads_at_once_both_end_with_the_whole_file(download_server, tmp_path: Path) -> None:
    # Two processes (or threads) fetching RN50.pt at once shared one RN50.part: one moved it into place while
    # the other still wrote to it, and that one failed its checksum or its rename.
    url = download_server(Download(_FAKE_RN50, pace_s=0.05)) + "/RN50.pt"
    target = tmp_path / "RN50.pt"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        done = [pool.submit(download_clip_rn50, target, url=url, sha256=_FAKE_SHA) for _ in range(2)]
        assert [future.result(timeout=60) for future in done] == [target, target]
    assert target.read_bytes() == _FAKE_RN50 and os.listdir(tmp_path) == ["RN50.pt"]


@pytest.mark.parametrize(("cut_after", "said"), [(1 << 20, "the connection ended after 1.0 MB of 3.1 MB"),
                                                  (None, "wrong SHA-256")])  # fmt: skip
def test_a_clip_download_cut_short_or_of_other_bytes_is_one_line_and_leaves_nothing(
    download_server, tmp_path: Path, cut_after: int | None, said: str
) -> None:
    # Cut short, the download ended as if whole (`read(n)` returns b"" on a closed connection) and only the
    # checksum noticed, saying the file was the wrong one.
    url = download_server(Download(_FAKE_RN50, cut_after=cut_after)) + "/RN50.pt"
    with pytest.raises(CheckpointError) as info:
        download_clip_rn50(tmp_path / "RN50.pt", url=url, sha256=_FAKE_SHA if cut_after else "0" * 64)
    assert said in str(info.value) and "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []
