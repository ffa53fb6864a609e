"""Problem calls: what the client did, beside the agent's checklist. A call where the client
complained or swore, raised an objection the agent let pass, talked over the agent at
length, or was left on hold for long is a problem call, whatever the agent's score.

The rule lives here only: the store keeps each call's reasons (``problems`` in its record),
the panel lists and alerts on them, and MQTT sends its ``problem_call`` alert from them.
"""

from __future__ import annotations

from typing import Any, Mapping

REASONS = ("complaint", "profanity", "unanswered_objection", "long_overlap", "long_hold")

# Both speaking for this long in one stretch, or this long in all, is no backchannel: a
# quarrel or a client who will not be stopped (the box measures no loudness per party).
LONG_OVERLAP_S = 3.0
OVERLAP_TOTAL_S = 12.0
# An objection is answered when the agent speaks at least this long in the next REPLY_WINDOW_S.
REPLY_S = 2.0
REPLY_WINDOW_S = 20.0
LONG_HOLD_S = 120.0


def _agent_speech(segments: list[Mapping[str, Any]], start: float, end: float) -> float:
    return sum(max(0.0, min(s.get("end", 0.0), end) - max(s.get("start", 0.0), start))
               for s in segments if s.get("party") == "agent")


def _longest_hold(result: Mapping[str, Any]) -> float:
    """The longest hold: ``holds`` ([{start, end}]) when the call JSON has them, else
    ``totals.hold_s``; 0 for calls analysed without hold detection."""
    holds = result.get("holds") or []
    longest = max((float(h.get("end", 0)) - float(h.get("start", 0)) for h in holds
                   if isinstance(h, Mapping)), default=0.0)
    return longest or float((result.get("totals") or {}).get("hold_s") or 0.0)


def problem_reasons(result: Mapping[str, Any]) -> list[str]:
    """Why a call (its call JSON) is a problem call; empty when it is not."""
    out: list[str] = []
    client_tags = [t for t in result.get("tags") or [] if t.get("party") == "client"]
    kinds = {t.get("tag") for t in client_tags}
    if "complaints" in kinds:
        out.append("complaint")
    if "profanity" in kinds:
        out.append("profanity")
    segments = result.get("segments") or []
    if segments and any(t.get("tag") == "objections" and _agent_speech(
            segments, t.get("at", 0.0), t.get("at", 0.0) + REPLY_WINDOW_S) < REPLY_S
            for t in client_tags):
        out.append("unanswered_objection")
    overlaps = result.get("overlaps") or []
    lengths = [o.get("end", 0.0) - o.get("start", 0.0) for o in overlaps]
    if max(lengths, default=0.0) >= LONG_OVERLAP_S or sum(lengths) >= OVERLAP_TOTAL_S:
        out.append("long_overlap")
    if _longest_hold(result) >= LONG_HOLD_S:
        out.append("long_hold")
    return out


def problems_of(record: Mapping[str, Any]) -> list[str]:
    """A stored call's reasons. Records kept before reasons were stored have only tag
    counts, without the party: a complaint or profanity tag stands for the client's."""
    if "problems" in record:
        return list(record["problems"] or [])
    tags = record.get("tags") or {}
    return [reason for reason, tag in (("complaint", "complaints"), ("profanity", "profanity"))
            if tags.get(tag)]


def problem_alert(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The alert a problem call raises (kind, severity, reasons); None for other calls."""
    reasons = problems_of(record)
    if not reasons:
        return None
    severity = "critical" if "profanity" in reasons or len(reasons) >= 2 else "warning"
    return {"kind": "problem_call", "severity": severity, "reasons": reasons}
