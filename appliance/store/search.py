"""Full-text search over transcripts: an SQLite FTS5 index beside the store.

Derived data: every entry is rebuilt from the call files when missing, so the index needs no
journal of its own. Words match case-insensitively, with or without ``ё``/diacritics, and by
prefix ("доставк" finds "доставку", "доставкой"), which covers Russian inflection well enough
for a search box.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 12
_YO = str.maketrans("ёЁ", "еЕ")       # FTS5 keeps ё apart from е; speakers and ASR do not


def transcript_text(result: dict[str, Any]) -> dict[str, str]:
    """Each party's words of a call JSON, in order."""
    out: dict[str, list[str]] = {"agent": [], "client": []}
    for seg in result.get("transcript") or []:
        if seg.get("party") in out and seg.get("text"):
            out[seg["party"]].append(str(seg["text"]))
    return {p: " ".join(words).translate(_YO) for p, words in out.items()}


def match_expression(text: str) -> str | None:
    """The FTS5 query for a search box: every word must appear (as a word prefix); quotes
    keep the user's text from being read as FTS5 syntax."""
    terms = WORD.findall(text.translate(_YO))[:MAX_TERMS]
    if not terms:
        return None
    return " ".join(f'"{t}"*' for t in terms)


class TranscriptIndex:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.path = path
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as exc:      # corrupt: derived data, rebuild from calls
            log.error("search index unreadable; rebuilding", extra={"file": str(path),
                                                                    "reason": str(exc)})
            path.unlink(missing_ok=True)
            self._db = self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS transcripts USING fts5("
                   "uid UNINDEXED, started UNINDEXED, agent, client, "
                   "tokenize='unicode61 remove_diacritics 2')")
        db.execute("SELECT count(*) FROM transcripts").fetchone()
        return db

    def add(self, uid: str, started: float, text: dict[str, str]) -> None:
        with self._lock:
            self._db.execute("DELETE FROM transcripts WHERE uid = ?", (uid,))
            self._db.execute("INSERT INTO transcripts(uid, started, agent, client) "
                             "VALUES (?, ?, ?, ?)",
                             (uid, started, text.get("agent", ""), text.get("client", "")))

    def add_result(self, uid: str, result: dict[str, Any]) -> None:
        self.add(uid, float(result.get("call", {}).get("started_at") or 0.0),
                 transcript_text(result))

    def forget(self, uids: Iterable[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM transcripts WHERE uid = ?", ((u,) for u in uids))
            self._db.execute("COMMIT")

    def uids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT uid FROM transcripts")}

    def search(self, text: str, party: str | None = None, start: float | None = None,
               end: float | None = None, limit: int = 50_000) -> set[str] | None:
        """Uids of calls whose transcript has every word of ``text`` (None: no words)."""
        expr = match_expression(text)
        if expr is None:
            return None
        if party in ("agent", "client"):
            expr = f"{party} : ({expr})"
        sql = "SELECT uid FROM transcripts WHERE transcripts MATCH ?"
        args: list[Any] = [expr]
        if start is not None and end is not None:
            sql += " AND started >= ? AND started < ?"
            args += [start, end]
        with self._lock:
            return {r[0] for r in self._db.execute(sql + " LIMIT ?", (*args, limit))}

    def close(self) -> None:
        with self._lock:
            self._db.close()
