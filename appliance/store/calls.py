"""Calls on the box: one durable table per month (``Monthly``), loaded when a query needs
that month, and an index from each call's uid to its month."""

from __future__ import annotations

import logging
import threading
import zlib
from pathlib import Path
from typing import Any

from tinydb import Query

from .monthly import Monthly
from .records import call_record
from .table import DurableMap, DurableTable

log = logging.getLogger(__name__)

MONTHS_IN_MEMORY = 3


def _doc_id(uid: str) -> int:
    """A stable document id for a uid (tinydb ids are ints); collisions are resolved by the
    index, which stores the id actually used."""
    return zlib.crc32(uid.encode()) & 0x7FFFFFFF or 1


class CallStore:
    """Call records under ``<data_dir>/store/calls/``."""

    def __init__(self, data_dir: Path, months_in_memory: int = MONTHS_IN_MEMORY) -> None:
        self.root = data_dir / "store" / "calls"
        self.partitions: Monthly[DurableTable] = Monthly(
            self.root, lambda folder: DurableTable(folder, kind="call"), months_in_memory)
        self.index = DurableMap(data_dir / "store" / "index")
        # uid -> (month, id); one id per uid, unique over all months (the index's doc id)
        self._uid_month: dict[str, tuple[str, int]] = {
            d["uid"]: (d["month"], i) for i, d in self.index.docs.items()}
        self._ids = {i for _, i in self._uid_month.values()}
        self._lock = threading.RLock()

    @property
    def problems(self) -> list[str]:
        return self.index.problems + self.partitions.problems

    def month(self, month: str) -> DurableTable:
        """The table of one month (``YYYY-MM``), loaded if needed."""
        return self.partitions(month)

    def months(self) -> list[str]:
        return self.partitions.months()

    def __contains__(self, uid: str) -> bool:
        return uid in self._uid_month

    def __len__(self) -> int:
        return len(self._uid_month)

    def add(self, result: dict[str, Any], path: str | None = None) -> dict[str, Any]:
        """Store (or replace) a call from its call JSON; durable when this returns."""
        rec = call_record(result, path)
        with self._lock:
            known = self._uid_month.get(rec["uid"])
            if known is None:
                doc_id = _doc_id(rec["uid"])
                while doc_id in self._ids:
                    doc_id += 1
            else:
                doc_id = known[1]
                if known[0] != rec["month"]:        # its start time moved it to another month
                    self.month(known[0]).delete(doc_id)
                    self.partitions.touched(known[0])
            self.month(rec["month"]).put(doc_id, rec)
            self.partitions.touched(rec["month"])
            self.index.put(doc_id, {"uid": rec["uid"], "month": rec["month"]})
            self._uid_month[rec["uid"]] = (rec["month"], doc_id)
            self._ids.add(doc_id)
        return rec

    def add_many(self, results: list[dict[str, Any]]) -> int:
        """Store many new calls with one durable write per month (imports, reconciliation)."""
        by_month: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        index: list[tuple[int, dict[str, Any]]] = []
        with self._lock:
            for result in results:
                rec = call_record(result)
                if rec["uid"] in self._uid_month:
                    self.add(result)
                    continue
                doc_id = _doc_id(rec["uid"])
                while doc_id in self._ids:
                    doc_id += 1
                self._ids.add(doc_id)
                self._uid_month[rec["uid"]] = (rec["month"], doc_id)
                by_month.setdefault(rec["month"], []).append((doc_id, rec))
                index.append((doc_id, {"uid": rec["uid"], "month": rec["month"]}))
            for month, items in by_month.items():
                self.month(month).put_many(items)
                self.partitions.touched(month)
            self.index.put_many(index)
        return len(index)

    def calls(self, month: str, agent: str | None = None) -> list[dict[str, Any]]:
        """The calls of a month (``YYYY-MM``), of one agent if given, oldest first."""
        if not self.partitions.exists(month):
            return []
        table = self.month(month)
        docs = table.table.search(Query().agent == agent) if agent else table.table.all()
        return sorted((dict(d) for d in docs), key=lambda r: r["started_at"] or 0)

    def records(self, month: str) -> list[dict[str, Any]]:
        """The month's records as stored (read-only views: no copy, no order)."""
        if not self.partitions.exists(month):
            return []
        return self.month(month).table.all()

    def get(self, uid: str) -> dict[str, Any] | None:
        where = self._uid_month.get(uid)
        if where is None:
            return None
        return self.month(where[0]).get(where[1])

    def close(self) -> None:
        with self._lock:
            self.partitions.close()
            self.index.close()
