"""Messages waiting for the broker, durable: stored before they are sent, removed only once
the broker acknowledged them, drained in the order they were raised.

Bounded by count and age: when either bound is hit the oldest messages go and an
``outbox_dropped`` alert says how many. A retained message (status, KPI snapshots)
supersedes the unsent older one of the same topic: after an outage the broker gets the
latest state, not every intermediate one.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
import json
import logging
import threading
import time
from typing import Any, Callable

from ..store.table import DurableMap

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, table: DurableMap, max_messages: int, max_age_h: float,
                 on_drop: Callable[[int, str], None] | None = None) -> None:
        self.table = table
        self.max_messages = max_messages
        self.max_age_s = max_age_h * 3600
        self.on_drop = on_drop
        self._seq = itertools.count(max(table.docs, default=0) + 1)
        self._lock = threading.Lock()
        self.ready = threading.Event()          # set when there is something to send
        self._reporting = False
        self._order = sorted(table.docs)        # ascending; entries already sent are skipped
        self._retained = {doc["topic"]: seq for seq, doc in sorted(table.docs.items())
                          if doc.get("retain")}
        if table.docs:
            self.ready.set()

    def __len__(self) -> int:
        return len(self.table.docs)

    def put(self, topic: str, payload: dict[str, Any], qos: int, retain: bool = False) -> int:
        """Store a message; durable when this returns. Returns its sequence number."""
        doc = {"topic": topic, "payload": json.dumps(payload, ensure_ascii=False,
                                                     separators=(",", ":")),
               "qos": qos, "retain": retain, "at": time.time()}
        dropped: list[int] = []
        with self._lock:
            seq = next(self._seq)
            if retain and topic in self._retained:
                dropped.append(self._retained[topic])      # superseded, not lost
            self._retained.pop(topic, None)
            if retain:
                self._retained[topic] = seq
            self.table.put(seq, doc)
            self._order.append(seq)
            if dropped:
                self.table.delete_many([d for d in dropped if d in self.table.docs])
        if not self._reporting:
            self._bound()
        self.ready.set()
        return seq

    def _bound(self) -> None:
        with self._lock:
            now = time.time()
            docs = self.table.docs
            old = []
            for s in self._order:                 # oldest first: stop at the first young one
                if s in docs:
                    if now - docs[s]["at"] <= self.max_age_s:
                        break
                    old.append(s)
            excess = len(docs) - len(old) - self.max_messages
            if excess > 0:
                gone = set(old)
                old += [s for s in self._order if s in docs and s not in gone][:excess]
            if len(self._order) > 2 * len(docs) + 1000:
                self._order = [s for s in self._order if s in docs]
            if not old:
                return
            self.table.delete_many(old)
            for topic, seq in list(self._retained.items()):
                if seq not in self.table.docs:
                    del self._retained[topic]
        reason = "age" if excess <= 0 else "size"
        log.error("mqtt outbox full: oldest messages dropped", extra={"dropped": len(old),
                                                                      "reason": reason})
        if self.on_drop is not None:
            self._reporting = True          # the alert itself may exceed the bound by one
            try:
                self.on_drop(len(old), reason)
            finally:
                self._reporting = False

    def pending(self, after: int = 0, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` messages with sequence numbers above ``after``, oldest first."""
        with self._lock:
            out = []
            for s in self._order[bisect_right(self._order, after):]:
                doc = self.table.docs.get(s)
                if doc is not None:
                    out.append((s, doc))
                    if len(out) >= limit:
                        break
            return out

    def ack(self, seqs: list[int]) -> None:
        """The broker has these: forget them (one durable write for the batch)."""
        with self._lock:
            present = [s for s in seqs if s in self.table.docs]
            self.table.delete_many(present)
            if len(self._order) > 2 * len(self.table.docs) + 1000:
                self._order = [s for s in self._order if s in self.table.docs]
            for topic, seq in list(self._retained.items()):
                if seq in present:
                    del self._retained[topic]
