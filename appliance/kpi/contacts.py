"""Every call of a time range, whatever told the box about it: PBX rows (answered or
missed) joined to recorded calls, plus recorded calls the PBX rows do not cover, each with
its callback status. The KPIs and client lists all read this one view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..cdr.callbacks import PbxCall, callback_status, join_recorded, merge_legs, recorded_as_calls
from ..cdr.store import CdrStore, months_between
from ..config import CdrSettings
from ..store.calls import CallStore


@dataclass
class Contacts:
    calls: list[PbxCall]                 # calls that started in the range, oldest first
    records: dict[str, dict[str, Any]]   # recorded calls of the range by uid


def records_between(store: CallStore, start: float, end: float) -> list[dict[str, Any]]:
    """Recorded call records that started in [start, end) (views: do not modify)."""
    out: list[dict[str, Any]] = []
    for month in months_between(start, end):
        out += [r for r in store.records(month) if start <= (r.get("started_at") or 0) < end]
    return out


def contacts(calls: CallStore, cdr: CdrStore, cfg: CdrSettings, start: float, end: float,
             now: float) -> Contacts:
    """The calls of [start, end). Rows a little before and after are read too: a recording
    may start just across the edge of its PBX row, and a missed call's callback may come up to
    ``cfg.callback_slow_h`` after the range."""
    after = cfg.callback_slow_h * 3600
    margin = cfg.match_window_s
    records = records_between(calls, start - margin, end + after)
    pbx = merge_legs(cdr.rows(start - margin, end + after), cfg.number_digits)
    joined = join_recorded(pbx, records, cfg)
    everything = sorted(pbx + recorded_as_calls(records, joined, cfg.number_digits),
                        key=lambda c: c.start)
    callback_status(everything, cfg, now)
    return Contacts([c for c in everything if start <= c.start < end],
                    {r["uid"]: r for r in records if start <= (r.get("started_at") or 0) < end})


def version(calls: CallStore, cdr: CdrStore, cfg: CdrSettings, start: float,
            end: float) -> tuple[int, ...]:
    """Changes whenever anything ``contacts`` reads for this range was written."""
    months = months_between(start - cfg.match_window_s, end + cfg.callback_slow_h * 3600)
    return tuple(calls.partitions.version(m) for m in months) + tuple(
        cdr.partitions.version(m) for m in months)
