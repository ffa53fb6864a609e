"""Everything the appliance keeps, under ``<data_dir>/store``: one object per kind of data,
opened together, each durable at every acknowledged write."""

from __future__ import annotations

import fcntl
import json
import logging
import subprocess
import sys
import threading
import time
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


def damaged_months_in_child(roots: list[str], stop: threading.Event | None = None,
                            timeout_s: float = 3600.0) -> list[tuple[str, str]] | None:
    """``store.check`` run in a child process: (root, month) of the damaged months, or None
    if it could not say (it failed, or the daemon is stopping)."""
    child = subprocess.Popen([sys.executable, "-m", "appliance.store.check", *roots],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                out, err = child.communicate(timeout=0.5)      # reads while it writes
                break
            except subprocess.TimeoutExpired:
                stopping = stop is not None and stop.is_set()
                if stopping or time.monotonic() > deadline:
                    child.kill()
                    child.communicate()
                    return [] if stopping else None
        if child.returncode == 0:
            return [(root, month) for root, month in json.loads(out)["damaged"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        err = str(exc).encode()
    log.error("store check in a child process failed; checking in the daemon",
              extra={"returncode": child.returncode, "reason": err.decode(errors="replace")[-500:]})
    return None


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
        """Find damage in every month of calls, PBX records and audit, also those nobody
        reads: the files are read in a child process (``store.check``), and the damaged
        months are then loaded here, which records the damage (health check, MQTT alert)
        and repairs what can be. Returns how many damaged months were found."""
        parts = {str(m.root): m for m in (self.calls.partitions, self.cdr.partitions,
                                          self.audit.partitions)}
        damaged = damaged_months_in_child(list(parts), stop)
        if damaged is None:                 # the child failed: read them all here instead
            return sum(m.verify(stop) for m in parts.values())
        for root, month in damaged:
            parts[root].verify(stop, months=[month])
        return len(damaged)

    def close(self) -> None:
        for part in self._parts():
            part.close()
        self.search.close()
        self._lock_fh.close()
