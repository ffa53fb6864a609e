"""Panel sessions kept on the box: the signed cookie carries a random session id, and a
session is valid only while the box holds it. Signing out removes it, so a cookie copied
before is worth nothing; "sign out everywhere" removes all of a user's sessions.

Only a hash of each id is stored: the store's files do not hold usable cookies.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from typing import Any

from ..store.migrations import CURRENT
from ..store.table import DurableMap


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class Sessions:
    def __init__(self, table: DurableMap, hours: float) -> None:
        self.table = table
        self.hours = hours
        self._lock = threading.Lock()

    def start(self, user: str, now: float | None = None) -> str:
        """A new session of ``user``; returns its id (for the cookie). Durable."""
        now = time.time() if now is None else now
        sid = secrets.token_urlsafe(32)
        with self._lock:
            expired = [k for k, d in self.table.docs.items() if d["expires"] <= now]
            self.table.delete_many(expired)
            self.table.put(_key(sid), {"schema": CURRENT["session"], "user": user,
                                       "created": now, "expires": now + self.hours * 3600})
        return sid

    def user_of(self, sid: Any, now: float | None = None) -> str | None:
        """The user of a live session, else None."""
        if not isinstance(sid, str) or not sid:
            return None
        doc = self.table.get(_key(sid))
        now = time.time() if now is None else now
        return doc["user"] if doc is not None and doc["expires"] > now else None

    def end(self, sid: Any) -> None:
        if isinstance(sid, str) and self.table.get(_key(sid)) is not None:
            self.table.delete(_key(sid))

    def end_all(self, user: str) -> int:
        """End every session of ``user``; returns how many."""
        with self._lock:
            mine = [k for k, d in self.table.docs.items() if d["user"] == user]
            self.table.delete_many(mine)
        return len(mine)
