"""Topics and payloads. Every payload is JSON with ``v`` (schema version), ``id`` (unique,
for de-duplication: delivery is at least once), ``ts`` (when it happened, not when it was
sent) and ``box``. Documented with examples in docs/mqtt.md."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..analysis.alerts import alerts_for
from ..config import MqttSettings
from ..store.records import call_record

VERSION = 1
ALERT_KINDS = ("profanity", "complaint", "low_score", "missed_not_called_back",
               "registration_lost", "disk_low", "disk_full", "asr_behind", "outbox_dropped",
               "store_damaged", "problem_call", "plan_behind")


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
    """The alerts of a finished call (``analysis.alerts``) as MQTT messages."""
    record = call_record(result)
    ts = (record.get("started_at") or time.time()) + (record.get("duration_s") or 0.0)
    who = {"uid": record.get("uid"), "agent": record.get("agent"), "client": record.get("client")}
    out = []
    for a in alerts_for(record, low_score):
        detail = {k: v for k, v in a.items() if k not in ("kind", "severity", "message")}
        out.append(alert(box, a["kind"], a["message"], a["severity"], ts, **detail, **who))
    return out
