"""The figures of a group of calls (one manager, a team, the office) over a period."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..cdr.callbacks import PbxCall
from ..store.outcomes import FINAL

CALLBACK_STATUSES = ("called_back_fast", "called_back_slow", "client_called_again", "never",
                     "pending", "no_number")


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(calls: Iterable[PbxCall], records: Iterable[dict[str, Any]],
            outcomes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Counts and averages; a ``None`` average means there was nothing to average."""
    calls = list(calls)
    records = list(records)
    inbound = [c for c in calls if c.direction == "inbound"]
    answered_in = [c for c in inbound if c.answered]
    missed = [c for c in inbound if not c.answered]
    outbound = [c for c in calls if c.direction == "outbound"]
    status = Counter((c.callback or {}).get("status") for c in missed)
    answered = [c for c in calls if c.answered and c.direction != "internal"]
    tags: Counter[str] = Counter()
    for r in records:
        tags.update(r.get("tags") or {})
    posted = [outcomes[r["uid"]] for r in records if r["uid"] in outcomes]
    won = [o for o in posted if o["result"] == "won"]
    decided = [o for o in posted if o["result"] in FINAL]
    return {
        "calls_in": len(inbound),
        "calls_out": len(outbound),
        "answered_in": len(answered_in),
        "outbound_reached": sum(c.answered for c in outbound),
        "missed": len(missed),
        **{f"missed_{s}": status.get(s, 0) for s in CALLBACK_STATUSES},
        "answer_rate": _share(len(answered_in), len(inbound)),
        "missed_never_share": _share(status.get("never", 0), len(inbound)),
        "avg_time_to_answer_s": _mean([c.ring_s for c in answered_in if c.ring_s is not None]),
        "avg_duration_s": _mean([c.talk_s for c in answered]),
        "recorded": len(records),
        "avg_talk_share": _mean([r["talk_share_agent"] for r in records
                                 if r.get("talk_share_agent") is not None]),
        "interruptions_per_call": _mean([r.get("interruptions_by_agent", 0) for r in records]),
        "avg_dead_air_share": _mean([r.get("dead_air_share", 0.0) for r in records]),
        "tags": dict(sorted(tags.items())),
        "avg_score": _mean([r["score"] for r in records if r.get("score") is not None]),
        "outcomes": len(posted),
        "won": len(won),
        "conversion": _share(len(won), len(decided)),
        "revenue": round(sum(o.get("amount") or 0.0 for o in won), 2),
    }


def calls_of(calls: list[PbxCall], agents: set[str]) -> list[PbxCall]:
    """The calls a set of agents is answerable for: answered or dialled by one of them, or
    missed while one of their phones rang."""
    return [c for c in calls if c.agent in agents
            or (not c.answered and c.direction == "inbound" and agents.intersection(c.rung))]
