"""The compact call record the store keeps and the KPIs read.

The full call JSON (segments, transcript, tag evidence) stays in its file beside the
recording; the store holds what lists, filters and aggregates need, so 100k calls fit in
memory a month at a time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..analysis.problems import problem_reasons
from ..core.numbers import digits
from ..core.times import month_of
from .migrations import CURRENT

RECORD_SCHEMA = CURRENT["call"]


def recording_name(extra: dict[str, Any]) -> str | None:
    """The recording beside the call JSON: ``extra.recording``, or for calls analysed from
    one file before that was set, that file's name."""
    files = extra.get("files") or []
    if extra.get("recording"):
        return extra["recording"]
    return Path(files[0]).name if len(files) == 1 else None


def call_record(result: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    """Summarise a call JSON (``call-analysis/1``) into a store record."""
    call = result.get("call", {})
    extra = call.get("extra", {})
    parties = result.get("parties", {})
    totals = result.get("totals", {})
    tags: dict[str, int] = {}
    alert_hits: dict[str, dict[str, Any]] = {}
    for tag in result.get("tags", []):
        tags[tag["tag"]] = tags.get(tag["tag"], 0) + 1
        if tag.get("alert"):        # entries of a dictionary marked to alert
            hit = alert_hits.setdefault(tag["tag"], {"count": 0, "parties": []})
            hit["count"] += 1
            if tag.get("party") and tag["party"] not in hit["parties"]:
                hit["parties"] = sorted([*hit["parties"], tag["party"]])
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
        "alert_hits": alert_hits,
        "score": score.get("total"),
        "problems": problem_reasons(result),
        "asr": result.get("asr", {}).get("status"),
        "recording": recording_name(extra),
        "result_path": path,
        "notes": len(call.get("notes", [])),
    }
