"""The figures of a group of calls (one manager, a team, the office).

``tally`` reduces calls to sums and counts, which add up: a month's figures are the sum of
its days' tallies, so a new call recomputes one day, not the month. ``finish`` turns a
tally into the figures people read (shares and averages).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..cdr.callbacks import PbxCall
from ..store.outcomes import FINAL

CALLBACK_STATUSES = ("called_back_fast", "called_back_slow", "client_called_again", "never",
                     "pending", "no_number")
COUNTS = ("calls_in", "calls_out", "answered_in", "outbound_reached", "missed",
          *(f"missed_{s}" for s in CALLBACK_STATUSES), "missed_rang", "callbacks",
          "callbacks_reached", "conversations", "transfers_in", "recorded", "outcomes", "won",
          "decided")
MEANS = ("time_to_answer_s", "duration_s", "talk_share", "interruptions", "dead_air_share",
         "score", "hold_s")
SPREADS = ("tags", "revenue", "callback_waits")     # Counters: by tag, currency, wait (s)
Tally = dict[str, Any]


def empty() -> Tally:
    t: Tally = {k: 0 for k in COUNTS}
    t.update({f"{m}_sum": 0.0 for m in MEANS})
    t.update({f"{m}_n": 0 for m in MEANS})
    t.update({k: Counter() for k in SPREADS})
    return t


def add(into: Tally, other: Tally) -> Tally:
    """Add ``other`` into ``into`` (returned)."""
    for k, v in other.items():
        if isinstance(v, Counter):
            into.setdefault(k, Counter()).update(v)
        else:
            into[k] = into.get(k, 0) + v
    return into


def subtract(into: Tally, other: Tally) -> Tally:
    """Take ``other`` (added before) out of ``into`` (returned): a day recomputed."""
    for k, v in other.items():
        if isinstance(v, Counter):
            into.setdefault(k, Counter()).subtract(v)
        else:
            into[k] = into.get(k, 0) - v
    return into


def tally(calls: Iterable[PbxCall], records: Iterable[dict[str, Any]],
          outcomes: dict[str, dict[str, Any]], members: Iterable[str] | None = None,
          one: bool = False, currency: str = "RUB") -> Tally:
    """Sums and counts of ``calls`` and ``records`` for ``members`` (None: the office).

    A call counts for the group that took it: its first answering (or dialling) agent gets
    ``calls_in``/``calls_out``, every agent who talked on it gets their own legs' talk time
    (the later ones a ``transfers_in``), and a callback counts for whoever made it. A missed
    call counts in ``missed_rang`` for every group whose phone rang; ``one`` (a single
    manager): in ``missed`` only if it rang that manager alone, so that a queue call missed
    on three phones is one miss of the office, not three.
    """
    t = empty()
    who = None if members is None else set(members)

    def mine(agent: str | None) -> bool:
        return who is None or agent in who

    def mean(name: str, value: float | None) -> None:
        if value is not None:
            t[f"{name}_sum"] += value
            t[f"{name}_n"] += 1

    for c in calls:
        first = mine(c.agent)
        if c.direction == "inbound":
            if not c.answered:
                t["missed_rang"] += 1
                if not one or len(c.rung) <= 1:
                    t["calls_in"] += 1
                    t["missed"] += 1
                    t[f"missed_{(c.callback or {}).get('status', 'pending')}"] += 1
            elif first:
                t["calls_in"] += 1
                t["answered_in"] += 1
                mean("time_to_answer_s", c.ring_s)
        elif c.direction == "outbound" and first:
            t["calls_out"] += 1
            t["outbound_reached"] += c.answered
            if c.callback_of is not None:
                t["callbacks"] += 1
                t["callbacks_reached"] += c.answered
                t["callback_waits"][int(round(c.callback_wait_s or 0))] += 1
        if c.answered and c.direction != "internal":
            talk = [s for a, s in c.legs.items() if who is None or a in who]
            if talk or first:
                t["conversations"] += 1
                t["transfers_in"] += not first
                mean("duration_s", sum(talk) if talk else c.talk_s)
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
                t["revenue"][o.get("currency") or currency] += o.get("amount") or 0.0
    return t


def _median(counts: Counter[int]) -> float | None:
    """The median of values kept as value -> how many."""
    values = sorted(counts.elements())
    return float(statistics.median(values)) if values else None


def _avg(t: Tally, m: str) -> float | None:
    return round(t[f"{m}_sum"] / t[f"{m}_n"], 4) if t[f"{m}_n"] else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def finish(t: Tally) -> dict[str, Any]:
    """Counts, shares and averages; a ``None`` average means there was nothing to average."""
    return {
        **{k: t[k] for k in COUNTS if k != "decided"},
        "calls": t["calls_in"] + t["calls_out"],
        "answer_rate": _share(t["answered_in"], t["calls_in"]),
        "missed_never_share": _share(t["missed_never"], t["missed"]),
        "missed_never_share_of_inbound": _share(t["missed_never"], t["calls_in"]),
        "median_callback_s": _median(t["callback_waits"]),
        "talk_s": round(t["duration_s_sum"], 1),
        "avg_time_to_answer_s": _avg(t, "time_to_answer_s"),
        "avg_duration_s": _avg(t, "duration_s"),
        "avg_talk_share": _avg(t, "talk_share"),
        "interruptions_per_call": _avg(t, "interruptions"),
        "avg_dead_air_share": _avg(t, "dead_air_share"),
        "hold_s": round(t["hold_s_sum"], 1),
        "avg_hold_s": _avg(t, "hold_s"),
        "tags": dict(sorted((k, n) for k, n in t["tags"].items() if n > 0)),
        "avg_score": _avg(t, "score"),
        "conversion": _share(t["won"], t["decided"]),
        "revenue": {cur: round(v, 2) for cur, v in sorted(t["revenue"].items())
                    if abs(v) >= 0.005},
    }


def by_agent(calls: list[PbxCall], records: Iterable[dict[str, Any]],
             outcomes: dict[str, dict[str, Any]], currency: str = "RUB") -> dict[str, Tally]:
    """One tally per agent, in one pass over the calls: a call belongs to the agent who
    answered or dialled it, to every agent who talked on it, and (missed) to every agent
    whose phone rang."""
    calls_of: dict[str, list[PbxCall]] = {}
    for c in calls:
        if not c.answered and c.direction == "inbound":
            owners = set(c.rung)
        else:
            owners = {a for a in c.legs if a} | ({c.agent} if c.agent else set())
        for a in owners:
            calls_of.setdefault(a, []).append(c)
    records_of: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("agent"):
            records_of.setdefault(r["agent"], []).append(r)
    return {a: tally(calls_of.get(a, ()), records_of.get(a, ()), outcomes, (a,), True, currency)
            for a in set(calls_of) | set(records_of)}


def by_team(calls: list[PbxCall], records: Iterable[dict[str, Any]],
            outcomes: dict[str, dict[str, Any]], teams: dict[str, list[str]],
            currency: str = "RUB") -> dict[str, Tally]:
    """One tally per team; a call rung on two members counts once."""
    out = {}
    records = list(records)
    for team, members in teams.items():
        group = set(members)
        mine = [c for c in calls if c.agent in group or group.intersection(c.legs)
                or (not c.answered and c.direction == "inbound" and group.intersection(c.rung))]
        out[team] = tally(mine, [r for r in records if r.get("agent") in group], outcomes,
                          group, False, currency)
    return out
