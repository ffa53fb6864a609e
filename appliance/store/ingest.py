"""The store's one writer path for calls: results written by any source (capture workers,
the inbox) are picked up from ``calls/`` and indexed. At start-up this reconciles the store
with the disk: a call whose file exists but whose record is missing (a crash between the
two) is added."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..analysis.completion import pending
from ..bus import Bus
from .calls import CallStore
from .records import recording_name
from ..system import sealing
from .search import TranscriptIndex

log = logging.getLogger(__name__)


RECENT_DAYS = 2      # live calls land in today's folder (yesterday's, around midnight)


def result_files(calls_dir: Path, recent_only: bool = False) -> list[Path]:
    """Call JSON files (not metadata, not temporaries), oldest folders first. ``recent_only``:
    just the newest day folders, where capture workers write; a full scan is for start-up."""
    if recent_only:
        days = sorted(p for p in calls_dir.iterdir() if p.is_dir())[-RECENT_DAYS:]
        files = [p for d in days for p in d.glob("*.json")]
    else:
        files = [p for p in calls_dir.glob("*.json")] + [p for p in calls_dir.glob("*/*.json")]
    return sorted(p for p in files if not p.name.endswith(".meta.json")
                  and not p.name.startswith("."))


class Ingester:
    def __init__(self, store: CallStore, calls_dir: Path, bus: Bus | None = None,
                 search: TranscriptIndex | None = None,
                 on_pending: Callable[[Path, dict[str, Any]], object] | None = None) -> None:
        """``on_pending(path, result)``: a call written before its transcript (the recognizer
        completes it and the file comes back through ``ingest_file``)."""
        self.on_pending = on_pending
        self.store = store
        self.search = search
        self.calls_dir = calls_dir
        self.bus = bus
        calls_dir.mkdir(parents=True, exist_ok=True)
        self._seen: set[Path] = set()
        self._lock = threading.Lock()

    def scan(self, recent_only: bool = False) -> int:
        """Add every call file not yet in the store; return how many were added."""
        added = 0
        files = result_files(self.calls_dir, recent_only)
        for path in files:
            if path in self._seen:
                continue
            added += self.ingest_file(path)
        if recent_only:         # forget older folders' files: the set stays one or two days
            with self._lock:
                self._seen.intersection_update(files)
        if added:
            log.info("calls stored", extra={"added": added, "total": len(self.store)})
        return added

    def ingest_file(self, path: Path) -> int:
        """Store the call in one result file (a source in this process calls it directly);
        return 1 if it was new or completed. A call still waiting for its transcript is
        stored at once and handed to ``on_pending``; ``call.stored`` goes out when it is
        complete."""
        with self._lock:
            try:
                result = sealing.read_json(path)
            except FileNotFoundError:
                return 0
            except (OSError, ValueError) as exc:
                log.error("call file unreadable; not stored", extra={"file": str(path),
                                                                    "reason": str(exc)})
                self._seen.add(path)
                return 0
            self._seen.add(path)
            if "call" not in result:
                return 0
            uid = result["call"].get("extra", {}).get("uid") or result["call"].get("call_id")
            waiting = pending(result)
            stored = self.store.get(uid) if uid in self.store else None
            fresh = stored is None or (stored.get("asr") == "pending" and not waiting)
            if not fresh and not stored.get("recording"):
                # stored before inbox recordings were named: playable from now on
                name = recording_name(result["call"].get("extra", {}))
                if name:
                    self.store.update(uid, {"recording": name})
            if fresh:
                self.store.add(result, str(path.relative_to(self.calls_dir)))
                if self.search is not None and not waiting:
                    self.search.add_result(uid, result)
        if waiting and self.on_pending is not None:
            self.on_pending(path, result)
        if not fresh:
            return 0
        if self.bus is not None and not waiting:    # every source's calls, once, when complete
            self.bus.publish("call.stored", result=result)
        return 1

    def index_missing(self) -> int:
        """Add stored calls the transcript index lacks (a new or rebuilt index)."""
        if self.search is None:
            return 0
        from .search import transcript_text

        indexed = self.search.uids()
        added = 0
        for month in self.store.months():
            batch = []
            for rec in self.store.records(month):
                if rec["uid"] in indexed or not rec.get("result_path"):
                    continue
                try:
                    result = sealing.read_json(self.calls_dir / rec["result_path"])
                except (OSError, ValueError):
                    continue            # audio-only or pruned: nothing to search
                batch.append((rec["uid"], float(rec.get("started_at") or 0.0),
                              transcript_text(result)))
            self.search.add_many(batch)
            added += len(batch)
        if added:
            log.info("transcripts indexed", extra={"calls": added})
        return added

    def run(self, stop: threading.Event, interval_s: float = 1.0) -> None:
        self.index_missing()
        while not stop.is_set():
            try:
                self.scan(recent_only=True)
            except OSError as exc:       # a full disk must not stop recording
                log.error("store ingest failed", extra={"reason": str(exc)})
            stop.wait(interval_s)
