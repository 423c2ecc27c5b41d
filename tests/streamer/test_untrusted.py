"""Strings from outside: credentials masked, names reduced to safe file names, HTML escaped for its context."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from streamer import html_safe
from streamer.redact import RedactingFilter, mask_url, printable, redact_text, url_name, url_secrets
from streamer.safe_names import MAX_NAME_BYTES, is_safe_name, safe_name
from streamer.sources.entries import unique_names

SECRET = "hunter2-Sekr3t"
CREDENTIAL_PARAMS = [
    "password",
    "pwd",
    "passwd",
    "pass",
    "token",
    "auth",
    "api_key",
    "apikey",
    "sig",
    "X-Amz-Signature",
]
HOSTILE_NAMES = [
    pytest.param("/tmp/outside/abs", id="absolute"),
    pytest.param("../../escape", id="dot-dot"),
    pytest.param("javascript:alert(document.domain)", id="scheme"),
    pytest.param("</script><!--<script>alert(1)//", id="script-and-comment-openers"),
    pytest.param("Zoë \"double\" 'single' <b>x</b> ünïcödé 日本", id="quotes-and-non-ascii"),
    pytest.param("x" * 300, id="very-long"),
    pytest.param("..", id="only-dots"),
    pytest.param(".hidden", id="hidden"),
    pytest.param("-rf", id="option-like"),
    pytest.param("a\nb\x1b[2J\x00c", id="control-characters"),
    pytest.param("C:\\Windows\\evil", id="backslashes"),
]


@pytest.mark.parametrize("param", CREDENTIAL_PARAMS)
@pytest.mark.parametrize(
    "url",
    [
        "rtsp://10.0.0.5:554/Streaming/Channels/101?{param}={secret}",
        "rtsp://cam.local/live?user=admin&{param}={secret}&channel=1",
        "http://cam.local/video.mjpg?{param}={secret}#frag",
        "rtsp://admin:{secret}@cam.local/live?{param}={secret}",
    ],
    ids=["only-param", "among-others", "http-with-fragment", "userinfo-too"],
)
def test_query_string_credentials_are_masked_everywhere(url: str, param: str) -> None:
    url = url.format(param=param, secret=SECRET)
    shown = mask_url(url)
    assert SECRET not in shown and "***" in shown
    assert "cam.local" in shown or "10.0.0.5" in shown, "the rest of the URL stays readable"
    assert SECRET in url_secrets(url)
    # FFmpeg's errors repeat the URL: masked by pattern even when the secret is not known.
    assert SECRET not in redact_text(f"[rtsp @ 0x55] Could not open {url}: 401 Unauthorized")
    assert SECRET not in url_name(url) and "?" not in url_name(url)


def test_harmless_query_parameters_and_user_names_stay() -> None:
    shown = mask_url("rtsp://admin:pw@cam/live?user=admin&channel=2&subtype=0")
    assert shown == "rtsp://admin:***@cam/live?user=admin&channel=2&subtype=0"
    assert mask_url("rtsp://cam/live?s3cretvalue") == "rtsp://cam/live?***", "a nameless value: when in doubt, mask"


def test_encoded_secrets_are_scrubbed_in_every_form() -> None:
    url = "rtsp://cam/live?password=p%40ss%2Fword"
    text = "could not open rtsp://cam/live?password=p%40ss%2Fword (p@ss/word rejected)"
    clean = redact_text(text, url_secrets(url))
    assert "p%40ss" not in clean and "p@ss/word" not in clean


def test_the_log_filter_masks_what_any_library_logs(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("some.library")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter((SECRET,)))
    logger.addHandler(handler)
    try:
        logger.warning("opening %s", f"rtsp://u:{SECRET}@cam/x?token={SECRET}")
        logger.warning("a known secret on its own: %s", SECRET)
    finally:
        logger.removeHandler(handler)
    assert seen and all(SECRET not in line for line in seen)


def test_printable_makes_one_terminal_safe_line() -> None:
    line = printable("error: bad\nname\x1b[31m red\u2028")
    assert "\n" not in line and "\x1b" not in line and "\u2028" not in line
    assert "\\x0a" in line and "\\x1b" in line


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_name_becomes_a_plain_file_name(name: str, tmp_path: Path) -> None:
    safe = safe_name(name)
    assert is_safe_name(safe)
    assert "/" not in safe and "\\" not in safe and ":" not in safe and "<" not in safe
    assert not safe.startswith((".", "-", " ")) and len(safe.encode()) <= MAX_NAME_BYTES
    assert all(ch.isprintable() for ch in safe)
    out = tmp_path / "out"
    out.mkdir()
    target = (out / f"{safe}_20261205-101500-22_001.mp4").resolve()
    assert target.parent == out.resolve(), "it names a file inside --out, suffixes and all"
    target.write_bytes(b"ok")  # and the file system takes it


def test_ordinary_names_come_through_unchanged() -> None:
    for name in ("lobby", "cam-2", "Zoë ünïcödé", "clip (1)", "day1.part+2", "日本"):
        assert safe_name(name) == name


def test_unique_names_are_safe_and_unique_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    names = unique_names(["/tmp/x", "tmp_x", "../x", "x", "y" * 300, "y" * 300])
    assert names[:4] == ["tmp_x", "tmp_x-2", "x", "x-2"]
    assert names[4] != names[5] and all(is_safe_name(n) for n in names)
    assert "'/tmp/x' becomes 'tmp_x'" in caplog.text


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("javascript:alert(1)_persons/track_1.csv", "./javascript%3Aalert%281%29_persons/track_1.csv"),
        ("data:text/html,<script>x</script>", "./data%3Atext/html%2C%3Cscript%3Ex%3C/script%3E"),
        ("JaVaScRiPt:alert(1)", "./JaVaScRiPt%3Aalert%281%29"),
        ("https://example.org/a?b=1&c=<x>", "https://example.org/a?b=1&amp;c=&lt;x&gt;"),
        ('x" onmouseover="alert(1)/track_1.csv', "./x%22%20onmouseover%3D%22alert%281%29/track_1.csv"),
    ],
)
def test_links_are_http_or_relative_only(link: str, expected: str) -> None:
    assert html_safe.href(link) == expected


def test_script_data_cannot_close_its_element_or_open_a_comment() -> None:
    hostile = {"name": "</script><!--<script>alert(1)//\u2028&amp;", "labels": ["<b>", "x'y\"z"]}
    encoded = html_safe.script_json(hostile)
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded and "\u2028" not in encoded
    assert json.loads(encoded) == hostile
