"""The official CocoER weights in one step: download, unpack, check.

The authors publish one download (Google Drive, or Baidu with code u6wq)
holding `GWT.pth` (the model) and `VI_weights/w.pth` (the stage-1 VI
matrix); their README puts them in `./checkpoints/` and
`./checkpoints/VI_weights/`, which is where `emotion.weights` looks.

`fetch_official(folder)` downloads it (Google Drive answers a large file with
a "can't scan for viruses" page first: its form is followed), unpacks the two
files whatever the archive (zip, tar, or a bare checkpoint), and checks them
by loading them strictly into the model (every key and shape). Tensors saved
on `cuda:0`/`cuda:1` are mapped to the CPU on reading (`read_checkpoint`),
since the official loading code passes no `map_location`.
"""

from __future__ import annotations

import html
import re
import shutil
import urllib.parse
from pathlib import Path

from cocoer_core.archives import extract_whole, member_names
from cocoer_core.checkpoint import GWT_FILE, classes_in, load_state, load_vi_weights, read_cocoer_state
from cocoer_core.config import CocoERConfig
from cocoer_core.errors import CheckpointError, reason_of
from cocoer_core.http_body import copy_body, opened
from cocoer_core.model import CocoER
from cocoer_core.whole_files import replaced_whole, scratch_folder

#: The one place the official download is named (bisno/CocoER README, "Model Weight Download").
GOOGLE_DRIVE_ID = "1JXXt22_M8UB-LXmCz-W90U6WQEtu1uck"
DOWNLOAD_URL = f"https://drive.usercontent.google.com/download?id={GOOGLE_DRIVE_ID}&export=download"
PAGE_URL = f"https://drive.google.com/file/d/{GOOGLE_DRIVE_ID}/view"
BAIDU_URL = "https://pan.baidu.com/s/1_jHm5j7JnkvdhU5NbI4CwA?pwd=u6wq"
VI_FILE = Path("VI_weights") / "w.pth"
#: The download's folder inside the checkpoints folder, named by its writer: `.download-PID-THREAD`.
SCRATCH_PREFIX = ".download-"


def _by_hand(folder: Path) -> str:
    return (
        f"download it by hand from {PAGE_URL} (or {BAIDU_URL}) and put GWT.pth in {folder}/ "
        f"and w.pth in {folder / 'VI_weights'}/"
    )


def _confirm_url(page: str) -> str | None:
    """The download URL in Google Drive's virus-scan warning page (its form's action and hidden fields)."""
    action = re.search(r'<form[^>]+action="([^"]+)"', page)
    if action is None:
        return None
    fields = dict(re.findall(r'<input[^>]+name="([^"]+)"[^>]+value="([^"]*)"', page))
    return html.unescape(action[1]) + "?" + urllib.parse.urlencode(fields)


def download(url: str, target: Path, timeout_s: float = 60.0, folder: Path | None = None) -> Path:
    """Stream `url` into `target` (following Drive's confirmation page once); CheckpointError when offline."""
    where = folder or target.parent
    for _ in range(2):
        try:
            with opened(url, timeout_s) as response:
                if "text/html" in response.headers.get("Content-Type", ""):
                    next_url = _confirm_url(response.read(1 << 20).decode("utf-8", "replace"))
                    if next_url is None:
                        raise CheckpointError(f"Google Drive did not serve the file; {_by_hand(where)}")
                    url = next_url
                    continue
                with target.open("wb") as out:
                    copy_body(response, out)
                return target
        except OSError as exc:  # offline, cut short, a malformed URL, a full disk
            raise CheckpointError(
                f"cannot download the official CocoER weights ({reason_of(exc)}); {_by_hand(where)}"
            ) from None
    raise CheckpointError(f"Google Drive asked for confirmation twice; {_by_hand(where)}")


def _members(archive: Path, folder: Path) -> dict[str, str]:
    """Archive member names for GWT.pth and w.pth ({'gwt': name, 'vi': name}); {} when not an archive."""
    try:
        names = member_names(archive)
    except OSError as exc:
        raise CheckpointError(f"cannot read the download ({reason_of(exc)}); {_by_hand(folder)}") from None
    if names is None:
        return {}
    if any(n.endswith("data.pkl") for n in names) and not any(n.endswith(".pth") for n in names):
        return {}  # a bare torch checkpoint (torch.save writes a zip too)
    found = {}
    for name in names:
        if Path(name).name == GWT_FILE and "__MACOSX" not in name:
            found["gwt"] = name
        elif Path(name).name == VI_FILE.name and "__MACOSX" not in name:
            found["vi"] = name
    return found


def _extract(archive: Path, member: str, target: Path, folder: Path) -> None:
    """`member` of the archive as `target`, whole or not at all: a damaged archive (a bad checksum, a cut
    stream) or a full disk is one line, and leaves neither `target` nor a partial copy beside it."""
    try:
        extract_whole(archive, member, target)
    except OSError as exc:
        raise CheckpointError(
            f"cannot unpack {member} from the download ({reason_of(exc)}); {_by_hand(folder)}"
        ) from None


def unpack(archive: Path, folder: Path) -> list[Path]:
    """GWT.pth and VI_weights/w.pth out of the download, into `folder` (a bare checkpoint is GWT.pth)."""
    members = _members(archive, folder)
    if not members:
        folder.mkdir(parents=True, exist_ok=True)
        with replaced_whole(folder / GWT_FILE) as partial:
            shutil.copyfile(archive, partial)
        return [folder / GWT_FILE]
    if "gwt" not in members:
        raise CheckpointError(f"the download holds no {GWT_FILE}; {_by_hand(folder)}")
    written = [folder / GWT_FILE]
    _extract(archive, members["gwt"], folder / GWT_FILE, folder)
    if "vi" in members:
        _extract(archive, members["vi"], folder / VI_FILE, folder)
        written.append(folder / VI_FILE)
    return written


def check_official(folder: Path) -> str:
    """Load GWT.pth (and w.pth when present) strictly into the model; one line saying what was checked."""
    path = folder / GWT_FILE
    state = read_cocoer_state(path)
    model = CocoER(CocoERConfig(num_class=classes_in(state, path)))
    load_state(model, state, path)
    checked = f"{path}: {len(state)} tensors, every key and shape as the model's ({model.config.num_class} classes)"
    if (folder / VI_FILE).is_file():
        load_vi_weights(model, folder / VI_FILE)
        checked += f"; {folder / VI_FILE}: W.weight 1024x1024"
    return checked


def fetch_official(folder: Path, url: str = DOWNLOAD_URL) -> str:
    """Download, unpack and check the official weights into `folder` (a line saying what is there)."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / GWT_FILE).is_file():
        return check_official(folder) + " (already there)"
    with scratch_folder(folder, SCRATCH_PREFIX) as scratch:
        written = unpack(download(url, scratch / "download", folder=folder), folder)
    try:
        return check_official(folder)
    except CheckpointError as exc:
        # Left there, the next fetch would find GWT.pth "already there" and a run would load it.
        for path in written:
            path.unlink(missing_ok=True)
        raise CheckpointError(f"{exc}; the download was not the official weights, removed it") from None
