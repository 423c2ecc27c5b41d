"""Strings from outside, escaped for where they land in a page we write or serve.

- `text`: element content and quoted attribute values (`&`, `<`, `>`, quotes).
- `href`: a link target. Only `http(s)://` links and relative paths are
  kept; a relative path is percent-encoded segment by segment and starts
  with `./`, so a file named `javascript:alert(1)` stays a file name and
  never becomes a URL scheme.
- `script_json`: data inside a `<script>` element. `<`, `>` and `&` are
  written as JSON escapes, so no name can close the element or open an HTML
  comment in it (which would stop the page's script), and U+2028/U+2029 can
  not end a JavaScript string.
"""

from __future__ import annotations

import html
import json
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit


def text(value: object) -> str:
    """Escaped for HTML text and double- or single-quoted attribute values."""
    return html.escape(str(value), quote=True)


def href(link: str | PurePosixPath) -> str:
    """A safe, escaped link target: http(s) URLs as they are, anything else as a relative path."""
    value = str(link)
    try:
        scheme = urlsplit(value).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme in ("http", "https") and "://" in value:
        return text(value)
    segments = [quote(part, safe="") for part in PurePosixPath(value).parts if part not in ("/", "")]
    return text("./" + "/".join(segments))


_SCRIPT_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def script_json(data: Any) -> str:
    """JSON that can sit inside a `<script>` element whatever strings it holds."""
    encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return encoded.translate(_SCRIPT_ESCAPES)
