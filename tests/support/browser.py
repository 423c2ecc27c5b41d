"""Debian's headless Chromium, as the tests drive it: the DOM after scripts ran, and the links in it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

#: Flags that keep a headless Chromium quiet on a machine with no internet (ENVIRONMENT.md).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    return browser


def dump_dom(url: str, budget_ms: int | None = 3000, timeout: float = 120) -> str:
    """The page's DOM once its scripts ran (no time budget for pages that keep polling)."""
    with tempfile.TemporaryDirectory() as profile:
        args = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url]
        if budget_ms is not None:
            args.insert(-2, f"--virtual-time-budget={budget_ms}")
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def elements(dom: str, tag: str) -> list[dict[str, str | None]]:
    """The attributes of every `tag` element in a DOM dump."""
    parser = _Elements()
    parser.feed(dom)
    return [attrs for name, attrs in parser.elements if name == tag]
