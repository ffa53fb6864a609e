"""Clients worth a look: 'cooling' (silent for longer than their own usual gap between
contacts) and 'zombie' (active once, long silent since, never decided)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date
from typing import Any

from ..config import KpiSettings
from ..store.outcomes import FINAL, INTEREST
from .contacts import Contacts

DAY = 86400.0


def usual_gap_days(starts: list[float]) -> float | None:
    """The median gap, in days, between a client's contact days (contacts on one day are one
    contact); None below three contact days, where a median of one gap means little."""
    days = sorted({date.fromtimestamp(t).toordinal() for t in starts})
    if len(days) < 3:
        return None
    return float(statistics.median(b - a for a, b in zip(days, days[1:])))


def client_lists(view: Contacts, outcomes: dict[str, dict[str, Any]], cfg: KpiSettings,
                 now: float) -> dict[str, list[dict[str, Any]]]:
    """``{"cooling": [...], "zombie": [...]}``, most urgent first.

    A contact is a conversation: an answered call. A client is undecided when no decision
    (an outcome ``won``, ``lost`` or ``not_interested``) came after their last interest (a
    call tagged with one of ``cfg.interest_tags``, or an outcome ``interested`` /
    ``follow_up``). An undecided client is:

    - a zombie after ``cfg.zombie_contacts`` conversations and ``cfg.zombie_days`` without one;
    - else cooling when silent for more than ``cfg.cooling_factor`` times their own usual gap
      (and at least ``cfg.cooling_min_days``), or, with no usual gap yet, when they showed
      interest and were silent for ``cfg.cooling_days``.
    """
    by_client: dict[str, list[Any]] = defaultdict(list)
    for c in view.calls:
        if c.answered and c.client_key and c.direction in ("inbound", "outbound"):
            by_client[c.client_key].append(c)
    interest_tags = set(cfg.interest_tags)
    cooling, zombie = [], []
    for calls in by_client.values():
        calls.sort(key=lambda c: c.start)
        interest_at = decided_at = None
        for c in calls:
            rec = view.records.get(c.call_uid) if c.call_uid else None
            outcome = outcomes.get(c.call_uid) if c.call_uid else None
            if (rec and interest_tags.intersection(rec.get("tags") or {})) or (
                    outcome and outcome["result"] in INTEREST):
                interest_at = c.start
            if outcome and outcome["result"] in FINAL:
                decided_at = c.start
        if decided_at is not None and (interest_at is None or decided_at >= interest_at):
            continue
        last = calls[-1]
        silent = (now - last.start) / DAY
        gap = usual_gap_days([c.start for c in calls])
        summary = {"client": last.client, "contacts": len(calls), "first_contact": calls[0].start,
                   "last_contact": last.start, "last_agent": last.agent,
                   "agents": sorted({c.agent for c in calls if c.agent}),
                   "interest_at": interest_at, "silent_days": round(silent, 1),
                   "usual_gap_days": gap}
        if len(calls) >= cfg.zombie_contacts and silent >= cfg.zombie_days:
            zombie.append(summary)
        elif gap is not None and silent > max(cfg.cooling_factor * gap, cfg.cooling_min_days):
            cooling.append(summary)
        elif gap is None and interest_at is not None and silent >= cfg.cooling_days:
            cooling.append(summary)
    cooling.sort(key=lambda s: s["last_contact"])
    zombie.sort(key=lambda s: (-s["contacts"], s["last_contact"]))
    return {"cooling": cooling, "zombie": zombie}
