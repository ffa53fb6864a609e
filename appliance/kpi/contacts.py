"""Every call of a time range, whatever told the box about it: PBX rows (answered or
missed) joined to recorded calls, plus recorded calls the PBX rows do not cover, each with
its callback status. The KPIs and client lists all read this one view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..cdr.callbacks import PbxCall, callback_status, join_recorded, merge_legs, recorded_as_calls
from ..store.cdr import CdrStore
from ..config import CdrSettings
from ..store.calls import CallStore
from ..store.monthly import day_of


@dataclass
class Contacts:
    calls: list[PbxCall]                 # calls that started in the range, oldest first
    records: dict[str, dict[str, Any]]   # recorded calls of the range by uid


def contacts(calls: CallStore, cdr: CdrStore, cfg: CdrSettings, start: float, end: float,
             now: float) -> Contacts:
    """The calls of [start, end). Rows before and after are read too: a recording may start
    just across the edge of its PBX row, a missed call's callback may come up to
    ``cfg.callback_slow_h`` after the range, and a callback in the range may answer a call
    missed up to that long before it (it is credited on the day it was made)."""
    after = cfg.callback_slow_h * 3600
    margin = cfg.match_window_s
    records = calls.between(start - margin, end + after)
    pbx = merge_legs(cdr.rows(start - after, end + after), cfg.number_digits)
    joined = join_recorded(pbx, records, cfg)
    everything = sorted(pbx + recorded_as_calls(records, joined, cfg.number_digits),
                        key=lambda c: c.start)
    callback_status(everything, cfg, now)
    return Contacts([c for c in everything if start <= c.start < end],
                    {r["uid"]: r for r in records if start <= (r.get("started_at") or 0) < end})


def version(calls: CallStore, cdr: CdrStore, cfg: CdrSettings, start: float,
            end: float) -> tuple[Any, ...]:
    """Changes whenever anything ``contacts`` reads for this range was written."""
    out: list[Any] = []
    day = start - cfg.callback_slow_h * 3600
    last = end + cfg.callback_slow_h * 3600
    while day < last + 86400:
        name = day_of(day)
        out += [calls.partitions.day_version(name), cdr.partitions.day_version(name)]
        day += 86400
    return tuple(out)
