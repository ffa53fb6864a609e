"""Device status: what IT and central servers watch (registration, calls, disk, queues)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .disk import disk_state


def device_status(data_dir: Path, outbox: int | None = None,
                  asr: dict[str, Any] | None = None) -> dict[str, Any]:
    """Registrations and active calls from the capture processes' state files, the disk,
    the recognizer's backlog (``AsrService.backlog``) and the MQTT outbox length."""
    registrations: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    active = 0
    asr_queue = int(asr.get("pieces", 0)) if asr else 0
    for path in sorted((data_dir / "run").glob("sip*.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not state.get("running", True):
            continue
        registrations += state.get("registrations", [])
        active += len(state.get("active_calls", []))
        for c in state.get("active_calls", []):
            frames = max((c.get("frames") or {}).values(), default=0)
            calls.append({k: c.get(k) for k in ("uid", "source", "agent", "client")}
                         | {"seconds": round(frames * 0.02)})
    try:
        disk = disk_state(data_dir).as_dict()
    except OSError:
        disk = {}
    out: dict[str, Any] = {"registrations": registrations,
                           "registered": all(r.get("registered") for r in registrations)
                           if registrations else None,
                           "active_calls": active, "calls": calls, "asr_queue": asr_queue,
                           "asr_backlog": asr or {},
                           "disk": disk,
                           "at": time.time()}
    if outbox is not None:
        out["mqtt_outbox"] = outbox
    return out
