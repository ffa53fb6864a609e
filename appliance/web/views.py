"""What the panel's pages show, as plain data: the pages render it, ``/api/v1`` returns it
as JSON, so both always agree."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any, Mapping

from werkzeug.exceptions import BadRequest

from ..kpi.periods import check_date, current
from ..query import SORTS, Queries

PAGE_SIZE = 50


def _day_start(text: str, name: str) -> float:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name}: a date such as 2026-11-24") from None
    try:
        return time.mktime(check_date(day, name).timetuple())
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _number(args: Mapping[str, str], name: str) -> float | None:
    raw = args.get(name) or ""
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadRequest(f"{name}: {raw[:20]!r} is not a number") from None


def whole_arg(args: Mapping[str, str], name: str, default: int, high: int) -> int:
    """A whole-number query argument from 0 to ``high`` (``default`` when absent)."""
    raw = args.get(name) or ""
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > high:
        raise BadRequest(f"{name}: a whole number from 0 to {high}")
    return int(raw)


def date_range(args: Mapping[str, str], days: int, now: float | None = None
               ) -> tuple[float, float]:
    """``from`` and ``to`` (inclusive) dates of query arguments as a time range, checked;
    by default the last ``days`` days, today included."""
    now = time.time() if now is None else now
    today = current("day", now)
    start = _day_start(args["from"], "from") if args.get("from") else today.shifted(1 - days).start
    end = current("day", _day_start(args["to"], "to") + 43200).end if args.get("to") else today.end
    if end <= start:
        raise BadRequest("to: must not be before from")
    return start, end


def day_names(start: float, end: float) -> tuple[str, str]:
    """The first and last day of a range, as dates."""
    return (datetime.fromtimestamp(start).date().isoformat(),
            datetime.fromtimestamp(end - 1).date().isoformat())


def call_filters(args: Mapping[str, str], now: float | None = None) -> dict[str, Any]:
    """The calls list's filters from query arguments, checked; dates default to the last
    30 days (``to`` inclusive)."""
    start, end = date_range(args, 30, now)
    direction = args.get("direction") or None
    if direction not in (None, "inbound", "outbound"):
        raise BadRequest("direction: inbound or outbound")
    party = args.get("party") or None
    if party not in (None, "agent", "client"):
        raise BadRequest("party: agent or client")
    text = (args.get("q") or "").strip()[:200] or None
    sort = args.get("sort") or "date"
    if sort not in SORTS:
        raise BadRequest(f"sort: one of {', '.join(SORTS)}")
    order = args.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise BadRequest("order: asc or desc")
    return {"range": (start, end), "agent": args.get("agent") or None, "direction": direction,
            "tag": args.get("tag") or None, "min_score": _number(args, "min_score"),
            "max_score": _number(args, "max_score"), "text": text, "party": party,
            "problem": args.get("problem") == "1", "sort": sort, "order": order}


def calls_page(q: Queries, args: Mapping[str, str],
               filters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A page of the calls list; ``filters``: ``call_filters(args)`` if already made."""
    f = dict(filters or call_filters(args))
    limit = whole_arg(args, "limit", PAGE_SIZE, 500)
    page = max(1, whole_arg(args, "page", 1, 10**6))
    offset = whole_arg(args, "offset", (page - 1) * limit, 10**7)
    start, end = f.pop("range")
    out = q.calls((start, end), offset=offset, limit=limit, **f)
    out["from"], out["to"] = day_names(start, end)
    out["page"] = offset // limit + 1
    out["pages"] = max(1, -(-out["total"] // limit))
    out["sort"], out["order"] = f["sort"], f["order"]
    out["presets"] = call_presets()
    return out


def call_presets(now: float | None = None) -> dict[str, dict[str, str]]:
    """Ready-made filters of the calls list: this week's worst scores first, and the
    problem calls of the last 30 days, newest first."""
    now = time.time() if now is None else now
    week = current("week", now)
    today = current("day", now)
    return {"worst_week": {"from": week.first.isoformat(), "to": today.first.isoformat(),
                           "sort": "score", "order": "asc"},
            "problems": {"problem": "1"}}


def timeline(result: dict[str, Any]) -> dict[str, Any]:
    """Speech, overlaps, interruptions, silences, holds, tones and tags of a call, in
    seconds (tones and key presses without their digits: the page only draws them)."""
    return {"duration_s": result.get("duration_s", 0.0),
            "segments": result.get("segments", []), "overlaps": result.get("overlaps", []),
            "interruptions": result.get("interruptions", []),
            "silences": result.get("silences", []),
            "holds": [{k: h.get(k) for k in ("party", "start", "end")}
                      for h in result.get("holds", [])],
            "events": [{k: e.get(k) for k in ("kind", "party", "start", "end")}
                       for e in result.get("events", []) if e.get("kind") != "music"],
            "tags": [{k: t.get(k) for k in ("tag", "party", "at", "text", "severity", "alert")}
                     for t in result.get("tags", [])]}


def call_detail(q: Queries, uid: str) -> dict[str, Any]:
    """A call's record, outcome, PBX record, metrics, timeline, transcript and score."""
    rec = q.call(uid)
    result = q.call_json(uid)
    return {"call": rec, "parties": result.get("parties", {}), "totals": result.get("totals", {}),
            "timeline": timeline(result), "transcript": result.get("transcript", []),
            "score": result.get("score"), "asr": result.get("asr", {}),
            "notes": result.get("call", {}).get("notes", []),
            "audio": q.audio_path(uid) is not None, "unreadable": result.get("unreadable")}


def dashboard(q: Queries, now: float | None = None) -> dict[str, Any]:
    """Today's calls, missed calls never called back, recent alerts, this month's figures
    per manager against last month, and the last 14 days' trend."""
    now = time.time() if now is None else now
    today = current("day", now)
    month = current("month", now)
    missed = [m for d in (today.shifted(-1), today)
              for m in q.missed(d.name, status="never", now=now)]
    trend = []
    for i in range(13, -1, -1):
        day = today.shifted(-i)
        office = q.kpis(day, now)["office"]
        trend.append({"day": day.name, "calls": office["calls_in"] + office["calls_out"],
                      "recorded": office["recorded"], "missed": office["missed"]})
    today_kpis = q.kpis(today, now)["office"]
    compared = q.compare(month.name, now)
    totals = {n: m["current"]["calls_in"] + m["current"]["calls_out"]
              for n, m in compared["managers"].items()}
    most = max(totals.values(), default=0) or 1
    bars = [{"name": n, "calls": v, "share": v / most} for n, v in sorted(totals.items())]
    return {"now": now, "today": today.name, "yesterday": today.shifted(-1).name,
            "month": month.name, "month_first": month.first.isoformat(),
            "today_calls": q.calls(today.name, limit=10),
            "today_figures": today_kpis,
            "missed_never": sorted(missed, key=lambda m: m.get("start") or 0, reverse=True),
            "alerts": q.alerts(days=2, now=now)[:20],
            "compare": compared, "manager_bars": bars, "trend": trend,
            "trend_max": max((t["calls"] for t in trend), default=0) or 1}
