"""The one place where strings from the sandbox are made safe to store and show.

PostgreSQL refuses NUL characters and lone surrogates cannot be encoded as UTF-8, so
either would make the results of a whole job unstorable; and any string the student
controls must have a size the service chose.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00\ud800-\udfff]")
ELLIPSIS = " [...]"


def clean(value: object, limit: int) -> str:
    """`value` as text without NUL or surrogates, at most `limit` characters."""
    if not isinstance(value, str):
        try:
            value = str(value)
        except Exception:
            value = "<unprintable>"
    if len(value) > limit * 2:  # do not scan megabytes for a result we cut anyway
        value = value[: limit * 2]
        text = _UNSAFE.sub("", value)
        return cut(text, limit, force=True)
    return cut(_UNSAFE.sub("", value), limit)


def cut(text: str, limit: int, force: bool = False) -> str:
    if len(text) <= limit and not force:
        return text
    keep = max(0, limit - len(ELLIPSIS))
    return text[:keep] + ELLIPSIS


def clean_tail(value: object, limit: int) -> str:
    """Like clean(), but keeps the end (where a traceback says what went wrong)."""
    text = value if isinstance(value, str) else clean(value, limit)
    if len(text) > limit * 2:
        text = text[-limit * 2 :]
    text = _UNSAFE.sub("", text)
    if len(text) <= limit:
        return text
    return "[...] " + text[-max(0, limit - 6) :]
