"""Topics and payloads. Every payload is JSON with ``v`` (schema version), ``id`` (unique,
for de-duplication: delivery is at least once), ``ts`` (when it happened, not when it was
sent) and ``box``. Documented with examples in docs/mqtt.md."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..config import MqttSettings
from ..store.records import call_record

VERSION = 1
ALERT_KINDS = ("profanity", "complaint", "low_score", "missed_not_called_back",
               "registration_lost", "disk_low", "disk_full", "asr_behind", "outbox_dropped")


def box_id(cfg: MqttSettings) -> str:
    return cfg.box_id or socket.gethostname().split(".")[0] or "appliance"


@dataclass(frozen=True)
class Topics:
    prefix: str
    box: str

    @classmethod
    def of(cls, cfg: MqttSettings) -> "Topics":
        return cls(cfg.topic_prefix, box_id(cfg))

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.box}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def calls(self) -> str:
        return f"{self.base}/calls"

    @property
    def alerts(self) -> str:
        return f"{self.base}/alerts"

    def kpi(self, group: str, name: str = "") -> str:
        """``kpi/manager/<agent>``, ``kpi/team/<team>`` or ``kpi/office``."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64]
        return f"{self.base}/kpi/{group}" + (f"/{safe}" if name else "")


def envelope(box: str, ts: float | None = None, **body: Any) -> dict[str, Any]:
    return {"v": VERSION, "id": uuid.uuid4().hex, "ts": ts if ts is not None else time.time(),
            "box": box, **body}


def call_summary(box: str, result: dict[str, Any], transcripts: bool) -> dict[str, Any]:
    """What a central server needs of an ended call: never audio, the transcript only when
    ``mqtt.transcripts`` is on."""
    rec = call_record(result)         # the same fields the store keeps
    call = result.get("call", {})
    body: dict[str, Any] = {k: rec[k] for k in (
        "uid", "source", "started_at", "duration_s", "direction", "agent", "client",
        "talk_share_agent", "dead_air_share", "hold_s", "holds", "tags", "score", "asr")}
    body["interruptions"] = {"agent": rec["interruptions_by_agent"],
                             "client": rec["interruptions_by_client"]}
    body["end_reason"] = call.get("extra", {}).get("end_reason")
    if transcripts:
        body["transcript"] = [{"party": s.get("party"), "start": s.get("start"),
                               "text": s.get("text")} for s in result.get("transcript", [])]
    started = call.get("started_at") or time.time()
    return envelope(box, started + (result.get("duration_s") or 0.0), **body)


def alert(box: str, kind: str, message: str, severity: str = "warning",
          ts: float | None = None, **detail: Any) -> dict[str, Any]:
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    return envelope(box, ts, kind=kind, severity=severity, message=message, **detail)


def call_alerts(box: str, result: dict[str, Any], low_score: float) -> list[dict[str, Any]]:
    """Alerts a finished call raises: alerting dictionaries (profanity, complaints), a low
    checklist score."""
    call = result.get("call", {})
    uid = call.get("extra", {}).get("uid") or call.get("call_id")
    ts = (call.get("started_at") or time.time()) + (result.get("duration_s") or 0.0)
    who = {"uid": uid, "agent": call.get("agent"), "client": call.get("client")}
    out = []
    hits: dict[str, list[dict[str, Any]]] = {}
    for t in result.get("tags", []):
        if t.get("alert"):
            hits.setdefault(t["tag"], []).append(t)
    for tag, found in hits.items():
        kind = "profanity" if tag == "profanity" else "complaint" if tag == "complaints" else None
        if kind is None:
            continue
        parties = sorted({f.get("party") for f in found if f.get("party")})
        out.append(alert(box, kind, f"{kind} in a call ({len(found)}x, {', '.join(parties)})",
                         "critical" if kind == "profanity" else "warning", ts, count=len(found),
                         parties=parties, **who))
    score = (result.get("score") or {}).get("total")
    if score is not None and score < low_score:
        out.append(alert(box, "low_score", f"checklist score {score} below {low_score:g}",
                         "warning", ts, score=score, **who))
    return out
