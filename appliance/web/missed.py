"""The missed-calls page: every missed call of a range with its callback, filtered by
manager, team and status; the ones to call back now, longest waiting first; CSV export."""

from __future__ import annotations

import csv
import io
import statistics
import time
from collections import Counter
from typing import Any, Mapping

from werkzeug.exceptions import BadRequest

from ..kpi.figures import CALLBACK_STATUSES
from ..query import Queries
from .csvcell import cell
from .views import date_range, day_names

DEFAULT_DAYS = 7
CSV_COLUMNS = ("start", "client", "rang", "status", "callback_at", "callback_by",
               "reached", "waited_s")


def missed_filters(q: Queries, args: Mapping[str, str], now: float) -> dict[str, Any]:
    """The page's filters from query arguments, checked: a ``period`` or ``from``/``to``
    (default: the last 7 days), ``agent`` (with ``alone=1``: rang that manager only),
    ``team``, ``status``."""
    if args.get("period"):
        from ..kpi.periods import parse_period

        try:
            p = parse_period(args["period"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        start, end = p.start, p.end
    else:
        start, end = date_range(args, DEFAULT_DAYS, now)
    status = args.get("status") or None
    if status is not None and status not in CALLBACK_STATUSES:
        raise BadRequest(f"status: one of {', '.join(CALLBACK_STATUSES)}")
    team = args.get("team") or None
    if team is not None and team not in q.settings.kpi.teams:
        raise BadRequest(f"team: {team[:40]!r} is not one of kpi.teams")
    return {"range": (start, end), "status": status, "agent": args.get("agent") or None,
            "team": team, "alone": args.get("alone") == "1"}


def missed_page(q: Queries, args: Mapping[str, str], now: float | None = None) -> dict[str, Any]:
    """Missed calls, their counts by status and the median wait for a callback, the ones to
    call back now, and the names of the managers they rang."""
    now = time.time() if now is None else now
    f = missed_filters(q, args, now)
    start, end = f.pop("range")
    everything = q.missed((start, end), now=now, **{**f, "status": None})
    rows = [m for m in everything if not f["status"] or m["callback"]["status"] == f["status"]]
    counts = Counter(m["callback"]["status"] for m in everything)
    waits = [m["callback"]["delay_s"] for m in everything
             if m["callback"]["status"] in ("called_back_fast", "called_back_slow")]
    # to call back now: still inside the callback window, nobody has called back yet;
    # read from the range when it holds that window, else from the window itself
    window = now - q.settings.cdr.callback_slow_h * 3600
    open_ = everything if start <= window and end >= now else q.missed(
        (window, now + 1), now=now, **{**f, "status": None})
    to_call = sorted(({**m, "waiting_s": round(now - m["start"], 1)} for m in open_
                      if m["callback"]["status"] == "pending"), key=lambda m: m["start"])
    agents = {a for m in everything for a in m["rung"]} | {
        m["callback"].get("by") for m in everything if m["callback"].get("by")}
    names = q.settings.kpi.names
    first, last = day_names(start, end)
    return {"from": first, "to": last, "status": f["status"], "agent": f["agent"],
            "team": f["team"], "alone": f["alone"], "total": len(rows),
            "counts": {s: counts.get(s, 0) for s in CALLBACK_STATUSES},
            "all": len(everything),
            "never_share": round(counts.get("never", 0) / len(everything), 4) if everything else None,
            "median_callback_s": statistics.median(waits) if waits else None,
            "missed": list(reversed(rows)), "to_call_back": to_call,
            "names": {a: names[a] for a in sorted(agents) if a in names},
            "teams": sorted(q.settings.kpi.teams)}


def missed_csv(page: dict[str, Any]) -> str:
    """The page's missed calls as CSV (managers by name), newest first."""
    names = page["names"]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for m in page["missed"]:
        cb = m["callback"]
        w.writerow([cell(v) for v in (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m["start"])), m["client"],
            "; ".join(names.get(a, a) for a in m["rung"]), cb["status"],
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cb["at"])) if cb.get("at") else "",
            names.get(cb.get("by"), cb.get("by")) if cb.get("by") else "",
            "" if cb.get("reached") is None else ("yes" if cb["reached"] else "no"),
            cb.get("delay_s", ""))])
    return out.getvalue()
