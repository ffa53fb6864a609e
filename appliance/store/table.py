"""A durable table: tinydb documents in memory, a snapshot file and a journal on disk.

Writes are idempotent operations keyed by document id (``put`` replaces the document,
``delete`` removes it), so replaying the journal over a snapshot that already holds some of
them gives the same table: compaction can crash at any point without loss.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import MemoryStorage
from tinydb.table import Document, Table

from ..system.atomic import fsync_dir
from .journal import Journal

log = logging.getLogger(__name__)

COMPACT_AFTER = 5000          # journal records before the table is rewritten as a snapshot


class DurableTable:
    """One table under ``folder``: ``snapshot.json`` + ``journal.log``."""

    def __init__(self, folder: Path, compact_after: int = COMPACT_AFTER) -> None:
        self.folder = folder
        self.compact_after = compact_after
        folder.mkdir(parents=True, exist_ok=True)
        self.snapshot_path = folder / "snapshot.json"
        self.journal = Journal(folder / "journal.log")
        self.db = TinyDB(storage=MemoryStorage)
        self.table: Table = self.db.table("docs", cache_size=0)
        self._lock = threading.Lock()
        self._journaled = 0
        self.problems: list[str] = []
        self._load()

    def _load(self) -> None:
        docs: dict[int, dict[str, Any]] = {}
        if self.snapshot_path.exists():
            try:
                raw = json.loads(self.snapshot_path.read_text(encoding="utf-8"))
                docs = {int(k): v for k, v in raw["docs"].items()}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                aside = self.snapshot_path.with_name(f"snapshot.corrupt-{int(time.time())}.json")
                os.replace(self.snapshot_path, aside)
                msg = (f"{self.snapshot_path} is corrupt ({exc}); set aside as {aside.name}, "
                       "loading what the journal holds")
                self.problems.append(msg)
                log.error("store snapshot corrupt", extra={"table": str(self.folder),
                                                          "moved_to": aside.name})
        for rec in self.journal.replay():
            self._journaled += 1
            if rec.get("op") == "put":
                docs[int(rec["id"])] = rec["doc"]
            elif rec.get("op") == "del":
                docs.pop(int(rec["id"]), None)
        if self.journal.bad_lines:
            self.problems.append(f"{self.journal.path}: {self.journal.bad_lines} corrupt "
                                 "line(s) skipped")
        self.table.insert_multiple(Document(doc, doc_id=i) for i, doc in docs.items())

    # --- the one writer path ---
    def put(self, doc_id: int, doc: dict[str, Any]) -> None:
        """Insert or replace a document; durable when this returns."""
        self.put_many([(doc_id, doc)])

    def put_many(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        with self._lock:
            self.journal.append([{"op": "put", "id": i, "doc": d} for i, d in items])
            # replace, not merge (tinydb's upsert merges); tinydb rewrites its whole table per
            # call, so one remove and one insert for the batch
            present = [i for i, _ in items if self.table.contains(doc_id=i)]
            if present:
                self.table.remove(doc_ids=present)
            self.table.insert_multiple(Document(doc, doc_id=i) for i, doc in items)
            self._journaled += len(items)
            if self._journaled >= self.compact_after:
                self._compact()

    def delete(self, doc_id: int) -> None:
        with self._lock:
            self.journal.append([{"op": "del", "id": doc_id}])
            if self.table.contains(doc_id=doc_id):
                self.table.remove(doc_ids=[doc_id])
            self._journaled += 1

    def _compact(self) -> None:
        """Rewrite the table as a snapshot (atomic), then start an empty journal."""
        tmp = self.snapshot_path.with_name(".snapshot.json.tmp")
        data = {"docs": {str(d.doc_id): dict(d) for d in self.table.all()}}
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.snapshot_path)
        fsync_dir(self.folder)
        self.journal.reset()        # a crash before this replays idempotent puts: no loss
        self._journaled = 0

    def get(self, doc_id: int) -> dict[str, Any] | None:
        doc = self.table.get(doc_id=doc_id)
        return dict(doc) if doc is not None else None

    def __len__(self) -> int:
        return len(self.table)

    def close(self) -> None:
        self.journal.close()
