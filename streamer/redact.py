"""Keeping credentials out of everything we print, log, show or use to name a file.

Cameras take credentials in two places of a URL: the userinfo
(`rtsp://user:pw@cam/stream`) and the query string (`?user=admin&password=pw`,
`?token=...`, `&sig=...`). Both are masked wherever a URL is printed or
shown (`mask_url`), in free text that may repeat one (FFmpeg's errors,
`redact_text`), and a URL never names a file with its query (`url_name`).

A query parameter counts as a credential when its name contains one of
`CREDENTIAL_WORDS` (case-insensitive), or when it has no name at all
(`?s3cret`): when in doubt, mask.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"
#: Substrings of a query parameter's name that make its value a secret.
CREDENTIAL_WORDS = (
    "pass",
    "pwd",
    "token",
    "auth",
    "key",
    "sig",
    "secret",
    "cred",
    "session",
    "sid",
    "jwt",
    "bearer",
    "cookie",
    "otp",
    "hash",
    "ticket",
    "code",
    "login",
)
_CREDENTIAL_NAME = "|".join(CREDENTIAL_WORDS)
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<password>[^@/\s]*)@")
#: `?name=value` or `&name=value` (also `;`) with a credential-like name, anywhere in free text.
_QUERY_CREDENTIAL = re.compile(
    rf"(?P<head>[?&;][^=&#\s'\"<>]*(?:{_CREDENTIAL_NAME})[^=&#\s'\"<>]*=)(?P<value>[^&#\s'\"<>]*)", re.IGNORECASE
)


def is_credential_name(name: str) -> bool:
    """Whether a query parameter of this name may carry a secret (a nameless one may)."""
    lowered = name.lower()
    return not lowered or any(word in lowered for word in CREDENTIAL_WORDS)


def _mask_query(query: str) -> str:
    """Each `name=value` pair kept as written, its value masked when the name suggests a credential."""
    if not query:
        return query
    parts = []
    for pair in re.split(r"([&;])", query):
        if pair in ("&", ";") or not pair:
            parts.append(pair)
            continue
        name, eq, _ = pair.partition("=")
        if not eq:
            parts.append(MASK)  # `?s3cret`: a value with no name
        elif is_credential_name(unquote(name)):
            parts.append(f"{name}={MASK}")
        else:
            parts.append(pair)
    return "".join(parts)


def mask_url(url: str) -> str:
    """The URL with its password and every credential-like query value replaced by `***` (user name kept)."""
    try:
        parts = urlsplit(url)
        password = parts.password
        port = parts.port
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if password is not None:
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:{MASK}@{host}{f':{port}' if port is not None else ''}"
    return urlunsplit((parts.scheme, netloc, parts.path, _mask_query(parts.query), _mask_query(parts.fragment)))


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a URL holds (password, credential-like query values), raw and decoded, to scrub from any text."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
    except ValueError:
        return ()
    for query in (parts.query, parts.fragment):
        for pair in re.split(r"[&;]", query):
            name, eq, value = pair.partition("=")
            if not eq:
                found.append(name)
            elif is_credential_name(unquote(name)):
                found.append(value)
    out: list[str] = []
    for secret in found:
        for form in (secret, unquote(secret), quote(unquote(secret), safe="")):
            if len(form) >= 2 and form not in out:  # a 1-character "secret" would shred every line
                out.append(form)
    return tuple(sorted(out, key=len, reverse=True))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text (FFmpeg errors, exception messages) with any URL credentials masked, plus known secrets."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _QUERY_CREDENTIAL.sub(lambda m: f"{m['head']}{MASK}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def url_name(url: str) -> str:
    """A URL's host and path, for naming outputs: no scheme, no userinfo, no query, no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    return f"{host}{f'_{port}' if port else ''}{parts.path}"


class RedactingFilter(logging.Filter):
    """Masks URL credentials (and the run's known secrets) in every log record before any handler sees it."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """One line safe for a terminal: control characters (newlines, ANSI escapes) shown as `\\xNN`."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", text
    )
