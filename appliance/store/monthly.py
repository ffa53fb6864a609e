"""Tables partitioned by month: one durable table per ``YYYY-MM`` folder, loaded on use.

Memory and write cost follow the months in use, not the history: a write touches one
month's journal, and only the most recently used months stay in memory. ``versions`` counts
writes per month so that readers can cache what they derive from a month.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from .table import _Durable

T = TypeVar("T", bound=_Durable)
MONTH = re.compile(r"\d{4}-\d{2}")


class Monthly(Generic[T]):
    """Month partitions under ``root``, each opened by ``factory(folder)``."""

    def __init__(self, root: Path, factory: Callable[[Path], T], in_memory: int = 3) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.factory = factory
        self.in_memory = in_memory
        self.problems: list[str] = []
        self.versions: dict[str, int] = {}
        self._open: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.RLock()

    def __call__(self, month: str) -> T:
        """The table of ``month`` (created if needed)."""
        if not MONTH.fullmatch(month):
            raise ValueError(f"{month!r} is not a month (YYYY-MM)")
        with self._lock:
            table = self._open.get(month)
            if table is None:
                table = self.factory(self.root / month)
                self.problems += table.problems
                self._open[month] = table
                while len(self._open) > self.in_memory:
                    _, old = self._open.popitem(last=False)
                    old.close()
            self._open.move_to_end(month)
            return table

    def exists(self, month: str) -> bool:
        return (self.root / month).is_dir()

    def months(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and MONTH.fullmatch(p.name))

    def touched(self, month: str) -> None:
        """Note a write to ``month`` (for caches)."""
        self.versions[month] = self.versions.get(month, 0) + 1

    def version(self, month: str) -> int:
        return self.versions.get(month, 0)

    def drop(self, month: str) -> None:
        """Delete a whole month (retention)."""
        with self._lock:
            table = self._open.pop(month, None)
            if table is not None:
                table.close()
            shutil.rmtree(self.root / month, ignore_errors=True)
            self.touched(month)

    def close(self) -> None:
        with self._lock:
            for table in self._open.values():
                table.close()
            self._open.clear()
