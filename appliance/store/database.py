"""Everything the appliance keeps, under ``<data_dir>/store``: one object per kind of data,
opened together, each durable at every acknowledged write."""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..store.cdr import CdrStore
from .audit import AuditLog
from .calls import CallStore
from .damage import DamageLog
from .outcomes import OutcomeStore
from .search import TranscriptIndex
from .table import DurableMap

log = logging.getLogger(__name__)


class StoreBusy(RuntimeError):
    """Another process has the store open."""


class Database:
    """Calls, PBX records, outcomes, users, panel sessions, settings edited on the box,
    dictionaries, checklists, the audit log and the MQTT outbox.

    One process writes the store: opening it takes an exclusive lock, and a second opener
    gets StoreBusy (the CLI then says to use the running daemon's API).
    """

    def __init__(self, data_dir: Path, transcripts_in_memory: bool = False) -> None:
        """``transcripts_in_memory``: the search index is not kept on disk ([privacy]
        encrypt: it would hold every word said in clear); it is rebuilt at each start."""
        root = data_dir / "store"
        root.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(root / ".lock", "w")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_fh.close()
            raise StoreBusy(f"the store in {root} is open in another process (the appliance "
                            "daemon?); use its HTTP API, or stop it first") from None
        self.calls = CallStore(data_dir)
        self.cdr = CdrStore(data_dir)
        self.outcomes = OutcomeStore(data_dir)
        self.users = DurableMap(root / "users", kind="user", str_keys=True)
        self.settings = DurableMap(root / "settings", kind="setting", str_keys=True)
        self.dictionaries = DurableMap(root / "dictionaries", kind="dictionary", str_keys=True)
        self.checklists = DurableMap(root / "checklists", kind="checklist", str_keys=True)
        self.outbox = DurableMap(root / "outbox", kind="outbox")
        self.sessions = DurableMap(root / "sessions", kind="session", str_keys=True)
        self.audit = AuditLog(root / "audit")
        self.search = TranscriptIndex(root / "transcripts.sqlite", in_memory=transcripts_in_memory)
        self.damage = DamageLog(root / "damage.json")
        self.on_damage: Callable[[], None] | None = None      # told when new damage is noted
        for months in (self.calls.partitions, self.cdr.partitions, self.audit.partitions):
            months.on_problem = self.check          # a month loaded later may find some too
        self.check()

    def _parts(self) -> list[Any]:
        return [self.calls, self.cdr, self.outcomes, self.users, self.settings,
                self.dictionaries, self.checklists, self.outbox, self.sessions, self.audit]

    @property
    def problems(self) -> list[str]:
        """Corrupt files found (set aside, repaired or not) in any table since opening."""
        return [p for part in self._parts() for p in part.problems]

    @property
    def lost(self) -> list[str]:
        """The part of ``problems`` where documents could not be recovered."""
        return [p for part in self._parts() for p in part.lost]

    def check(self) -> list[dict[str, Any]]:
        """Record problems found since the last check in the damage log; the new entries."""
        new = self.damage.note(self.problems, self.lost)
        for entry in new:
            log.error("store problem", extra={"problem": entry["problem"], "lost": entry["lost"]})
        if new and self.on_damage is not None:
            self.on_damage()
        return new

    def verify(self, stop: threading.Event | None = None) -> int:
        """Read every month of calls, PBX records and audit not in memory (see
        ``Monthly.verify``): damage anywhere is in the damage log, and so in the health check
        and an MQTT alert, after each start. Returns how many months were read."""
        return sum(months.verify(stop) for months in
                   (self.calls.partitions, self.cdr.partitions, self.audit.partitions))

    def close(self) -> None:
        for part in self._parts():
            part.close()
        self.search.close()
        self._lock_fh.close()
