"""The one boundary for text a remote party controls: SMTP replies and greetings, the exception texts
of the SMTP and TLS libraries, certificate fields, DNS data (PTR names, TXT strings) and the headers
of canary messages.

Everything such text reaches (the report JSON, the database, the pages, the operator's terminal)
gets it through ``safe_text``: no C0 or C1 controls but tab (so no NUL, no terminal escapes, no
BEL), no other unprintable or invisible characters (bidi overrides, line separators), no lone
surrogates (invalid UTF-8 decoded with surrogateescape, which neither UTF-8 nor PostgreSQL can
store), and a bounded length.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
MAX_TEXT = 2048  # characters, when the caller names no bound of its own
# Surrogates that surrogateescape never makes (it makes U+DC80 to U+DCFF, one per undecodable byte).
FOREIGN_SURROGATES = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def safe_text(value: str | bytes | object, limit: int | None = MAX_TEXT) -> str:
    """``value`` (text, bytes as UTF-8, or anything else as its str) made safe to store, render and print.

    Every unsafe character becomes U+FFFD, so a reader sees that something was there; ``limit``
    None keeps the whole length (for text that was bounded where it came in).
    """
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        text = value if isinstance(value, str) else str(value)
        # Bytes that surrogateescape kept as lone surrogates become those bytes again: valid UTF-8
        # split across them is whole again, and each invalid byte is one U+FFFD.
        text = (
            FOREIGN_SURROGATES.sub(REPLACEMENT, text)
            .encode("utf-8", "surrogateescape")
            .decode("utf-8", "replace")
        )
    if limit is not None:
        text = text[:limit]
    if text.isprintable():  # nearly every line: one pass in C instead of one per character
        return text
    return "".join(ch if ch.isprintable() or ch == "\t" else REPLACEMENT for ch in text)
