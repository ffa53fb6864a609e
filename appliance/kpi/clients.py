"""Clients worth a look: 'cooling' (showed interest, then no contact for a while) and
'zombie' (many conversations, no decision)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..config import KpiSettings
from ..store.outcomes import FINAL, INTEREST
from .contacts import Contacts


def client_lists(view: Contacts, outcomes: dict[str, dict[str, Any]], cfg: KpiSettings,
                 now: float) -> dict[str, list[dict[str, Any]]]:
    """``{"cooling": [...], "zombie": [...]}``, most urgent first.

    A contact is a conversation: an answered call. Interest is a recorded call tagged with one
    of ``cfg.interest_tags`` or an outcome ``interested`` / ``follow_up``; a decision is an
    outcome ``won``, ``lost`` or ``not_interested``.
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
        last = calls[-1]
        summary = {"client": last.client, "contacts": len(calls), "first_contact": calls[0].start,
                   "last_contact": last.start, "last_agent": last.agent,
                   "agents": sorted({c.agent for c in calls if c.agent}),
                   "interest_at": interest_at}
        undecided = decided_at is None or (interest_at is not None and decided_at < interest_at)
        silent_days = (now - last.start) / 86400
        if interest_at is not None and undecided and silent_days >= cfg.cooling_days:
            cooling.append({**summary, "silent_days": round(silent_days, 1)})
        if decided_at is None and len(calls) >= cfg.zombie_contacts:
            zombie.append(summary)
    cooling.sort(key=lambda s: s["last_contact"])
    zombie.sort(key=lambda s: -s["contacts"])
    return {"cooling": cooling, "zombie": zombie}
