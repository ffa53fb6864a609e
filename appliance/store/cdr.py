"""PBX call records on the box, one durable map per month of the call's start."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .monthly import Monthly, MonthlyParts
from .table import DurableMap


class CdrStore(MonthlyParts):
    """Rows from ``cdr.record.normalise`` under ``<data_dir>/store/cdr/``."""

    def __init__(self, data_dir: Path, months_in_memory: int = 2) -> None:
        self.partitions: Monthly[DurableMap] = Monthly(
            data_dir / "store" / "cdr",
            lambda folder: DurableMap(folder, kind="cdr", str_keys=True), months_in_memory)
        self._lock = threading.Lock()

    def add(self, rows: list[dict[str, Any]]) -> int:
        """Store rows (a row with a known id replaces it); durable when this returns.
        Returns how many were new."""
        by_month: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for row in rows:
            by_month.setdefault(row["month"], []).append((row["id"], row))
        new = 0
        with self._lock:
            for month, items in by_month.items():
                table = self.partitions(month)
                new += sum(1 for key, _ in items if key not in table.docs)
                table.put_many(items)
                self.partitions.touched(month, *(r["start"] for _, r in items))
        return new

    def rows(self, start: float, end: float) -> list[dict[str, Any]]:
        """Rows whose call started in [start, end), oldest first."""
        out = self.partitions.between(start, end, lambda t: t.docs.values(), "start")
        return sorted(out, key=lambda r: r["start"])

    def months(self) -> list[str]:
        return self.partitions.months()

    def close(self) -> None:
        self.partitions.close()
