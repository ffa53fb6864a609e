"""Times as PBXs, sidecars and the store write them."""

from __future__ import annotations

import re
import time
from datetime import datetime, tzinfo
from typing import Any

EARLIEST = 946684800.0          # 2000-01-01: anything before is a clock or parsing fault
SKEW_S = 86400 * 2              # a PBX clock this far ahead of the box is still believed


def month_of(ts: float) -> str:
    """'YYYY-MM' of an epoch time in the box's local time."""
    return time.strftime("%Y-%m", time.localtime(ts))


def parse_time(value: Any, field: str, tz: tzinfo | None = None) -> float | None:
    """Epoch seconds from epoch numbers (seconds or milliseconds), ISO 8601 or
    'YYYY-MM-DD HH:MM:SS'. Naive times are in ``tz`` (None: the box's local time).

    Raises ValueError naming ``field`` and what is expected."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field}: {value!r} is not a time")
    if isinstance(value, (int, float)):
        ts = float(value)
    else:
        text = str(value).strip()
        if re.fullmatch(r"\d{9,10}(\.\d+)?", text):
            ts = float(text)
        elif re.fullmatch(r"\d{12,13}", text):      # milliseconds
            ts = int(text) / 1000
        else:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"{field}: {text[:40]!r} is not a time (use ISO 8601, e.g. "
                                 "2026-11-24T10:15:00+03:00, or epoch seconds)") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=tz) if tz is not None else dt.astimezone()
            ts = dt.timestamp()
    if not EARLIEST <= ts <= time.time() + SKEW_S:
        raise ValueError(f"{field}: {value!r} is outside 2000 .. now")
    return ts
