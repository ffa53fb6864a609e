"""Calls on the box: one durable table per month (``Monthly``), loaded when a query needs
that month, and an index from each call's uid to its month."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
import zlib
from pathlib import Path
from typing import Any

from tinydb import Query

from .monthly import Monthly
from ..core.times import month_of
from .records import call_record
from .table import DurableTable, _Durable

log = logging.getLogger(__name__)

MONTHS_IN_MEMORY = 3


def _doc_id(uid: str) -> int:
    """A stable document id for a uid (tinydb ids are ints); collisions are resolved by the
    index, which stores the id actually used."""
    return zlib.crc32(uid.encode()) & 0x7FFFFFFF or 1


class UidIndex(_Durable):
    """uid -> (month, doc id) of every stored call, durable. Held as two flat dicts rather
    than one small document per call: a third of the memory at 100k calls."""

    def __init__(self, folder: Path) -> None:
        self.where: dict[str, tuple[str, int]] = {}
        self.by_id: dict[int, str] = {}
        super().__init__(folder)

    def _reset(self, docs: dict[int, dict[str, Any]]) -> None:
        self.where, self.by_id = {}, {}
        self._apply(list(docs.items()))

    def _apply(self, items: list[tuple[int, Any]]) -> None:
        for doc_id, doc in items:
            # written as [uid, month] (a third of the load-time memory of a dict per call);
            # stores written before that hold {"uid", "month"}
            uid, month = (doc["uid"], doc["month"]) if isinstance(doc, dict) else doc
            self.by_id[doc_id] = uid
            self.where[uid] = (sys.intern(month), doc_id)

    def _remove(self, doc_id: int) -> None:
        uid = self.by_id.pop(doc_id, None)
        if uid is not None:
            self.where.pop(uid, None)

    def _items(self) -> Iterable[tuple[int, dict[str, Any]]]:
        return [(i, [u, self.where[u][0]]) for i, u in self.by_id.items()]

    def __len__(self) -> int:
        return len(self.where)

    # Columns, not an object per call: parsing creates only the strings and numbers that
    # stay in memory (month numbers are small cached ints), so the load leaves no holes.
    def _encode_snapshot(self) -> dict[str, Any]:
        months = sorted({m for m, _ in self.where.values()})
        number = {m: n for n, m in enumerate(months)}
        ids = list(self.by_id)
        return {"months": months, "ids": ids, "uids": [self.by_id[i] for i in ids],
                "m": [number[self.where[self.by_id[i]][0]] for i in ids]}

    def _decode_snapshot(self, raw: Any) -> dict[Any, Any]:
        if "docs" in raw:                      # written before the columns
            return super()._decode_snapshot(raw)
        months = [sys.intern(m) for m in raw["months"]]
        return {i: (u, months[m]) for i, u, m in zip(raw["ids"], raw["uids"], raw["m"], strict=True)}


class CallStore:
    """Call records under ``<data_dir>/store/calls/``.

    The month tables hold the records; the uid index can be rebuilt from them. It is, when
    it lost entries (a corrupt file), and a month found holding a call the index lacks
    adds it when it loads, so no stored call stays unreachable by its uid.
    """

    def __init__(self, data_dir: Path, months_in_memory: int = MONTHS_IN_MEMORY) -> None:
        self.root = data_dir / "store" / "calls"
        # one doc id per uid, unique over all months
        self.index = UidIndex(data_dir / "store" / "index")
        self._uid_month = self.index.where
        self._ids = self.index.by_id
        self._lock = threading.RLock()
        self._notes: list[str] = []
        self.partitions: Monthly[DurableTable] = Monthly(
            self.root, lambda folder: self._opened(DurableTable(folder, kind="call")),
            months_in_memory)
        if self.index.lost or (not len(self.index) and self.months()):
            self._rebuild_index()

    def _opened(self, table: DurableTable) -> DurableTable:
        """A month table just loaded: calls missing from the index are added to it."""
        month = table.folder.name
        missing = [(d.doc_id, [d["uid"], month]) for d in table.table.all()
                   if d.get("uid") and d["uid"] not in self._uid_month]
        if missing:
            try:
                self.index.put_many(missing)
            except OSError as exc:          # reachable again at the next load
                log.error("uid index not repaired", extra={"month": month, "reason": str(exc)})
                return table
            note = f"uid index: {len(missing)} call(s) of {month} were missing; added"
            self._notes.append(note)
            log.warning("uid index repaired", extra={"month": month, "calls": len(missing)})
        return table

    def _rebuild_index(self) -> None:
        """Add every call of every month to the index, then write it as a new snapshot."""
        before = len(self.index)
        for month in self.months():
            self.partitions(month)          # _opened() adds what the index lacks
        try:
            self.index._compact()
        except OSError as exc:              # the journal holds the additions meanwhile
            log.error("uid index snapshot not written", extra={"reason": str(exc)})
        note = (f"uid index rebuilt from the month tables: {len(self.index) - before} "
                f"call(s) restored, {len(self.index)} in all")
        self._notes.append(note)
        # rebuilt: nothing lasting, and what was found says so
        self.index.problems[:] = [f"{p} (uid index entries: rebuilt from the month tables, "
                                  "nothing lost)" if p in self.index.lost else p
                                  for p in self.index.problems]
        self.index.lost.clear()
        log.warning("uid index rebuilt", extra={"calls": len(self.index),
                                                "restored": len(self.index) - before})

    @property
    def problems(self) -> list[str]:
        return self.index.problems + self.partitions.problems + self._notes

    @property
    def lost(self) -> list[str]:
        return self.index.lost + self.partitions.lost

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
        """Store (or replace) a call from its call JSON; durable when this returns. On error
        (a full disk) the call is not stored and the error is raised."""
        rec = call_record(result, path)
        with self._lock:
            known = self._uid_month.get(rec["uid"])
            if known is None:
                doc_id = _doc_id(rec["uid"])
                while doc_id in self._ids:
                    doc_id += 1
                # the index first: a month write failing after it leaves a uid without a
                # record, which the next ingest of the file fills in; never a record that
                # is listed but cannot be reached by its uid
                self.index.put(doc_id, [rec["uid"], rec["month"]])
                self.month(rec["month"]).put(doc_id, rec)
            else:
                doc_id = known[1]
                before = self.month(known[0]).get(doc_id) or {}
                self.month(rec["month"]).put(doc_id, rec)
                if known[0] != rec["month"]:        # its start time moved it to another month
                    self.index.put(doc_id, [rec["uid"], rec["month"]])
                    self.month(known[0]).delete(doc_id)
                self.partitions.touched(known[0], before.get("started_at") or 0)
            self.partitions.touched(rec["month"], rec["started_at"] or 0)
        return rec

    def add_many(self, results: list[dict[str, Any]]) -> int:
        """Store many new calls with one durable write per month (imports, reconciliation)."""
        by_month: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        index: list[tuple[int, Any]] = []
        reserved: set[int] = set()
        latest = {}
        for result in results:                              # a uid twice: the last wins
            rec = call_record(result)
            latest[rec["uid"]] = (result, rec)
        with self._lock:
            for result, rec in latest.values():
                if rec["uid"] in self._uid_month:
                    self.add(result)
                    continue
                doc_id = _doc_id(rec["uid"])
                while doc_id in self._ids or doc_id in reserved:
                    doc_id += 1
                reserved.add(doc_id)
                by_month.setdefault(rec["month"], []).append((doc_id, rec))
                index.append((doc_id, [rec["uid"], rec["month"]]))
            self.index.put_many(index)                       # first, as in add()
            for month, items in by_month.items():
                self.month(month).put_many(items)
                self.partitions.touched(month, *(r["started_at"] or 0 for _, r in items))
        return len(index)

    def update(self, uid: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Change fields of a stored record (retention marks deleted audio); durable."""
        with self._lock:
            where = self._uid_month.get(uid)
            if where is None:
                return None
            rec = self.month(where[0]).get(where[1])
            if rec is None:
                return None
            rec.update(changes)
            self.month(where[0]).put(where[1], rec)
            self.partitions.touched(where[0], rec.get("started_at") or 0)
            return rec

    def forget(self, uids: list[str]) -> int:
        """Remove records (retention of call data); a whole month goes in one step."""
        by_month: dict[str, list[tuple[str, int]]] = {}
        with self._lock:
            for uid in uids:
                where = self._uid_month.get(uid)
                if where is not None:
                    by_month.setdefault(where[0], []).append((uid, where[1]))
            for month, items in by_month.items():
                if len(items) == len(self.month(month)):
                    self.partitions.drop(month)
                else:
                    table = self.month(month)
                    starts = [(table.get(i) or {}).get("started_at") or 0 for _, i in items]
                    table.delete_many([i for _, i in items])
                    self.partitions.touched(month, *starts)
                self.index.delete_many([i for _, i in items])
        return sum(len(v) for v in by_month.values())

    def uids_before(self, ts: float) -> list[str]:
        """Calls that started before ``ts`` (reads only the months concerned)."""
        cutoff = month_of(ts)
        out = []
        for month in self.months():
            if month > cutoff:
                break
            out += [r["uid"] for r in self.records(month) if (r.get("started_at") or 0) < ts]
        return out

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        """Records of calls that started in [start, end) (views: do not modify)."""
        return self.partitions.between(start, end, lambda t: t.table.all(), "started_at")

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
