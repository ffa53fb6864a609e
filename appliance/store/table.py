"""Durable document collections: a snapshot file and a journal on disk.

Writes are idempotent operations keyed by document id (``put`` replaces the document,
``delete`` removes it), so replaying the journal over a snapshot that already holds some of
them gives the same contents: compaction can crash at any point without loss.
``DurableTable`` serves its documents through tinydb (queries); ``DurableMap`` is a plain
dict, for large, simple maps such as the uid index, where tinydb's per-write conversion of
the whole table would cost O(n).

Files of a table: ``snapshot.json`` and ``journal.log``, and from the last compaction
``snapshot.prev.json`` and ``journal.prev.log``. The previous snapshot plus both journals
hold everything, so a snapshot found corrupt at load is rebuilt from them.
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

from ..system.atomic import fsync_dir, write_temp, write_text_atomic
from .journal import Journal
from .migrations import upgrade

log = logging.getLogger(__name__)

COMPACT_AFTER = 5000          # journal records before the contents are rewritten as a snapshot
EMPTY_SNAPSHOT = '{"docs":{}}'


class _Durable:
    """Snapshot + journal persistence; subclasses hold the documents.

    ``kind`` names the document schema (see ``migrations``): documents written by an older
    version are upgraded at load and the upgrade is made durable at once.

    ``problems`` lists what was found wrong at load (one line each); ``lost`` the part of
    it where documents could not be recovered.
    """

    str_keys = False

    def __init__(self, folder: Path, compact_after: int = COMPACT_AFTER,
                 kind: str | None = None) -> None:
        self.folder = folder
        self.compact_after = compact_after
        self.kind = kind
        folder.mkdir(parents=True, exist_ok=True)
        self.snapshot_path = folder / "snapshot.json"
        self.prev_snapshot_path = folder / "snapshot.prev.json"
        self.journal = Journal(folder / "journal.log")
        self.prev_journal_path = folder / "journal.prev.log"
        self._lock = threading.Lock()
        self._journaled = 0
        self._compact_due = compact_after
        self._snapshot_lost = False       # set aside at load: the next snapshot is also the base
        self.problems: list[str] = []
        self.lost: list[str] = []
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
    def _read_snapshot(self, path: Path) -> dict[Any, Any]:
        return self._decode_snapshot(json.loads(path.read_text(encoding="utf-8")))

    def _set_aside(self, path: Path, exc: Exception) -> str:
        aside = path.with_name(f"{path.stem}.corrupt-{int(time.time())}.json")
        os.replace(path, aside)
        log.error("store snapshot corrupt", extra={"table": str(self.folder), "file": path.name,
                                                  "moved_to": aside.name, "reason": str(exc)})
        return f"{path} is corrupt ({exc}); set aside as {aside.name}"

    def _load(self) -> None:
        docs: dict[Any, dict[str, Any]] = {}
        journals = [self.journal]
        corrupt = None
        if self.snapshot_path.exists():
            try:
                docs = self._read_snapshot(self.snapshot_path)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                corrupt = self._set_aside(self.snapshot_path, exc)
        if not self.snapshot_path.exists() and self.prev_snapshot_path.exists():
            # the previous snapshot and every journal since: all that the lost one held
            journals = [Journal(self.prev_journal_path), self.journal]
            try:
                docs = self._read_snapshot(self.prev_snapshot_path)
                if corrupt:
                    self.problems.append(f"{corrupt}; rebuilt from the previous snapshot and "
                                         "the journals, nothing lost")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                prev = self._set_aside(self.prev_snapshot_path, exc)
                corrupt = f"{corrupt}; {prev}" if corrupt else prev
                docs = {}
            self._snapshot_lost = True
        if corrupt and not self.problems:
            self.problems.append(f"{corrupt}; no usable previous snapshot: loading what the "
                                 "journal holds, the other documents are lost")
            self.lost.append(self.problems[-1])
            self._snapshot_lost = True
        for journal in journals:
            for rec in journal.replay():
                self._journaled += 1
                if rec.get("op") == "put":
                    docs[self._key(rec["id"])] = rec["doc"]
                elif rec.get("op") == "del":
                    docs.pop(self._key(rec["id"]), None)
            if journal.bad_lines:
                self.problems.append(f"{journal.path}: {journal.bad_lines} corrupt line(s) "
                                     "skipped; the documents they held are lost")
                self.lost.append(self.problems[-1])
        migrated = 0
        if self.kind is not None:
            for key, doc in docs.items():
                new = upgrade(self.kind, doc)
                if new is not doc:
                    docs[key] = new
                    migrated += 1
        self._reset(docs)
        if migrated or self._snapshot_lost:
            try:
                self._compact()     # the upgrade or the rebuilt contents, durable at once
            except OSError as exc:  # done again at the next load (or compaction)
                log.error("store snapshot not written", extra={"table": str(self.folder),
                                                              "reason": str(exc)})
        if migrated:
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
        """Insert or replace documents with one durable write. On error (a full disk)
        nothing changed, on disk or in memory, and the error is raised."""
        if not items:
            return
        with self._lock:
            self.journal.append([{"op": "put", "id": i, "doc": d} for i, d in items])
            self._apply(items)
            self._journaled += len(items)
            self._maybe_compact()

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

    def _maybe_compact(self) -> None:
        if self._journaled < self._compact_due:
            return
        try:
            self._compact()
        except OSError as exc:
            # The write itself is durable in the journal: only the snapshot waits. Tried
            # again a little later rather than at every write of a full disk.
            self._compact_due = self._journaled + max(1, self.compact_after // 10)
            log.error("store snapshot not written; the journal keeps every write",
                      extra={"table": str(self.folder), "reason": str(exc)})

    def _compact(self) -> None:
        """Rewrite the contents as a snapshot, keeping the one it replaces and the journal
        it absorbs as the previous pair. Every step is a rename, so a crash anywhere leaves
        a snapshot and journals that replay to the same contents."""
        data = json.dumps(self._encode_snapshot(), ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
        tmp = write_temp(self.snapshot_path, data)
        try:
            self._keep_previous(data)
            os.replace(tmp, self.snapshot_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.folder)
        self.journal.retire(self.prev_journal_path)    # a crash before this replays it again
        self._journaled = 0
        self._compact_due = self.compact_after
        self._snapshot_lost = False

    def _keep_previous(self, new: bytes) -> None:
        """``snapshot.prev.json``: the snapshot being replaced; with none, what the previous
        journal applies to (nothing for a new table, the new contents after a loss)."""
        if self.snapshot_path.exists():
            link = self.prev_snapshot_path.with_name(".snapshot.prev.json.link")
            link.unlink(missing_ok=True)
            os.link(self.snapshot_path, link)
            os.replace(link, self.prev_snapshot_path)
        else:
            write_text_atomic(self.prev_snapshot_path,
                              new if self._snapshot_lost else EMPTY_SNAPSHOT)

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
