"""From PBX rows to calls: legs merged, recorded calls joined, missed calls and callbacks.

A missed call is an inbound call no leg of which was answered. Its callback is the first
later outbound call to the same number (an attempt counts; ``reached`` says whether the
client answered). A client who calls again and is answered before any callback needs none:
``client_called_again``. Statuses: ``called_back_fast`` (within ``cdr.callback_fast_min``),
``called_back_slow`` (within ``cdr.callback_slow_h``), ``client_called_again``, ``never``
(nothing within ``callback_slow_h``), ``pending`` (that time has not passed yet).

A callback is credited to whoever made it: the outbound call carries ``callback_of`` (the
missed call it answered) and how long the client waited. A transferred call keeps each
answered leg's talk time under that leg's agent (``legs``), so both managers are credited.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..config import CdrSettings


def number_key(number_digits: str | None, n: int) -> str:
    """Numbers compare on their last ``n`` digits: +7 916..., 8 916... and 916... match."""
    return (number_digits or "")[-n:]


@dataclass
class PbxCall:
    """One call as the PBX saw it (its legs merged), and what the box knows about it."""

    group: str
    start: float
    direction: str
    answered: bool
    client: str | None
    client_key: str
    agent: str | None                    # who answered (inbound) or dialled (outbound)
    rung: list[str] = field(default_factory=list)    # agents whose phones rang
    ring_s: float | None = None          # time to answer
    talk_s: float = 0.0
    call_ids: set[str] = field(default_factory=set)
    call_uid: str | None = None          # the recorded call, when joined
    callback: dict[str, Any] | None = None
    legs: dict[str, float] = field(default_factory=dict)   # agent -> talk time of their legs
    callback_of: str | None = None       # outbound: the missed call (group) this called back
    callback_wait_s: float | None = None  # how long that client had waited

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "start": self.start, "direction": self.direction,
                "answered": self.answered, "client": self.client, "agent": self.agent,
                "rung": self.rung, "ring_s": self.ring_s, "talk_s": self.talk_s,
                "legs": self.legs, "call_uid": self.call_uid, "callback": self.callback}


def merge_legs(rows: Iterable[dict[str, Any]], digits: int) -> list[PbxCall]:
    """Rows of one call (same ``group``) become one PbxCall, oldest first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    calls = []
    for group, rows_of in groups.items():
        if len(rows_of) == 1:         # most calls: one leg, built directly (a month: 10k+)
            calls.append(_one_leg(group, rows_of[0], digits))
            continue
        rows_of.sort(key=lambda r: r["start"])
        first = rows_of[0]
        answered = [r for r in rows_of if r["answered"]]
        client = key = None
        for r in rows_of:
            if r["client"]:
                client, key = r["client"], r["client_digits"]
                break
        direction = first["direction"]
        won = answered[0] if answered else None
        legs: dict[str, float] = {}
        for r in answered:
            who = r["agent"] or ""
            legs[who] = round(legs.get(who, 0.0) + r["talk_s"], 3)
        call = PbxCall(
            group=group, start=first["start"], direction=direction, answered=won is not None,
            client=client, client_key=(key or "")[-digits:],
            agent=won["agent"] if won else first["agent"] if direction == "outbound" else None,
            rung=sorted({r["agent"] for r in rows_of if r["agent"]}),
            talk_s=round(sum(legs.values()), 3),
            call_ids={r["call_id"] for r in rows_of if r["call_id"]}, legs=legs)
        if won is not None and won["answer"] is not None:
            call.ring_s = round(won["answer"] - first["start"], 3)
        calls.append(call)
    calls.sort(key=lambda c: c.start)
    return calls


def _one_leg(group: str, r: dict[str, Any], digits: int) -> PbxCall:
    """``merge_legs`` of a single row."""
    answered = bool(r["answered"])
    direction = r["direction"]
    call = PbxCall(group, r["start"], direction, answered, r["client"] or None,
                   ((r["client_digits"] or "") if r["client"] else "")[-digits:],
                   r["agent"] if answered or direction == "outbound" else None,
                   [r["agent"]] if r["agent"] else [], None,
                   r["talk_s"] if answered else 0.0, {r["call_id"]} if r["call_id"] else set())
    if answered:
        call.legs = {r["agent"] or "": r["talk_s"]}
    if answered and r["answer"] is not None:
        call.ring_s = round(r["answer"] - r["start"], 3)
    return call


def join_recorded(calls: list[PbxCall], records: Iterable[dict[str, Any]],
                  cfg: CdrSettings) -> set[str]:
    """Link PBX calls to recorded calls: by SIP Call-ID, else by the client's number and a
    start time within ``cfg.match_window_s`` (and the same agent when both know it).
    Returns the uids that were joined."""
    by_call_id = {cid: c for c in calls for cid in c.call_ids}
    by_client: dict[str, list[PbxCall]] = defaultdict(list)
    for c in calls:
        if c.answered and c.client_key:
            by_client[c.client_key].append(c)
    joined: set[str] = set()
    for rec in sorted(records, key=lambda r: r.get("started_at") or 0):
        match = by_call_id.get(rec.get("sip_call_id") or "")
        if match is None or match.call_uid is not None:
            key = number_key(rec.get("client_digits"), cfg.number_digits)
            t = rec.get("started_at") or 0
            best = None
            for c in by_client.get(key, ()):
                if c.call_uid is not None:
                    continue
                if rec.get("agent") and c.agent and rec["agent"] != c.agent \
                        and rec["agent"] not in c.legs:
                    continue
                gap = abs(t - (c.start + (c.ring_s or 0)))
                if gap <= cfg.match_window_s and (best is None or gap < best[0]):
                    best = (gap, c)
            match = best[1] if best else None
        if match is not None and match.call_uid is None:
            match.call_uid = rec["uid"]
            joined.add(rec["uid"])
    return joined


def recorded_as_calls(records: Iterable[dict[str, Any]], joined: set[str],
                      digits: int) -> list[PbxCall]:
    """Recorded calls the PBX rows do not cover (no CDR feed, or a gap) as answered calls."""
    out = []
    for rec in records:
        if rec["uid"] in joined:
            continue
        out.append(PbxCall(group=f"rec:{rec['uid']}", start=rec.get("started_at") or 0,
                           direction=rec.get("direction") or "inbound", answered=True,
                           client=rec.get("client"),
                           client_key=number_key(rec.get("client_digits"), digits),
                           agent=rec.get("agent"), rung=[rec["agent"]] if rec.get("agent") else [],
                           talk_s=rec.get("duration_s") or 0.0, call_uid=rec["uid"],
                           legs={rec.get("agent") or "": rec.get("duration_s") or 0.0}))
    return out


def callback_status(calls: list[PbxCall], cfg: CdrSettings, now: float) -> None:
    """Set ``callback`` on every missed inbound call in ``calls`` (all contacts, sorted)."""
    fast, slow = cfg.callback_fast_min * 60, cfg.callback_slow_h * 3600
    by_client: dict[str, list[PbxCall]] = defaultdict(list)
    for c in calls:
        if c.client_key:
            by_client[c.client_key].append(c)
    for c in calls:
        if c.direction != "inbound" or c.answered:
            continue
        later = [x for x in by_client.get(c.client_key, ()) if x.start > c.start] if c.client_key else []
        back = next((x for x in later if x.direction == "outbound"), None)
        again = next((x for x in later if x.direction == "inbound" and x.answered), None)
        status: str
        info: dict[str, Any] = {}
        if not c.client_key:
            status = "no_number"            # anonymous caller: nothing to call back
        elif back is not None and back.start - c.start <= slow and (
                again is None or back.start <= again.start):
            delay = back.start - c.start
            status = "called_back_fast" if delay <= fast else "called_back_slow"
            info = {"at": back.start, "by": back.agent, "delay_s": round(delay, 1),
                    "reached": back.answered}
            if back.callback_of is None:      # one callback, two misses: the longer wait
                back.callback_of, back.callback_wait_s = c.group, round(delay, 1)
        elif again is not None and again.start - c.start <= slow:
            status = "client_called_again"
            info = {"at": again.start, "by": again.agent,
                    "delay_s": round(again.start - c.start, 1)}
        elif now - c.start < slow:
            status = "pending"
        else:
            status = "never"
            if back is not None:
                info = {"late_at": back.start, "by": back.agent}
        c.callback = {"status": status, **info}
