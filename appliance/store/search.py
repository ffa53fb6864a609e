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
    def __init__(self, path: Path, in_memory: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.path = path
        if in_memory:
            # an index kept on disk before encryption was turned on holds the words in clear
            for old in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                if old.exists():
                    old.unlink()
                    log.warning("clear search index removed: kept in memory with encryption on",
                                extra={"file": str(old)})
            self._db = self._open(":memory:")
            return
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as exc:      # corrupt: derived data, rebuild from calls
            log.error("search index unreadable; rebuilding", extra={"file": str(path),
                                                                    "reason": str(exc)})
            path.unlink(missing_ok=True)
            self._db = self._open(path)

    @staticmethod
    def _open(path: Path | str) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # The rowid is the call's start in milliseconds (made unique), so a date range is a
        # rowid range, which FTS5 seeks to: a search touches only that range's matches.
        db.execute("CREATE TABLE IF NOT EXISTS calls(id INTEGER PRIMARY KEY, uid TEXT UNIQUE)")
        db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS transcripts USING fts5("
                   "agent, client, tokenize='unicode61 remove_diacritics 2')")
        db.execute("SELECT count(*) FROM transcripts").fetchone()
        return db

    def _remove(self, uid: str) -> None:
        row = self._db.execute("SELECT id FROM calls WHERE uid = ?", (uid,)).fetchone()
        if row is not None:
            self._db.execute("DELETE FROM transcripts WHERE rowid = ?", row)
            self._db.execute("DELETE FROM calls WHERE id = ?", row)

    def add_many(self, items: Iterable[tuple[str, float, dict[str, str]]]) -> None:
        """Index ``(uid, started, {agent, client})`` in one transaction (a uid again: replaced)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for uid, started, text in items:
                    self._remove(uid)
                    rowid = int(started * 1000)
                    while self._db.execute("SELECT 1 FROM calls WHERE id = ?", (rowid,)).fetchone():
                        rowid += 1
                    self._db.execute("INSERT INTO calls(id, uid) VALUES (?, ?)", (rowid, uid))
                    self._db.execute("INSERT INTO transcripts(rowid, agent, client) VALUES (?, ?, ?)",
                                     (rowid, text.get("agent", ""), text.get("client", "")))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, uid: str, started: float, text: dict[str, str]) -> None:
        self.add_many([(uid, started, text)])

    def add_result(self, uid: str, result: dict[str, Any]) -> None:
        self.add(uid, float(result.get("call", {}).get("started_at") or 0.0),
                 transcript_text(result))

    def forget(self, uids: Iterable[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            for uid in uids:
                self._remove(uid)
            self._db.execute("COMMIT")

    def uids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT uid FROM calls")}

    def search(self, text: str, party: str | None = None, start: float | None = None,
               end: float | None = None, limit: int = 50_000) -> set[str] | None:
        """Uids of calls whose transcript has every word of ``text`` (None: no words)."""
        expr = match_expression(text)
        if expr is None:
            return None
        if party in ("agent", "client"):
            expr = f"{party} : ({expr})"
        sql = "SELECT rowid FROM transcripts WHERE transcripts MATCH ?"
        args: list[Any] = [expr]
        if start is not None and end is not None:
            sql += " AND rowid >= ? AND rowid < ?"
            args += [int(start * 1000), int(end * 1000)]
        with self._lock:
            # one row for the whole answer: fetching thousands of rows one by one from Python
            # is what costs, and under load it queues behind the GIL
            row = self._db.execute(f"SELECT group_concat(uid, char(31)) FROM calls "
                                   f"WHERE id IN ({sql} LIMIT ?)", (*args, limit)).fetchone()
        return set(row[0].split("\x1f")) if row and row[0] else set()

    def close(self) -> None:
        with self._lock:
            self._db.close()
