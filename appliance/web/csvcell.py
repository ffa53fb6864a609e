"""CSV cells a spreadsheet will not run: exports carry names, numbers and notes that came
from callers, PBXs and users."""

from __future__ import annotations

import re
from typing import Any

NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")


def cell(value: Any) -> str:
    """``value`` as text; prefixed with ' when a spreadsheet would take it as a formula
    (a leading = + - @, also after blanks or a line break). Plain numbers, +79161234567 and
    -5 included, stay numbers."""
    text = "" if value is None else str(value)
    if NUMBER.fullmatch(text):
        return text
    if text.lstrip(" \t\r\n")[:1] in TRIGGERS or text[:1] in TRIGGERS:
        return "'" + text
    return text
