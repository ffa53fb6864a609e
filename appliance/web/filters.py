"""Jinja filters: times in the box's local time, durations, shares, changes."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, current_app

from .i18n import gettext


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


def who(agent: Any) -> str:
    """A manager by name (``kpi.names``), else by extension."""
    if not agent:
        return "—"
    return current_app.extensions["settings"].kpi.names.get(agent) or str(agent)


def whom(agents: Any) -> str:
    """Several managers by name, e.g. who a missed call rang."""
    return ", ".join(who(a) for a in agents or []) or "—"


def tagname(tag: Any) -> str:
    """A dictionary tag in the panel's language; a tag of the user's own dictionaries as is."""
    return untranslated(gettext(f"tag_{tag}"), tag)


def untranslated(text: str, original: Any) -> str:
    """``text``, a catalog lookup of a symbolic key, or ``original`` when the catalog has
    none (the key came back as it was)."""
    return str(original) if "_" in text and text.split("_", 1)[1] == str(original) else text


def spark(values: Any, width: float = 90, height: float = 24) -> str:
    """SVG polyline points of a small chart; periods without a figure are left out."""
    values = list(values or [])
    known = [v for v in values if isinstance(v, (int, float))]
    if not known:
        return ""
    low, high = min(known), max(known)
    step = width / max(1, len(values) - 1)
    span = (high - low) or 1

    def y(v: float) -> float:
        return round(height - 2 - (v - low) / span * (height - 4), 1) if high != low else height / 2

    return " ".join(f"{round(i * step, 1)},{y(v)}" for i, v in enumerate(values)
                    if isinstance(v, (int, float)))


def figure(value: Any, fmt: str) -> str:
    """A figure as its column shows it."""
    if fmt == "pct":
        return pct(value)
    if fmt == "dur":
        return dur(value)
    if fmt == "score":
        return num(value, 0)
    if fmt == "money":
        return "—" if value is None else f"{value:,.0f}".replace(",", " ")
    if fmt == "int" and isinstance(value, (int, float)):
        return str(round(value))
    return num(value)


def install(app: Flask) -> None:
    """Register the formatting filters (``wording`` adds its own on top of them)."""
    for f in (when, clock, dur, uptime, pct, num, change, trend_class, who, whom, tagname,
              spark, figure, untranslated):
        app.add_template_filter(f)
