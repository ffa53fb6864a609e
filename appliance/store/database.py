"""Everything the appliance keeps, under ``<data_dir>/store``: one object per kind of data,
opened together, each durable at every acknowledged write."""

from __future__ import annotations

import logging
from pathlib import Path

from ..cdr.store import CdrStore
from .audit import AuditLog
from .calls import CallStore
from .outcomes import OutcomeStore
from .table import DurableMap, DurableTable

log = logging.getLogger(__name__)


class Database:
    """Calls, PBX records, outcomes, users, API tokens, settings edited on the box,
    dictionaries, checklists, the audit log and the MQTT outbox."""

    def __init__(self, data_dir: Path) -> None:
        root = data_dir / "store"
        self.calls = CallStore(data_dir)
        self.cdr = CdrStore(data_dir)
        self.outcomes = OutcomeStore(data_dir)
        self.users = DurableTable(root / "users", kind="user")
        self.tokens = DurableMap(root / "tokens", kind="token", str_keys=True)
        self.settings = DurableMap(root / "settings", kind="setting", str_keys=True)
        self.dictionaries = DurableMap(root / "dictionaries", kind="dictionary", str_keys=True)
        self.checklists = DurableMap(root / "checklists", kind="checklist", str_keys=True)
        self.outbox = DurableMap(root / "outbox", kind="outbox")
        self.audit = AuditLog(root / "audit")
        for problem in self.problems:
            log.error("store problem", extra={"problem": problem})

    @property
    def problems(self) -> list[str]:
        """Corrupt files found and set aside, in any table."""
        return (self.calls.problems + self.cdr.problems + self.outcomes.problems
                + self.users.problems + self.tokens.problems + self.settings.problems
                + self.dictionaries.problems + self.checklists.problems
                + self.outbox.problems + self.audit.problems)

    def close(self) -> None:
        for part in (self.calls, self.cdr, self.outcomes, self.users, self.tokens,
                     self.settings, self.dictionaries, self.checklists, self.outbox, self.audit):
            part.close()
