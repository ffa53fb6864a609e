"""Reporting periods: a day (``2026-11-24``), an ISO week (``2026-W48``) or a month
(``2026-11``), in the box's local time, from 1970 to 9998 (the period after the last one,
the one a year before the first, still have times)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta


MIN_YEAR, MAX_YEAR = 1970, 9998
RANGE = f"from {MIN_YEAR}-01-01 to {MAX_YEAR}-12-31"


def check_date(d: date, name: str) -> date:
    """``d`` if within the years the box reports on; ValueError naming ``name`` otherwise."""
    if not MIN_YEAR <= d.year <= MAX_YEAR:
        raise ValueError(f"{name}: {d.isoformat()} is out of range; use a date {RANGE}")
    return d


@dataclass(frozen=True)
class Period:
    kind: str            # "day" | "week" | "month"
    first: date          # first day
    last: date           # day after the last day

    @property
    def name(self) -> str:
        if self.kind == "day":
            return self.first.isoformat()
        if self.kind == "week":
            year, week, _ = self.first.isocalendar()
            return f"{year}-W{week:02d}"
        return self.first.strftime("%Y-%m")

    @property
    def start(self) -> float:
        return datetime.combine(self.first, datetime.min.time()).timestamp()

    @property
    def end(self) -> float:
        return datetime.combine(self.last, datetime.min.time()).timestamp()

    def shifted(self, n: int) -> "Period":
        """The period ``n`` periods later (negative: earlier)."""
        if self.kind == "day":
            return _day(self.first + timedelta(days=n))
        if self.kind == "week":
            return _week(self.first + timedelta(weeks=n))
        month = self.first.year * 12 + self.first.month - 1 + n
        return _month(month // 12, month % 12 + 1)

    def year_ago(self) -> "Period":
        if self.kind == "month":
            return self.shifted(-12)
        if self.kind == "week":
            year, week, _ = self.first.isocalendar()
            try:
                return _week(date.fromisocalendar(year - 1, week, 1))
            except ValueError:       # week 53 has no twin
                return _week(date.fromisocalendar(year - 1, 52, 1))
        try:
            return _day(self.first.replace(year=self.first.year - 1))
        except ValueError:           # 29 February
            return _day(self.first.replace(year=self.first.year - 1, day=28))


def _day(d: date) -> Period:
    return Period("day", d, d + timedelta(days=1))


def _week(d: date) -> Period:
    monday = d - timedelta(days=d.weekday())
    return Period("week", monday, monday + timedelta(days=7))


def _month(year: int, month: int) -> Period:
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return Period("month", first, nxt)


def parse_period(text: str) -> Period:
    """``2026-11-24``, ``2026-W48`` or ``2026-11``; ValueError says what is expected."""
    text = (text or "").strip()
    m = re.match(r"(\d{4})-", text)
    if m and not MIN_YEAR <= int(m.group(1)) <= MAX_YEAR:
        raise ValueError(f"period {text[:20]!r}: out of range; use a period {RANGE}")
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return _day(date.fromisoformat(text))
        m = re.fullmatch(r"(\d{4})-W(\d{2})", text)
        if m:
            return _week(date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1))
        m = re.fullmatch(r"(\d{4})-(\d{2})", text)
        if m:
            return _month(int(m.group(1)), int(m.group(2)))
    except ValueError:
        pass
    raise ValueError(f"period {text[:20]!r}: use a day (2026-11-24), an ISO week (2026-W48) "
                     "or a month (2026-11)")


def current(kind: str, now: float) -> Period:
    """The period of ``kind`` that contains ``now``."""
    today = datetime.fromtimestamp(now).date()
    if kind == "day":
        return _day(today)
    if kind == "week":
        return _week(today)
    if kind == "month":
        return _month(today.year, today.month)
    raise ValueError(f"period kind {kind!r}: use day, week or month")
