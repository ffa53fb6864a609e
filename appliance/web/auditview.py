"""The audit log as the panel and the API show it: filters from query arguments, CSV."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any, Mapping

from werkzeug.exceptions import BadRequest

from ..store.audit import AuditLog
from .views import call_filters

LIMIT = 5000
CSV_COLUMNS = ("at", "actor", "action", "target", "ip", "detail")

# actions on a call: their target links to the call page
CALL_ACTIONS = ("listen", "download", "outcome", "transcript view")


def audit_filters(args: Mapping[str, str], now: float | None = None) -> dict[str, Any]:
    """``from``/``to`` dates (default: the last 30 days), ``actor``, ``action`` (exact) and
    ``target`` (a part of it), checked."""
    start, end = call_filters({k: args[k] for k in ("from", "to") if args.get(k)}, now)["range"]
    out: dict[str, Any] = {"start": start, "end": end}
    for name in ("actor", "action", "target"):
        value = (args.get(name) or "").strip()
        if len(value) > 200:
            raise BadRequest(f"{name}: at most 200 characters")
        out[name] = value
    return out


def audit_entries(log: AuditLog, args: Mapping[str, str], limit: int = LIMIT) -> list[dict[str, Any]]:
    f = audit_filters(args)
    return log.find(f["start"], f["end"], f["actor"], f["action"], f["target"], limit)


def _cell(value: str) -> str:
    # a spreadsheet runs a cell starting with = + - @ as a formula: names and targets come
    # from users and PBXs
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def audit_csv(entries: list[dict[str, Any]]) -> str:
    """Entries as CSV (UTF-8, one header row; local times as YYYY-MM-DD HH:MM:SS)."""
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(CSV_COLUMNS)
    for e in entries:
        detail = dict(e.get("detail") or {})
        ip = str(detail.pop("ip", "") or "")
        out.writerow([time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"])),
                      _cell(e["actor"]), _cell(e["action"]), _cell(e["target"]), ip,
                      _cell(json.dumps(detail, ensure_ascii=False, sort_keys=True)
                            if detail else "")])
    return buf.getvalue()
