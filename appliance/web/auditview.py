"""The audit log as the panel and the API show it: filters from query arguments, CSV."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any, Mapping

from flask import Response
from werkzeug.exceptions import BadRequest

from ..analysis.redaction import Redactor
from ..store.audit import AuditLog
from .csvcell import cell
from .views import call_filters

LIMIT = 5000            # entries per API answer
EXPORT_LIMIT = 200_000  # entries per CSV export (about 40 MB)
PAGE_LIMIT = 300        # entries shown on the page
CSV_COLUMNS = ("at", "actor", "action", "target", "ip", "detail")

# actions on a call: their target links to the call page
CALL_ACTIONS = ("listen", "download", "outcome", "transcript view")


def searched(text: str, kinds: list[str]) -> str:
    """Transcript search words as the audit log keeps them: at most 200 characters, with
    the personal numbers the box masks in transcripts masked here too."""
    line = {"party": "agent", "start": 0.0, "end": 0.0, "text": text[:200]}
    return Redactor(kinds).apply([line])[0][0]["text"] if kinds else line["text"]


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


def known_actions(log: AuditLog, catalog: Mapping[str, str]) -> list[str]:
    """Actions to filter by: every action the panel names (``audit_*`` keys of its catalog)
    and any other found among the recent entries."""
    named = {k[len("audit_"):] for k in catalog if k.startswith("audit_")}
    return sorted(named | {e["action"] for e in log.recent(2000)})


def export(log: AuditLog, args: Mapping[str, str], record: Any) -> Response:
    """The entries matching ``args`` as a CSV download; the export itself is audited
    through ``record(action, target, **detail)``. A last line says when the export was
    cut at EXPORT_LIMIT entries."""
    entries = audit_entries(log, args, EXPORT_LIMIT + 1)
    cut = len(entries) > EXPORT_LIMIT
    entries = entries[:EXPORT_LIMIT]
    record("audit export", "", entries=len(entries), truncated=cut,
           filters={k: v for k, v in args.items() if k != "format" and v})
    body = audit_csv(entries)
    if cut:
        body += f"# cut at {EXPORT_LIMIT} entries, the newest first: narrow the dates\n"
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=audit.csv",
        "Cache-Control": "private, no-store"})


def audit_csv(entries: list[dict[str, Any]]) -> str:
    """Entries as CSV (UTF-8, one header row; local times as YYYY-MM-DD HH:MM:SS)."""
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(CSV_COLUMNS)
    for e in entries:
        detail = dict(e.get("detail") or {})
        ip = str(detail.pop("ip", "") or "")
        out.writerow([time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"])),
                      cell(e["actor"]), cell(e["action"]), cell(e["target"]), ip,
                      cell(json.dumps(detail, ensure_ascii=False, sort_keys=True)
                            if detail else "")])
    return buf.getvalue()
