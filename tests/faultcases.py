"""Every durable write path of the store, as cases a fault test drives the same way:
open, acknowledged writes, one write that fails (ENOSPC, EFBIG, EIO), one more write,
then a reload that must hold every acknowledged write and nothing torn.

Used in-process (faults injected through ``appliance.system.atomic``'s system-call seam)
and in a subprocess under ``RLIMIT_FSIZE`` (a real short write, then EFBIG).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from appliance.cdr.record import Context, normalise
from appliance.config import PANEL_FILE, Settings, load_settings
from appliance.mqtt.outbox import Outbox
from appliance.store.audit import AuditLog
from appliance.store.calls import CallStore
from appliance.store.cdr import CdrStore
from appliance.store.table import DurableMap, DurableTable
from storedata import at, result


@dataclass
class Case:
    name: str
    open: Callable[[Path], Any]
    write: Callable[[Any, int], None]
    present: Callable[[Path], set[int]]       # after a reload: which writes are there
    target: Callable[[Path], Path]             # the file the failing write extends
    close: Callable[[Any], None] = lambda h: h.close()
    prefill: list[int] = field(default_factory=list)
    fails: bool = True          # False: the write is durable, only its follow-up fails
    fault_syncs: str = "fdatasync"             # which sync call the EIO hits
    skip_writes: int = 0        # writes that go through before the injected ENOSPC
    slack: int = 20             # RLIMIT_FSIZE: the target's size plus this (under one line)


# --- a plain journal (DurableMap: settings, users, outcomes, ...) ---
def _map_present(folder: Path) -> set[int]:
    m = DurableMap(folder, kind="setting", str_keys=True)
    try:
        assert not m.problems, m.problems
        return {int(k[1:]) for k in m.docs}
    finally:
        m.close()


JOURNAL = Case(
    "journal", lambda d: DurableMap(d / "store" / "settings", kind="setting", str_keys=True),
    lambda m, i: m.put(f"k{i}", {"schema": 1, "value": "x" * 300, "i": i}),
    lambda d: _map_present(d / "store" / "settings"),
    lambda d: d / "store" / "settings" / "journal.log")


# --- compaction into a snapshot: the write itself is durable in the journal ---
def _table_present(folder: Path) -> set[int]:
    t = DurableTable(folder, compact_after=5)
    try:
        assert not t.problems, t.problems
        return {d.doc_id for d in t.table.all()}
    finally:
        t.close()


SNAPSHOT = Case(
    "snapshot", lambda d: DurableTable(d / "t", compact_after=5),
    lambda t, i: t.put(i, {"text": "y" * 400, "i": i}),
    lambda d: _table_present(d / "t"),
    lambda d: d / "t" / "snapshot.json",
    # compactions after 5 and 10 writes: the second is write 4, with room for its journal
    # line but not for the new snapshot
    prefill=[10, 11, 12, 13, 14, 15], fails=False, fault_syncs="fsync", skip_writes=1, slack=900)


# --- calls: the month table and the uid index ---
def _call_month(i: int) -> float:
    return at(1 + i % 12, 3, 10, year=2020 + i // 12)


def _calls_present(data_dir: Path) -> set[int]:
    store = CallStore(data_dir)
    try:
        assert not store.problems, store.problems
        by_uid = {int(u[1:]) for u in store.index.where if store.get(u) is not None}
        listed = {int(r["uid"][1:]) for m in store.months() for r in store.records(m)}
        assert by_uid == listed, (by_uid, listed)      # every listed call reachable by uid
        return by_uid
    finally:
        store.close()


UID_INDEX = Case(
    # many months of one call each: the index journal is the largest file, so a size limit
    # is reached by the index write
    "uid index", lambda d: CallStore(d),
    lambda s, i: s.add(result(f"c{i}", _call_month(i))),
    _calls_present, lambda d: d / "store" / "index" / "journal.log",
    prefill=list(range(100, 160)))


# --- PBX records ---
def _cdr_row(i: int) -> dict[str, Any]:
    return normalise({"id": f"r{i}", "start": at(10, 3, 9) + i, "from": "79160000001",
                      "to": "101"}, Context.from_settings(Settings()))


def _cdr_present(data_dir: Path) -> set[int]:
    store = CdrStore(data_dir)
    try:
        assert not store.problems, store.problems
        return {int(r["id"].rsplit(":r", 1)[1]) for r in store.rows(at(10, 1, 0), at(11, 1, 0))}
    finally:
        store.close()


CDR = Case(
    "cdr store", lambda d: CdrStore(d), lambda s, i: s.add([_cdr_row(i)]), _cdr_present,
    lambda d: d / "store" / "cdr" / "2026-10" / "journal.log")


# --- the MQTT outbox ---
def _outbox_open(data_dir: Path) -> Outbox:
    return Outbox(DurableMap(data_dir / "store" / "outbox", kind="outbox"), 1000, 24)


def _outbox_present(data_dir: Path) -> set[int]:
    box = _outbox_open(data_dir)
    try:
        assert not box.table.problems, box.table.problems
        return {json.loads(d["payload"])["i"] for _, d in box.pending(limit=1000)}
    finally:
        box.table.close()


OUTBOX = Case(
    "outbox", _outbox_open,
    lambda b, i: b.put("appliance/box/alerts", {"i": i, "text": "z" * 300}, qos=1),
    _outbox_present, lambda d: d / "store" / "outbox" / "journal.log",
    close=lambda b: b.table.close())


# --- the audit log ---
def _audit_present(data_dir: Path) -> set[int]:
    log = AuditLog(data_dir / "store" / "audit")
    try:
        assert not log.problems, log.problems
        return {e["detail"]["i"] for e in log.recent(1000)}
    finally:
        log.close()


def _audit_target(data_dir: Path) -> Path:
    return next((data_dir / "store" / "audit").glob("*/journal.log"))


AUDIT = Case(
    "audit", lambda d: AuditLog(d / "store" / "audit"),
    lambda a, i: a.record("admin", "test", "", i=i, text="w" * 300), _audit_present,
    _audit_target)


# --- settings changed in the panel (a whole file rewritten atomically) ---
class _PanelSettings:
    def __init__(self, data_dir: Path) -> None:
        self.settings = load_settings(environ={})
        self.settings.paths.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)

    def write(self, i: int) -> None:
        from appliance.system import panel_settings

        panel_settings.change(self.settings, {"retention": {"audio_days": 100 + i},
                                              "mqtt": {"box_id": "b" * 60 + str(i)}})

    def close(self) -> None:
        pass


def _panel_present(data_dir: Path) -> set[int]:
    # a whole-file rewrite keeps only the last write: report it
    saved = json.loads((data_dir / PANEL_FILE).read_text())
    return {saved["retention"]["audio_days"] - 100}


PANEL_SETTINGS = Case(
    "panel settings", _PanelSettings, lambda p, i: p.write(i), _panel_present,
    lambda d: d / PANEL_FILE, fault_syncs="fsync", slack=-10)   # the new file is as long

CASES = {c.name: c for c in (JOURNAL, SNAPSHOT, UID_INDEX, CDR, OUTBOX, AUDIT, PANEL_SETTINGS)}


def expected(case: Case) -> set[int]:
    """What a reload must hold after prefill, writes 1-3, the failed 4 and 5."""
    if case.name == "panel settings":
        return {5}
    return set(case.prefill) | {1, 2, 3, 5} | (set() if case.fails else {4})


def temporaries(data_dir: Path) -> list[str]:
    """Temporary files a failed write left behind."""
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
                  if p.name.endswith(".tmp"))
