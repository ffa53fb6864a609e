"""The figures of a group of calls (one manager, a team, the office).

``tally`` reduces calls to sums and counts, which add up: a month's figures are the sum of
its days' tallies, so a new call recomputes one day, not the month. ``finish`` turns a
tally into the figures people read (shares and averages).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..cdr.callbacks import PbxCall
from ..store.outcomes import FINAL

CALLBACK_STATUSES = ("called_back_fast", "called_back_slow", "client_called_again", "never",
                     "pending", "no_number")
COUNTS = ("calls_in", "calls_out", "answered_in", "outbound_reached", "missed",
          *(f"missed_{s}" for s in CALLBACK_STATUSES), "recorded", "outcomes", "won", "decided")
MEANS = ("time_to_answer_s", "duration_s", "talk_share", "interruptions", "dead_air_share",
         "score", "hold_s")
Tally = dict[str, Any]


def empty() -> Tally:
    t: Tally = {k: 0 for k in COUNTS}
    t.update({f"{m}_sum": 0.0 for m in MEANS})
    t.update({f"{m}_n": 0 for m in MEANS})
    t["revenue"] = 0.0
    t["tags"] = Counter()
    return t


def add(into: Tally, other: Tally) -> Tally:
    """Add ``other`` into ``into`` (returned)."""
    for k, v in other.items():
        if k == "tags":
            into[k].update(v)
        else:
            into[k] += v
    return into


def tally(calls: Iterable[PbxCall], records: Iterable[dict[str, Any]],
          outcomes: dict[str, dict[str, Any]]) -> Tally:
    t = empty()

    def mean(name: str, value: float | None) -> None:
        if value is not None:
            t[f"{name}_sum"] += value
            t[f"{name}_n"] += 1

    for c in calls:
        if c.direction == "inbound":
            t["calls_in"] += 1
            if c.answered:
                t["answered_in"] += 1
                mean("time_to_answer_s", c.ring_s)
            else:
                t["missed"] += 1
                t[f"missed_{(c.callback or {}).get('status', 'pending')}"] += 1
        elif c.direction == "outbound":
            t["calls_out"] += 1
            t["outbound_reached"] += c.answered
        if c.answered and c.direction != "internal":
            mean("duration_s", c.talk_s)
    for r in records:
        t["recorded"] += 1
        mean("talk_share", r.get("talk_share_agent"))
        mean("interruptions", r.get("interruptions_by_agent", 0))
        mean("dead_air_share", r.get("dead_air_share", 0.0))
        mean("score", r.get("score"))
        mean("hold_s", r.get("hold_s"))
        if r.get("tags"):
            t["tags"].update(r["tags"])
        o = outcomes.get(r["uid"])
        if o is not None:
            t["outcomes"] += 1
            t["decided"] += o["result"] in FINAL
            if o["result"] == "won":
                t["won"] += 1
                t["revenue"] += o.get("amount") or 0.0
    return t


def _avg(t: Tally, m: str) -> float | None:
    return round(t[f"{m}_sum"] / t[f"{m}_n"], 4) if t[f"{m}_n"] else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def finish(t: Tally) -> dict[str, Any]:
    """Counts, shares and averages; a ``None`` average means there was nothing to average."""
    return {
        **{k: t[k] for k in COUNTS if k != "decided"},
        "answer_rate": _share(t["answered_in"], t["calls_in"]),
        "missed_never_share": _share(t["missed_never"], t["calls_in"]),
        "avg_time_to_answer_s": _avg(t, "time_to_answer_s"),
        "avg_duration_s": _avg(t, "duration_s"),
        "avg_talk_share": _avg(t, "talk_share"),
        "interruptions_per_call": _avg(t, "interruptions"),
        "avg_dead_air_share": _avg(t, "dead_air_share"),
        "hold_s": round(t["hold_s_sum"], 1),
        "avg_hold_s": _avg(t, "hold_s"),
        "tags": dict(sorted(t["tags"].items())),
        "avg_score": _avg(t, "score"),
        "conversion": _share(t["won"], t["decided"]),
        "revenue": round(t["revenue"], 2),
    }


def by_agent(calls: list[PbxCall], records: Iterable[dict[str, Any]],
             outcomes: dict[str, dict[str, Any]]) -> dict[str, Tally]:
    """One tally per agent, in one pass. A call belongs to the agent who answered or dialled
    it, and a missed call to every agent whose phone rang."""
    calls_of: dict[str, list[PbxCall]] = {}
    for c in calls:
        owners = c.rung if (not c.answered and c.direction == "inbound") else (
            [c.agent] if c.agent else [])
        for a in owners:
            calls_of.setdefault(a, []).append(c)
    records_of: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("agent"):
            records_of.setdefault(r["agent"], []).append(r)
    return {a: tally(calls_of.get(a, ()), records_of.get(a, ()), outcomes)
            for a in set(calls_of) | set(records_of)}


def by_team(calls: list[PbxCall], records: Iterable[dict[str, Any]],
            outcomes: dict[str, dict[str, Any]], teams: dict[str, list[str]]) -> dict[str, Tally]:
    """One tally per team; a call rung on two members counts once."""
    out = {}
    records = list(records)
    for team, members in teams.items():
        group = set(members)
        mine = [c for c in calls if c.agent in group
                or (not c.answered and c.direction == "inbound" and group.intersection(c.rung))]
        out[team] = tally(mine, [r for r in records if r.get("agent") in group], outcomes)
    return out
