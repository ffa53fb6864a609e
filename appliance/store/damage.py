"""What the store found wrong with its own files, kept until an admin acknowledges it.

A corrupt file is set aside and the rest loads, so the damage would be visible only in the
log of that start. Each problem is recorded here once (``store/damage.json``) with whether
documents were lost; lost documents fail the health check and raise an MQTT alert until
acknowledged, whatever restarts happen in between.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from ..system.atomic import write_json_atomic

log = logging.getLogger(__name__)


class DamageLog:
    """Problems found in the store's files: ``{at, problem, lost, alerted, acknowledged}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            self.entries = [e for e in loaded.get("entries", []) if isinstance(e, dict)]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            # itself damaged: what it held is lost, which is worth saying
            self.entries = [{"at": time.time(), "problem": f"{path} unreadable ({exc}); earlier "
                             "store problems may be missing from this list", "lost": False,
                             "alerted": True, "acknowledged": None}]

    def note(self, problems: list[str], lost: list[str]) -> list[dict[str, Any]]:
        """Record the problems not yet known; returns the new entries."""
        with self._lock:
            known = {e["problem"] for e in self.entries}
            new = [{"at": time.time(), "problem": p, "lost": p in lost, "alerted": False,
                    "acknowledged": None} for p in dict.fromkeys(problems) if p not in known]
            if new:
                self.entries += new
                self._save()
            return new

    def open(self) -> list[dict[str, Any]]:
        """Entries not acknowledged yet, oldest first."""
        return [e for e in self.entries if not e["acknowledged"]]

    def damaged(self) -> list[dict[str, Any]]:
        """Unacknowledged entries where documents were lost: a health failure."""
        return [e for e in self.open() if e["lost"]]

    def unalerted(self) -> list[dict[str, Any]]:
        return [e for e in self.damaged() if not e["alerted"]]

    def alerted(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            for e in entries:
                e["alerted"] = True
            self._save()

    def acknowledge(self, by: str) -> int:
        """Mark every open entry as seen by ``by``; returns how many."""
        with self._lock:
            todo = self.open()
            for e in todo:
                e["acknowledged"] = {"by": by, "at": time.time()}
            if todo:
                self._save()
            return len(todo)

    def _save(self) -> None:
        try:
            write_json_atomic(self.path, {"entries": self.entries[-500:]})
        except OSError as exc:      # a full disk: kept in memory, written at the next change
            log.error("store damage log not written", extra={"reason": str(exc)})
