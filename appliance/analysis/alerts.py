"""The alerts one call raises: the same rules for the panel's alert list and for MQTT.

They read a stored call record (``store.records.call_record``), so a call alerts alike
when it is published at hang-up and when the panel lists it later.
"""

from __future__ import annotations

from typing import Any, Mapping

from .problems import problem_alert

# dictionary tags whose hits alert, and the alert's kind and severity
ALERTING_TAGS = {"profanity": ("profanity", "critical"), "complaints": ("complaint", "warning")}


def _hits(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Hits of alerting dictionaries: ``alert_hits`` (only entries marked to alert, with the
    parties), or for records kept before it, the tag counts."""
    if "alert_hits" in record:
        return dict(record["alert_hits"] or {})
    tags = record.get("tags") or {}
    return {tag: {"count": tags[tag], "parties": []} for tag in ALERTING_TAGS if tags.get(tag)}


def alerts_for(record: Mapping[str, Any], low_score: float) -> list[dict[str, Any]]:
    """Each alert of one call: ``kind``, ``severity``, ``message`` and its details. A call
    the client made a problem of alerts as ``problem_call`` besides its dictionary hits."""
    out: list[dict[str, Any]] = []
    for tag, hit in _hits(record).items():
        if tag not in ALERTING_TAGS:
            continue
        kind, severity = ALERTING_TAGS[tag]
        parties = list(hit.get("parties") or [])
        where = f", {', '.join(parties)}" if parties else ""
        out.append({"kind": kind, "severity": severity, "count": hit.get("count", 0),
                    "parties": parties,
                    "message": f"{kind} in a call ({hit.get('count', 0)}x{where})"})
    score = record.get("score")
    if score is not None and score < low_score:
        out.append({"kind": "low_score", "severity": "warning", "score": score,
                    "message": f"checklist score {score} below {low_score:g}"})
    problem = problem_alert(record)
    if problem is not None:
        out.append({**problem, "message": f"problem call: {', '.join(problem['reasons'])}"})
    return out
