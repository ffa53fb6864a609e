"""Everything the appliance keeps, under ``<data_dir>/store``: one object per kind of data,
opened together, each durable at every acknowledged write."""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path

from ..cdr.store import CdrStore
from .audit import AuditLog
from .calls import CallStore
from .outcomes import OutcomeStore
from .search import TranscriptIndex
from .table import DurableMap

log = logging.getLogger(__name__)


class StoreBusy(RuntimeError):
    """Another process has the store open."""


class Database:
    """Calls, PBX records, outcomes, users, settings edited on the box, dictionaries,
    checklists, the audit log and the MQTT outbox.

    One process writes the store: opening it takes an exclusive lock, and a second opener
    gets StoreBusy (the CLI then says to use the running daemon's API).
    """

    def __init__(self, data_dir: Path) -> None:
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
        self.audit = AuditLog(root / "audit")
        self.search = TranscriptIndex(root / "transcripts.sqlite")
        for problem in self.problems:
            log.error("store problem", extra={"problem": problem})

    @property
    def problems(self) -> list[str]:
        """Corrupt files found and set aside, in any table."""
        return (self.calls.problems + self.cdr.problems + self.outcomes.problems
                + self.users.problems + self.settings.problems
                + self.dictionaries.problems + self.checklists.problems
                + self.outbox.problems + self.audit.problems)

    def close(self) -> None:
        for part in (self.calls, self.cdr, self.outcomes, self.users,
                     self.settings, self.dictionaries, self.checklists, self.outbox, self.audit):
            part.close()
        self.search.close()
        self._lock_fh.close()
