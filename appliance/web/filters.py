"""Jinja filters: times in the box's local time, durations, shares, changes."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask


def when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "—"


def clock(ts: Any) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "—"


def dur(seconds: Any) -> str:
    if seconds is None:
        return "—"
    s = int(round(float(seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def uptime(seconds: Any) -> str:
    """A long duration in words ('1 d 2 h 37 min'): '26:37' would read as a time of day."""
    if seconds is None:
        return "—"
    m = int(float(seconds)) // 60
    days, hours, minutes = m // 1440, m // 60 % 24, m % 60
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(days or hours) + [f"{minutes} min"]
    return " ".join(parts)


def pct(share: Any) -> str:
    return "—" if share is None else f"{float(share) * 100:.0f}%"


def num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def change(c: Any, better: str = "up") -> str:
    """A period-over-period change as text: '+12%' / '−0.3'; empty when unknown."""
    if not c:
        return ""
    if c.get("relative") is not None:
        v = c["relative"] * 100
        return f"{'+' if v >= 0 else '−'}{abs(v):.0f}%"
    return f"{'+' if c['delta'] >= 0 else '−'}{abs(c['delta']):g}"


def trend_class(c: Any, better: str = "up") -> str:
    if not c or not c.get("delta"):
        return "flat"
    good = (c["delta"] > 0) == (better == "up")
    return "good" if good else "bad"


def install(app: Flask) -> None:
    for f in (when, clock, dur, uptime, pct, num, change, trend_class):
        app.add_template_filter(f)
