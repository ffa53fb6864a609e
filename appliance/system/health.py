"""Is the box doing its job? Registration, broker, disk, recognition queue, model and the
store's files, each checked against the settings. Served as ``/healthz``, printed by ``appliance status``, and
read by the watchdog and the update health check.

The daemon writes what only it knows (MQTT connection, model, web address) to
``<data_dir>/run/daemon.json`` every few seconds; the capture processes write their own state
beside it, so a separate ``appliance status`` process sees the same picture as ``/healthz``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..config import Settings
from .atomic import write_json_atomic
from .status import device_status

STATE_FILE = "daemon.json"
STALE_S = 30.0


def write_daemon_state(data_dir: Path, state: dict[str, Any]) -> None:
    run = data_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    # rewritten every few seconds: not synced (old or new on a power cut, both stale then)
    write_json_atomic(run / STATE_FILE, {**state, "pid": os.getpid(), "updated_at": time.time()},
                      durable=False)


def daemon_state(data_dir: Path, now: float | None = None) -> dict[str, Any] | None:
    """The running daemon's last state, or None when it is not running (no file, a stale
    one, or its process gone)."""
    now = time.time() if now is None else now
    try:
        state = json.loads((data_dir / "run" / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if now - float(state.get("updated_at", 0)) > STALE_S:
        return None
    try:
        os.kill(int(state.get("pid", 0)), 0)
    except (OSError, ValueError):
        return None
    return state


def _check(ok: bool, detail: str) -> dict[str, Any]:
    return {"ok": ok, "detail": detail}


def health(settings: Settings, status: dict[str, Any], daemon: dict[str, Any]) -> dict[str, Any]:
    """``{ok, checks: {registration, broker, disk, queue, model, store}}``; each check has
    ``ok`` and a one-line ``detail``."""
    regs = status.get("registrations") or []
    up = sum(1 for r in regs if r.get("registered"))
    failing = [f"{r.get('uri')}: {r.get('status') or ''} {r.get('reason') or ''}".rstrip()
               for r in regs if not r.get("registered")]
    detail = (f"{up} of {len(regs)} accounts registered" + (f" ({'; '.join(failing)})"
                                                            if failing else "")
              if regs else "no PBX account: direct calls only")
    checks = {"registration": _check(up == len(regs), detail)}
    mqtt = daemon.get("mqtt") or {}
    if not mqtt.get("enabled"):
        checks["broker"] = _check(True, "MQTT off")
    else:
        where = f"{mqtt.get('host')}:{mqtt.get('port')}"
        checks["broker"] = _check(bool(mqtt.get("connected")), f"connected to {where}"
                                  if mqtt.get("connected") else
                                  f"not connected to {where}; {mqtt.get('outbox', 0)} messages kept")
    disk = status.get("disk") or {}
    floor = settings.retention.stop_recording_free_mb
    if "free_mb" in disk:
        checks["disk"] = _check(disk["free_mb"] >= floor, f"{disk['free_mb']:.0f} MB free "
                                f"({disk.get('free_percent', 0):.0f}%), recording stops below {floor} MB")
    else:
        checks["disk"] = _check(False, "data directory unreadable")
    checks["queue"] = _check(*recognition_backlog(settings, status))
    model = daemon.get("model") or {}
    state = model.get("status", "unknown")
    checks["model"] = _check(state in ("ok", "disabled"),
                             f"{state}: {model.get('model') or model.get('reason') or ''}".rstrip(": "))
    store = daemon.get("store") or {}
    damaged = int(store.get("damaged") or 0)
    checks["store"] = _check(not damaged, "no stored data lost" if not damaged else
                             f"{damaged} problem(s) lost stored data, e.g. {store.get('problem')}; "
                             "see the system page, then acknowledge")
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks, "at": time.time()}


def store_state(db: Any) -> dict[str, Any]:
    """The store's unacknowledged damage (``Database.damage``) for ``health``."""
    db.check()
    damaged = db.damage.damaged()
    return {"damaged": len(damaged), "problem": damaged[0]["problem"] if damaged else None}


def recognition_backlog(settings: Settings, status: dict[str, Any]) -> tuple[bool, str]:
    """Whether transcripts keep up with the calls, and a line that says how far behind."""
    queue = int(status.get("asr_queue") or 0)
    backlog = status.get("asr_backlog") or {}
    oldest = float(backlog.get("oldest_s") or 0.0)
    limit, delay = settings.alerts.asr_queue, settings.asr.max_delay_s
    return (queue < limit and oldest < delay,
            f"{queue} speech segments of {backlog.get('calls', 0)} calls waiting "
            f"({backlog.get('audio_s', 0):.0f} s of speech, oldest {oldest:.0f} s; "
            f"alert at {limit} segments or {delay:.0f} s)")


def box_health(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """Health as a separate process sees it (``appliance status``); ``running`` False when
    the daemon is not running."""
    daemon = daemon_state(settings.paths.data_dir, now)
    if daemon is None:
        return {"ok": False, "running": False, "checks": {}, "at": time.time()}
    out = health(settings, device_status(settings.paths.data_dir, (daemon.get("mqtt") or {}).get("outbox")),
                 daemon)
    return {**out, "running": True, "pid": daemon.get("pid"), "web": daemon.get("web")}
