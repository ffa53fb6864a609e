"""The compact call record the store keeps and the KPIs read.

The full call JSON (segments, transcript, tag evidence) stays in its file beside the
recording; the store holds what lists, filters and aggregates need, so 100k calls fit in
memory a month at a time.
"""

from __future__ import annotations

import time
from typing import Any

from .migrations import CURRENT, digits

RECORD_SCHEMA = CURRENT["call"]


def month_of(ts: float) -> str:
    return time.strftime("%Y-%m", time.localtime(ts))


def call_record(result: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    """Summarise a call JSON (``call-analysis/1``) into a store record."""
    call = result.get("call", {})
    extra = call.get("extra", {})
    parties = result.get("parties", {})
    totals = result.get("totals", {})
    tags: dict[str, int] = {}
    for tag in result.get("tags", []):
        tags[tag["tag"]] = tags.get(tag["tag"], 0) + 1
    score = result.get("score") or {}
    return {
        "schema": RECORD_SCHEMA,
        "uid": extra.get("uid") or call.get("call_id"),
        "source": call.get("source"),
        "started_at": call.get("started_at"),
        "month": month_of(call.get("started_at") or time.time()),
        "direction": call.get("direction"),
        "agent": call.get("agent"),
        "client": call.get("client"),
        "agent_digits": digits(call.get("agent")),
        "client_digits": digits(call.get("client")),
        "sip_call_id": extra.get("sip_call_id"),
        "duration_s": result.get("duration_s", 0.0),
        "talk_share_agent": parties.get("agent", {}).get("talk_share"),
        "interruptions_by_agent": parties.get("agent", {}).get("interruptions_made", 0),
        "interruptions_by_client": parties.get("client", {}).get("interruptions_made", 0),
        "dead_air_share": totals.get("dead_air_share", 0.0),
        # absent in calls analysed before holds were detected: unknown, not zero
        "hold_s": totals.get("hold_s"),
        "holds": len(result["holds"]) if "holds" in result else None,
        "tags": tags,
        "score": score.get("total"),
        "asr": result.get("asr", {}).get("status"),
        "recording": extra.get("recording"),
        "result_path": path,
        "notes": len(call.get("notes", [])),
    }
