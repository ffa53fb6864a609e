"""Durable document collections: a snapshot file and a journal on disk.

Writes are idempotent operations keyed by document id (``put`` replaces the document,
``delete`` removes it), so replaying the journal over a snapshot that already holds some of
them gives the same contents: compaction can crash at any point without loss.
``DurableTable`` serves its documents through tinydb (queries); ``DurableMap`` is a plain
dict, for large, simple maps such as the uid index, where tinydb's per-write conversion of
the whole table would cost O(n).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import MemoryStorage
from tinydb.table import Document, Table

from ..system.atomic import fsync_dir
from .journal import Journal
from .migrations import upgrade

log = logging.getLogger(__name__)

COMPACT_AFTER = 5000          # journal records before the contents are rewritten as a snapshot


class _Durable:
    """Snapshot + journal persistence; subclasses hold the documents.

    ``kind`` names the document schema (see ``migrations``): documents written by an older
    version are upgraded at load and the upgrade is made durable at once.
    """

    str_keys = False

    def __init__(self, folder: Path, compact_after: int = COMPACT_AFTER,
                 kind: str | None = None) -> None:
        self.folder = folder
        self.compact_after = compact_after
        self.kind = kind
        folder.mkdir(parents=True, exist_ok=True)
        self.snapshot_path = folder / "snapshot.json"
        self.journal = Journal(folder / "journal.log")
        self._lock = threading.Lock()
        self._journaled = 0
        self.problems: list[str] = []
        self._load()

    # --- to be provided by the holder of the documents ---
    def _reset(self, docs: dict[int, dict[str, Any]]) -> None:
        raise NotImplementedError

    def _apply(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        raise NotImplementedError

    def _remove(self, doc_id: int) -> None:
        raise NotImplementedError

    def _items(self) -> Iterable[tuple[int, dict[str, Any]]]:
        raise NotImplementedError

    # --- persistence ---
    def _load(self) -> None:
        docs: dict[int, dict[str, Any]] = {}
        if self.snapshot_path.exists():
            try:
                docs = self._decode_snapshot(
                    json.loads(self.snapshot_path.read_text(encoding="utf-8")))
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
                docs[self._key(rec["id"])] = rec["doc"]
            elif rec.get("op") == "del":
                docs.pop(self._key(rec["id"]), None)
        if self.journal.bad_lines:
            self.problems.append(f"{self.journal.path}: {self.journal.bad_lines} corrupt "
                                 "line(s) skipped")
        migrated = 0
        if self.kind is not None:
            for key, doc in docs.items():
                new = upgrade(self.kind, doc)
                if new is not doc:
                    docs[key] = new
                    migrated += 1
        self._reset(docs)
        if migrated:
            self._compact()
            log.info("store migrated", extra={"table": str(self.folder), "kind": self.kind,
                                              "documents": migrated})

    def _key(self, raw: Any) -> Any:
        return str(raw) if self.str_keys else int(raw)

    def _decode_snapshot(self, raw: Any) -> dict[Any, Any]:
        return {self._key(k): v for k, v in raw["docs"].items()}

    def _encode_snapshot(self) -> dict[str, Any]:
        return {"docs": {str(i): d for i, d in self._items()}}

    def put(self, doc_id: int, doc: dict[str, Any]) -> None:
        """Insert or replace a document; durable when this returns."""
        self.put_many([(doc_id, doc)])

    def put_many(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        """Insert or replace documents with one durable write."""
        if not items:
            return
        with self._lock:
            self.journal.append([{"op": "put", "id": i, "doc": d} for i, d in items])
            self._apply(items)
            self._journaled += len(items)
            if self._journaled >= self.compact_after:
                self._compact()

    def delete(self, doc_id: Any) -> None:
        self.delete_many([doc_id])

    def delete_many(self, doc_ids: list[Any]) -> None:
        """Remove documents with one durable write."""
        if not doc_ids:
            return
        with self._lock:
            self.journal.append([{"op": "del", "id": i} for i in doc_ids])
            for i in doc_ids:
                self._remove(i)
            self._journaled += len(doc_ids)

    def _compact(self) -> None:
        """Rewrite the contents as a snapshot (atomic), then start an empty journal."""
        tmp = self.snapshot_path.with_name(".snapshot.json.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self._encode_snapshot(), fh, ensure_ascii=False, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.snapshot_path)
        fsync_dir(self.folder)
        self.journal.reset()        # a crash before this replays idempotent puts: no loss
        self._journaled = 0

    def close(self) -> None:
        self.journal.close()


class DurableTable(_Durable):
    """Documents queried through tinydb (``self.table``), kept in memory."""

    def __init__(self, folder: Path, compact_after: int = COMPACT_AFTER,
                 kind: str | None = None) -> None:
        self.db = TinyDB(storage=MemoryStorage)
        self.table: Table = self.db.table("docs", cache_size=0)
        super().__init__(folder, compact_after, kind)

    def _reset(self, docs: dict[int, dict[str, Any]]) -> None:
        self.table.truncate()
        self.table.insert_multiple(Document(doc, doc_id=i) for i, doc in docs.items())

    def _apply(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        # replace, not merge (tinydb's upsert merges); tinydb rewrites its whole table per
        # call, so one remove and one insert for the batch
        present = [i for i, _ in items if self.table.contains(doc_id=i)]
        if present:
            self.table.remove(doc_ids=present)
        self.table.insert_multiple(Document(doc, doc_id=i) for i, doc in items)

    def _remove(self, doc_id: int) -> None:
        if self.table.contains(doc_id=doc_id):
            self.table.remove(doc_ids=[doc_id])

    def _items(self) -> Iterable[tuple[int, dict[str, Any]]]:
        return ((d.doc_id, dict(d)) for d in self.table.all())

    def get(self, doc_id: int) -> dict[str, Any] | None:
        doc = self.table.get(doc_id=doc_id)
        return dict(doc) if doc is not None else None

    def __len__(self) -> int:
        return len(self.table)


class DurableMap(_Durable):
    """Documents in a plain dict (``self.docs``): O(1) writes at any size. Keys are ints, or
    strings with ``str_keys=True``."""

    def __init__(self, folder: Path, compact_after: int = COMPACT_AFTER,
                 kind: str | None = None, str_keys: bool = False) -> None:
        self.docs: dict[Any, dict[str, Any]] = {}
        self.str_keys = str_keys
        super().__init__(folder, compact_after, kind)

    def _reset(self, docs: dict[int, dict[str, Any]]) -> None:
        self.docs = docs

    def _apply(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        self.docs.update(items)

    def _remove(self, doc_id: int) -> None:
        self.docs.pop(doc_id, None)

    def _items(self) -> Iterable[tuple[int, dict[str, Any]]]:
        return list(self.docs.items())

    def get(self, key: Any) -> dict[str, Any] | None:
        return self.docs.get(key)

    def __len__(self) -> int:
        return len(self.docs)
