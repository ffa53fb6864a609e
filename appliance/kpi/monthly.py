"""Per-manager figures for a month: the table a head of sales opens first."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from ..store.calls import CallStore


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def manager_kpis(store: CallStore, month: str) -> dict[str, dict[str, Any]]:
    """For each agent: calls (in/out), average duration, talk share, interruptions per call,
    dead-air share, tag counts and average score over the month's recorded calls."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in store.records(month):
        groups[rec.get("agent") or "unknown"].append(rec)
    out = {}
    for agent, recs in sorted(groups.items()):
        tags: Counter[str] = Counter()
        for r in recs:
            tags.update(r.get("tags") or {})
        out[agent] = {
            "calls": len(recs),
            "inbound": sum(r.get("direction") == "inbound" for r in recs),
            "outbound": sum(r.get("direction") == "outbound" for r in recs),
            "avg_duration_s": _mean([r["duration_s"] for r in recs]),
            "avg_talk_share": _mean([r["talk_share_agent"] for r in recs
                                     if r.get("talk_share_agent") is not None]),
            "interruptions_per_call": _mean([r.get("interruptions_by_agent", 0) for r in recs]),
            "avg_dead_air_share": _mean([r.get("dead_air_share", 0.0) for r in recs]),
            "tags": dict(tags),
            "avg_score": _mean([r["score"] for r in recs if r.get("score") is not None]),
        }
    return out
