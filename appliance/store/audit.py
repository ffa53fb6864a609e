"""Who did what on the box: logins, setting changes, imports, who listened to which call.
Append-only, one durable map per month."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from .migrations import CURRENT
from .monthly import Monthly
from ..core.times import month_of
from .table import DurableMap


class AuditLog:
    def __init__(self, folder: Path) -> None:
        self.partitions: Monthly[DurableMap] = Monthly(
            folder, lambda f: DurableMap(f, kind="audit", str_keys=True), in_memory=2)
        self._seq = itertools.count()

    @property
    def problems(self) -> list[str]:
        return self.partitions.problems

    @property
    def lost(self) -> list[str]:
        return self.partitions.lost

    def record(self, actor: str, action: str, target: str = "", **detail: Any) -> dict[str, Any]:
        """Append an entry; durable when this returns."""
        now = time.time()
        entry = {"schema": CURRENT["audit"], "at": now, "actor": actor, "action": action,
                 "target": target, "detail": detail}
        key = f"{time.time_ns():020d}-{next(self._seq)}"
        self.partitions(month_of(now)).put(key, entry)
        return entry

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest entries, newest first."""
        out: list[dict[str, Any]] = []
        for month in reversed(self.partitions.months()):
            docs = self.partitions(month).docs
            out += [docs[k] for k in sorted(docs, reverse=True)[:limit - len(out)]]
            if len(out) >= limit:
                break
        return out

    def close(self) -> None:
        self.partitions.close()
