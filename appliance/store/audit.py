"""Who did what on the box: logins, setting changes, imports, who listened to which call.
Append-only, one durable map per month."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from .migrations import CURRENT
from .monthly import Monthly, MonthlyParts
from ..core.times import month_of
from .table import DurableMap


class AuditLog(MonthlyParts):
    def __init__(self, folder: Path) -> None:
        self.partitions: Monthly[DurableMap] = Monthly(
            folder, lambda f: DurableMap(f, kind="audit", str_keys=True), in_memory=2)
        self._seq = itertools.count()

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

    def find(self, start: float, end: float, actor: str = "", action: str = "", target: str = "",
             limit: int = 1000) -> list[dict[str, Any]]:
        """Entries in [start, end), newest first, whose actor and action equal the given
        ones and whose target contains ``target`` (empty: any)."""
        out: list[dict[str, Any]] = []
        for month in reversed(self.partitions.months()):
            if month > month_of(end) or month < month_of(start):
                continue
            docs = self.partitions(month).docs
            for key in sorted(docs, reverse=True):
                e = docs[key]
                if not start <= e["at"] < end or (actor and e["actor"] != actor) or \
                        (action and e["action"] != action) or (target and target not in e["target"]):
                    continue
                out.append(e)
                if len(out) >= limit:
                    return out
        return out

    def forget_before(self, cutoff: float) -> list[str]:
        """Drop whole months that ended before ``cutoff`` (retention.audit_days); the only
        way entries leave the log."""
        old = [m for m in self.partitions.months() if m < month_of(cutoff)]
        for month in old:
            self.partitions.drop(month)
        return old

    def close(self) -> None:
        self.partitions.close()
