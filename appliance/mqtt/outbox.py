"""Messages waiting for the broker, durable: stored before they are sent, removed only once
the broker acknowledged them, drained in the order they were raised.

Bounded by count and age: when either bound is hit the oldest messages go. What went is
told by one summary message (``drop_note``: an ``outbox_dropped`` alert) that is not
counted in the bound and is replaced, not repeated, while more go: a full outbox never
drops a message to make room for news of dropping. A retained message (status, KPI
snapshots) supersedes the unsent older one of the same topic: after an outage the broker
gets the latest state, not every intermediate one. Being one per topic, retained messages
are bounded by their topics and not counted either: the count bounds events (alerts, call
summaries), and a new state never pushes an alert out.
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

DROP_LOG_EVERY_S = 60.0

# (topic, payload, qos) of the summary of dropped messages, from the tally so far
DropNote = Callable[[dict[str, Any]], tuple[str, dict[str, Any], int]]


def _kind(doc: dict[str, Any]) -> str:
    """What a message was, for the summary: an alert's kind, else its topic's last level."""
    try:
        kind = json.loads(doc["payload"]).get("kind")
    except (ValueError, AttributeError):
        kind = None
    return str(kind) if kind else doc["topic"].rsplit("/", 1)[-1]


class Outbox:
    def __init__(self, table: DurableMap, max_messages: int, max_age_h: float,
                 drop_note: DropNote | None = None) -> None:
        self.table = table
        self.max_messages = max_messages
        self.max_age_s = max_age_h * 3600
        self.drop_note = drop_note
        self._seq = itertools.count(max(table.docs, default=0) + 1)
        self._lock = threading.Lock()
        self.ready = threading.Event()          # set when there is something to send
        self._order = sorted(table.docs)        # ascending; entries already sent are skipped
        self._retained = {doc["topic"]: seq for seq, doc in sorted(table.docs.items())
                          if doc.get("retain")}
        # the unsent summary of dropped messages, if any (kept across restarts)
        self._note = max((seq for seq, doc in table.docs.items() if "dropped" in doc),
                         default=None)
        if table.docs:
            self.ready.set()
        self._unlogged = 0                      # dropped since the last log line
        self._logged_at = -DROP_LOG_EVERY_S

    def __len__(self) -> int:
        return len(self.table.docs)

    def put(self, topic: str, payload: dict[str, Any], qos: int, retain: bool = False) -> int:
        """Store a message; durable when this returns (on error nothing changed). Returns
        its sequence number."""
        doc = {"topic": topic, "payload": json.dumps(payload, ensure_ascii=False,
                                                     separators=(",", ":")),
               "qos": qos, "retain": retain, "at": time.time()}
        with self._lock:
            seq = next(self._seq)
            self.table.put(seq, doc)
            self._order.append(seq)
            superseded = self._retained.pop(topic, None)
            if retain:
                self._retained[topic] = seq
            if superseded is not None and superseded in self.table.docs:
                self.table.delete_many([superseded])       # replaced, not lost
        self._bound()
        self.ready.set()
        return seq

    def _bound(self) -> None:
        with self._lock:
            now = time.time()
            docs = self.table.docs
            note = self._note if self._note in docs else None
            old = []
            for s in self._order:                 # oldest first: stop at the first young one
                if s in docs and s != note:
                    if now - docs[s]["at"] <= self.max_age_s:
                        break
                    old.append(s)
            states = set(self._retained.values())
            counted = len(docs) - (note is not None) - len(states & docs.keys())
            excess = counted - len([s for s in old if s not in states]) - self.max_messages
            if excess > 0:
                gone = set(old)
                old += [s for s in self._order if s in docs and s != note
                        and s not in gone and s not in states][:excess]
            if len(self._order) > 2 * len(docs) + 1000:
                self._order = [s for s in self._order if s in docs]
            if not old:
                return
            reason = "age" if excess <= 0 else "size"
            tally = self._tally([docs[s] for s in old], reason, note)
            self.table.delete_many(old)
            for topic, seq in list(self._retained.items()):
                if seq not in self.table.docs:
                    del self._retained[topic]
            self._replace_note(note, tally)
            self._unlogged += len(old)
            if time.monotonic() - self._logged_at < DROP_LOG_EVERY_S:
                return                    # one line a minute while a full outbox drops
        self._log_drops(reason)

    def _log_drops(self, reason: str) -> None:
        """Say what went since the last line (the summary alert has the whole tally)."""
        with self._lock:
            dropped, self._unlogged, self._logged_at = self._unlogged, 0, time.monotonic()
        if dropped:
            log.error("mqtt outbox full: oldest messages dropped", extra={
                "dropped": dropped, "reason": reason, "next_line": f"{DROP_LOG_EVERY_S:.0f} s",
                "hint": "the broker has been unreachable; see the 'mqtt' lines before"})

    def _tally(self, dropped: list[dict[str, Any]], reason: str,
               note: int | None) -> dict[str, Any]:
        """What went, added to what the unsent summary already says."""
        tally = dict(self.table.docs[note]["dropped"]) if note is not None else {
            "dropped": 0, "kinds": {}, "first_at": min(d["at"] for d in dropped)}
        kinds = dict(tally["kinds"])
        for d in dropped:
            kinds[_kind(d)] = kinds.get(_kind(d), 0) + 1
        return {**tally, "dropped": tally["dropped"] + len(dropped), "kinds": kinds,
                "last_at": max(d["at"] for d in dropped), "reason": reason}

    def _replace_note(self, note: int | None, tally: dict[str, Any]) -> None:
        if self.drop_note is None:
            return
        topic, payload, qos = self.drop_note(tally)
        seq = next(self._seq)
        # superseded like a retained message: a copy already in flight is only older news
        self.table.put(seq, {"topic": topic, "payload": json.dumps(
            payload, ensure_ascii=False, separators=(",", ":")), "qos": qos, "retain": False,
            "at": time.time(), "dropped": tally})
        self._order.append(seq)
        self._note = seq
        if note is not None:
            self.table.delete_many([note])

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
        if self._unlogged:
            self._log_drops("size")       # the last drops of the outage, before it drains
        with self._lock:
            present = [s for s in seqs if s in self.table.docs]
            self.table.delete_many(present)
            if len(self._order) > 2 * len(self.table.docs) + 1000:
                self._order = [s for s in self._order if s in self.table.docs]
            for topic, seq in list(self._retained.items()):
                if seq in present:
                    del self._retained[topic]
