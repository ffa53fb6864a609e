"""How long things stay on the box, and what happens when the disk fills.

Recordings go first: after ``retention.audio_days``, or earlier, oldest first, while free
space is under the ``retention.min_free_percent`` watermark. Call data (metrics, transcript,
tags, PBX records) stays ``retention.metadata_days``. A recording still being written is never
touched. Below ``retention.stop_recording_free_mb`` new calls are refused (see
``RecordingGuard``) and an alert goes out; what is stored stays stored.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..bus import Bus
from ..config import Settings
from ..system import sealing
from ..system.disk import DiskState, disk_state
from .database import Database
from ..core.times import month_of

log = logging.getLogger(__name__)

NOT_AUDIO = (".json", ".tmp")


@dataclass
class Report:
    audio_files: int = 0
    audio_bytes: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    calls_forgotten: int = 0
    transcripts_removed: int = 0
    disk: dict[str, float] = field(default_factory=dict)


def _day_of(path: Path, calls_dir: Path) -> float:
    """When a recording was made: its day folder (YYYY-MM-DD), else its file time."""
    parent = path.parent
    if parent != calls_dir:
        try:
            return time.mktime(time.strptime(parent.name, "%Y-%m-%d"))
        except ValueError:
            pass
    return path.stat().st_mtime


def audio_files(calls_dir: Path) -> list[tuple[float, Path]]:
    """Recordings under ``calls/``, oldest first."""
    out = []
    for path in list(calls_dir.glob("*")) + list(calls_dir.glob("*/*")):
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(NOT_AUDIO):
            continue
        try:
            out.append((_day_of(path, calls_dir), path))
        except OSError:
            continue
    return sorted(out)


def _being_recorded(path: Path) -> bool:
    meta = path.with_name(f"{path.stem}.meta.json")
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("state") == "recording"
    except (OSError, ValueError):
        return False


def _uid_of(path: Path) -> str | None:
    """The stored call a recording belongs to (its call JSON shares the file stem)."""
    try:
        result = sealing.read_json(path.with_name(f"{path.stem}.json"))
        call = result["call"]
        return call.get("extra", {}).get("uid") or call.get("call_id")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def strip_transcript(result: dict[str, Any], now: float) -> bool:
    """Remove from a call JSON every word said: the transcript, the words tags and checklist
    evidence quote, the dictionary entries that matched; False if there was nothing."""
    items = (result.get("score") or {}).get("items") or []
    events = result.get("events") or []
    had = (bool(result.get("transcript")) or any(t.get("text") for t in result.get("tags", []))
           or any((i.get("detail") or {}).get("text") for i in items)
           or any("digits" in e for e in events))
    if not had:
        return False
    result["transcript"] = []
    for event in events:
        event.pop("digits", None)           # keys pressed (conversation.dtmf_digits): a PIN too
    for tag in result.get("tags", []):
        tag.pop("text", None)
        tag.pop("phrase", None)             # the dictionary entry: what was heard, too
    for item in items:
        detail = item.get("detail") or {}
        if detail.pop("text", None) is not None:
            # the checklist's evidence quoted the words: say where, not what
            at = detail.get("at")
            item["evidence"] = (f"{detail.get('tag')} at {at:.1f} s" if isinstance(at, (int, float))
                                else str(detail.get("tag") or ""))
    asr = result.setdefault("asr", {})
    asr.update(status="deleted", deleted_at=now)
    return had


class Retention:
    def __init__(self, settings: Settings, db: Database, bus: Bus | None = None,
                 disk: Callable[[Path], DiskState] = disk_state) -> None:
        self.settings = settings
        self.db = db
        self.bus = bus
        self.disk = disk
        self.calls_dir = settings.paths.calls
        self.state = "ok"              # ok | low | full: alerts go out on changes
        self._words_done_before = 0.0  # calls before this had their transcripts removed
        self._words_retry: set[str] = set()
        self._lock = threading.Lock()

    def _delete_audio(self, path: Path, reason: str, report: Report) -> bool:
        if _being_recorded(path):
            return False
        try:
            size = path.stat().st_size
            uid = _uid_of(path)
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("recording not deleted", extra={"file": str(path), "reason": str(exc)})
            return False
        if uid:
            self.db.calls.update(uid, {"recording": None, "audio": "deleted",
                                       "audio_deleted_at": time.time(), "audio_reason": reason})
        report.audio_files += 1
        report.audio_bytes += size
        report.by_reason[reason] = report.by_reason.get(reason, 0) + 1
        return True

    def run(self, now: float | None = None) -> Report:
        """One pass: age, watermark, call data; then the disk state and its alerts."""
        with self._lock:
            now = time.time() if now is None else now
            cfg = self.settings.retention
            report = Report()
            files = audio_files(self.calls_dir)
            if cfg.audio_days:
                cutoff = now - cfg.audio_days * 86400
                for day, path in files:
                    if day >= cutoff:
                        break
                    self._delete_audio(path, "age", report)
            state = self.disk(self.calls_dir)
            if state.free_percent < cfg.min_free_percent:
                for _, path in audio_files(self.calls_dir):
                    if self._delete_audio(path, "disk", report):
                        state = self.disk(self.calls_dir)
                        if state.free_percent >= cfg.min_free_percent:
                            break
            report.calls_forgotten = self._forget_call_data(now - cfg.metadata_days * 86400)
            if cfg.transcript_days and cfg.transcript_days < cfg.metadata_days:
                report.transcripts_removed = self._forget_transcripts(
                    now - cfg.transcript_days * 86400, now)
            self.db.audit.forget_before(now - cfg.audit_days * 86400)
            report.disk = state.as_dict()
            if report.audio_files:
                log.warning("recordings deleted", extra={
                    "files": report.audio_files, "mb": round(report.audio_bytes / 2**20, 1),
                    **{f"by_{k}": v for k, v in report.by_reason.items()}})
                self._publish("disk.pruned", files=report.audio_files,
                              bytes=report.audio_bytes, reasons=report.by_reason)
            self._alert(state)
            return report

    def _forget_call_data(self, cutoff: float) -> int:
        uids = self.db.calls.uids_before(cutoff)
        if uids:
            for uid in uids:
                rec = self.db.calls.get(uid)
                if rec and rec.get("result_path"):
                    stem = (self.calls_dir / rec["result_path"]).with_suffix("")
                    for p in stem.parent.glob(f"{stem.name}.*"):
                        p.unlink(missing_ok=True)
                if self.db.outcomes.get(uid):
                    self.db.outcomes.table.delete(uid)
            self.db.calls.forget(uids)
            self.db.search.forget(uids)
            log.info("call data past retention removed", extra={"calls": len(uids)})
        old_month = month_of(cutoff)
        for month in self.db.cdr.months():
            if month < old_month:
                self.db.cdr.partitions.drop(month)
        for day in sorted(p for p in self.calls_dir.iterdir() if p.is_dir()):
            try:
                if time.mktime(time.strptime(day.name, "%Y-%m-%d")) + 86400 > cutoff:
                    break
            except ValueError:
                continue
            if not any(day.iterdir()):
                shutil.rmtree(day, ignore_errors=True)
        return len(uids)

    def _forget_transcripts(self, cutoff: float, now: float) -> int:
        """Calls older than ``cutoff`` lose what was said: the transcript, the words their
        tags quote and the search index entry; metrics, tag counts and the score stay."""
        removed = 0
        self._words_done_before = min(self._words_done_before, cutoff)   # a shorter setting
        # only the calls that crossed the cutoff since the last pass, and those that failed
        # (the first pass after a start reads every month before the cutoff, once)
        span = [r["uid"] for r in self.db.calls.between(self._words_done_before, cutoff)]
        retry, self._words_retry = self._words_retry, set()
        for uid in [*retry, *span]:
            rec = self.db.calls.get(uid)
            if not rec or rec.get("words_removed_at") or not rec.get("result_path"):
                continue
            if rec.get("asr") == "pending":
                self._words_retry.add(uid)
                continue
            path = self.calls_dir / rec["result_path"]
            had = False
            try:
                with sealing.editing(path):     # a reseal waits, and does not undo this
                    result = sealing.read_json(path)
                    had = strip_transcript(result, now)
                    if had:
                        sealing.write_json(path, result)
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:
                log.error("transcript past retention not removed; tried again at the next pass",
                          extra={"uid": uid, "file": str(path), "reason": str(exc)})
                self._words_retry.add(uid)
                continue
            self.db.search.forget([uid])
            self.db.calls.update(uid, {"words_removed_at": now, **({"asr": "deleted"} if had else {})})
            removed += had
        self._words_done_before = max(self._words_done_before, cutoff)
        if removed:
            log.info("transcripts past retention removed", extra={"calls": removed})
        return removed

    def _alert(self, state: DiskState) -> None:
        cfg = self.settings.retention
        new = ("full" if state.free_mb < cfg.stop_recording_free_mb else
               "low" if state.free_percent < cfg.min_free_percent else "ok")
        if new == self.state:
            return
        self.state = new
        level = logging.INFO if new == "ok" else logging.ERROR
        log.log(level, "disk state", extra={"state": new, **state.as_dict()})
        self._publish(f"disk.{new}", **state.as_dict(),
                      message={"full": "disk full: new calls are refused and not recorded; "
                                       "free space or lower retention.audio_days",
                               "low": "disk low: the oldest recordings are being deleted",
                               "ok": "disk space back to normal"}[new])

    def reconcile(self) -> int:
        """Records whose recording vanished from the disk are marked so (start-up check)."""
        missing = 0
        for month in self.db.calls.months():
            for rec in list(self.db.calls.records(month)):
                name = rec.get("recording")
                if not name or rec.get("audio") in ("deleted", "missing") or not rec.get("result_path"):
                    continue
                folder = (self.calls_dir / rec["result_path"]).parent
                if not (folder / name).exists():
                    self.db.calls.update(rec["uid"], {"audio": "missing", "recording": None})
                    missing += 1
        if missing:
            log.warning("recordings missing from the disk", extra={"calls": missing})
        return missing

    def _publish(self, topic: str, **data: Any) -> None:
        if self.bus is not None:
            self.bus.publish(topic, **data)

    def serve(self, stop: threading.Event) -> None:
        """Reconcile once, then run every ``retention.check_interval_s``."""
        try:
            self.reconcile()
        except OSError as exc:
            log.error("reconcile failed", extra={"reason": str(exc)})
        while not stop.is_set():
            try:
                self.run()
            except OSError as exc:
                log.error("retention failed", extra={"reason": str(exc)})
            stop.wait(self.settings.retention.check_interval_s)
