"""Data files shipped inside installed packages, found without importing them.

Importing a package to ask where it lives can cost seconds (facenet-pytorch's
`__init__` pulls in torchvision's detection ops and torch's compiler stack);
its import spec names the folder for free.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_file(package: str, *parts: str) -> Path:
    """`<package's folder>/<parts...>`; FileNotFoundError saying whether the package or the file is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {package} package is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package} package")
    return path
