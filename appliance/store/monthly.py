"""Tables partitioned by month: one durable table per ``YYYY-MM`` folder, loaded on use.

Memory and write cost follow the months in use, not the history: a write touches one
month's journal, and only the most recently used months stay in memory. ``versions`` counts
writes per month so that readers can cache what they derive from a month.
"""

from __future__ import annotations

import logging
import re
import shutil
from bisect import bisect_left
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

from .table import _Durable

log = logging.getLogger(__name__)
T = TypeVar("T", bound=_Durable)
MONTH = re.compile(r"\d{4}-\d{2}")


def months_between(start: float, end: float) -> list[str]:
    """``YYYY-MM`` of every month touched by [start, end]."""
    months: list[str] = []
    t = start
    while True:
        m = time.strftime("%Y-%m", time.localtime(t))
        if m not in months:
            months.append(m)
        if t >= end:
            break
        t = min(t + 86400 * 27, end)
    return months


def day_of(ts: float) -> str:
    """``YYYY-MM-DD`` of a time, in the box's local time."""
    return time.strftime("%Y-%m-%d", time.localtime(ts))


class Monthly(Generic[T]):
    """Month partitions under ``root``, each opened by ``factory(folder)``."""

    def __init__(self, root: Path, factory: Callable[[Path], T], in_memory: int = 3) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.factory = factory
        self.in_memory = in_memory
        self.problems: list[str] = []
        self.lost: list[str] = []
        self.on_problem: Callable[[], None] | None = None     # told when a load finds one
        self.versions: dict[str, int] = {}
        self.day_versions: dict[str, int] = {}
        self.drops: dict[str, int] = {}
        self._sorted_docs: dict[str, tuple[int, list[float], list[dict[str, Any]]]] = {}
        self._open: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.RLock()
        self._checked = threading.Condition(self._lock)
        self._checking: str | None = None       # the month ``verify`` is reading, unlocked

    def __call__(self, month: str) -> T:
        """The table of ``month`` (created if needed)."""
        if not MONTH.fullmatch(month):
            raise ValueError(f"{month!r} is not a month (YYYY-MM)")
        with self._lock:
            while self._checking == month:      # no second copy of a month being read
                self._checked.wait()
            table = self._open.get(month)
            if table is None:
                table = self.factory(self.root / month)
                self._note(table)
                self._open[month] = table
                while len(self._open) > self.in_memory:
                    gone, old = self._open.popitem(last=False)
                    self._sorted_docs.pop(gone, None)
                    old.close()
            self._open.move_to_end(month)
            return table

    def _note(self, table: T) -> None:
        # a month with corrupt journal lines reports them at every load: once is enough
        new = [p for p in table.problems if p not in self.problems]
        self.problems += new
        self.lost += [p for p in table.lost if p not in self.lost]
        if new and self.on_problem is not None:
            self.on_problem()

    def exists(self, month: str) -> bool:
        return (self.root / month).is_dir()

    def months(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and MONTH.fullmatch(p.name))

    def touched(self, month: str, *timestamps: float) -> None:
        """Note a write to ``month`` touching documents of the days of ``timestamps``."""
        self.versions[month] = self.versions.get(month, 0) + 1
        for ts in timestamps:
            day = day_of(ts)
            self.day_versions[day] = self.day_versions.get(day, 0) + 1

    def version(self, month: str) -> int:
        return self.versions.get(month, 0)

    def day_version(self, day: str) -> tuple[int, int]:
        """Changes when a document of ``day`` (``YYYY-MM-DD``) is written or its month dropped."""
        return self.drops.get(day[:7], 0), self.day_versions.get(day, 0)

    def between(self, start: float, end: float, docs: Callable[[T], Iterable[dict[str, Any]]],
                ts_key: str) -> list[dict[str, Any]]:
        """Documents whose ``ts_key`` time is in [start, end), found by bisection in each
        month's documents sorted by time (sorted once per month version)."""
        out: list[dict[str, Any]] = []
        for month in months_between(start, end):
            if self.exists(month):
                times, sorted_docs = self._sorted(month, docs, ts_key)
                out += sorted_docs[bisect_left(times, start):bisect_left(times, end)]
        return out

    def _sorted(self, month: str, docs: Callable[[T], Iterable[dict[str, Any]]],
                ts_key: str) -> tuple[list[float], list[dict[str, Any]]]:
        with self._lock:
            table = self(month)
            hit = self._sorted_docs.get(month)
            if hit is not None and hit[0] == self.version(month):
                return hit[1], hit[2]
            pairs = sorted(((d.get(ts_key) or 0, d) for d in docs(table)), key=lambda p: p[0])
            times = [t for t, _ in pairs]
            ordered = [d for _, d in pairs]
            self._sorted_docs[month] = (self.version(month), times, ordered)
            return times, ordered

    def drop(self, month: str) -> None:
        """Delete a whole month (retention)."""
        with self._lock:
            while self._checking == month:
                self._checked.wait()
            table = self._open.pop(month, None)
            if table is not None:
                table.close()
            shutil.rmtree(self.root / month, ignore_errors=True)
            self._sorted_docs.pop(month, None)
            self.touched(month)
            self.drops[month] = self.drops.get(month, 0) + 1

    def verify(self, stop: threading.Event | None = None,
               months: Iterable[str] | None = None) -> int:
        """Load once each of ``months`` (default: all) not in memory, so that their damage
        is found, repaired where it can be and reported through ``on_problem`` now, not when
        someone first opens them. Returns how many months were loaded."""
        checked = 0
        for month in self.months() if months is None else months:
            if stop is not None and stop.is_set():
                break
            with self._lock:
                if month in self._open or not self.exists(month):
                    continue
                self._checking = month
            try:                        # read without the lock: other months stay usable
                table = self.factory(self.root / month)
                table.close()
            except OSError as exc:      # unreadable now: said, and read again when used
                log.error("store month not checked", extra={"month": month, "reason": str(exc)})
                continue
            finally:
                with self._lock:
                    self._checking = None
                    self._checked.notify_all()
            with self._lock:
                self._note(table)
            checked += 1
        return checked

    def close(self) -> None:
        with self._lock:
            for table in self._open.values():
                table.close()
            self._open.clear()


class MonthlyParts:
    """A store made of month files only (``self.partitions``): its damage is theirs."""

    partitions: Monthly[Any]

    @property
    def problems(self) -> list[str]:
        return self.partitions.problems

    @property
    def lost(self) -> list[str]:
        return self.partitions.lost
