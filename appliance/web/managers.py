"""The managers page: per manager and team, each figure over the last 8 weeks or 6 months,
the change against the previous period to date, baseline flags, and a ranking sorted by
any column, and the clients to bring back (cooling and zombie). ``COLUMNS`` is the one list
of what it shows: a new figure is one more line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from flask import Blueprint, current_app, render_template, request
from werkzeug.exceptions import BadRequest

from ..kpi.periods import current
from ..kpi.plans import figure
from ..query import Queries
from .auth import login_required

bp = Blueprint("managers", __name__)
SPAN = {"week": 8, "month": 6}
CLIENTS_SHOWN = 20


@dataclass(frozen=True)
class Column:
    key: str        # the figure's name in the KPIs
    title: str      # English; the panel translates it
    better: str     # "up", "down", or "" when neither way is better
    fmt: str        # how it is shown: int, pct, dur, num, score, money


COLUMNS = (
    Column("calls", "Calls", "up", "int"),
    Column("answer_rate", "Answer rate", "up", "pct"),
    Column("missed", "Missed by them", "down", "int"),
    Column("missed_rang", "Rang, missed", "down", "int"),
    Column("missed_never", "Never called back", "down", "int"),
    Column("missed_never_share", "Never called back, of missed", "down", "pct"),
    Column("callbacks", "Callbacks made", "up", "int"),
    Column("median_callback_s", "Median time to callback", "down", "dur"),
    Column("talk_s", "Talk time", "up", "dur"),
    Column("avg_duration_s", "Average conversation", "", "dur"),
    Column("avg_talk_share", "Agent talk share", "", "pct"),
    Column("interruptions_per_call", "Interruptions per call", "down", "num"),
    Column("avg_score", "Average score", "up", "score"),
    Column("conversion", "Conversion", "up", "pct"),
    Column("won", "Deals won", "up", "int"),
    Column("revenue", "Revenue", "up", "money"),
)
KEYS = {c.key for c in COLUMNS}


def _q() -> Queries:
    return current_app.extensions["queries"]


def _change(change: Any, currency: str) -> Any:
    if isinstance(change, dict) and "delta" not in change:      # revenue, per currency
        return change.get(currency)
    return change


def managers_page(q: Queries, args: Mapping[str, str], now: float | None = None
                  ) -> dict[str, Any]:
    """Rows per manager and per team: each column's value this period, its change against
    the previous period to date, its series over the span, and the manager's flags."""
    now = time.time() if now is None else now
    kind = args.get("kind") or "week"
    if kind not in SPAN:
        raise BadRequest("kind: week or month")
    sort = args.get("sort") or "calls"
    if sort not in KEYS | {"name"}:
        raise BadRequest(f"sort: name or one of {', '.join(c.key for c in COLUMNS)}")
    order = args.get("order") or ("asc" if sort == "name" else "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("order: asc or desc")
    cfg = q.settings.kpi
    this = current(kind, now)
    periods = [this.shifted(-i) for i in range(SPAN[kind] - 1, -1, -1)]
    series = [q.kpis(p, now) for p in periods]
    compared = q.compare(this.name, now)
    flags: dict[str, dict[str, str]] = {}
    for f in q.flags(this.name, now):
        flags.setdefault(f["agent"], {})[f["metric"]] = f["verdict"]
    team_of = {a: t for t, members in sorted(cfg.teams.items()) for a in members}

    def rows(section: str) -> list[dict[str, Any]]:
        names = {n for k in series for n in k[section]}
        out = []
        for n in names:
            now_fig = series[-1][section].get(n)
            vs = (compared[section].get(n) or {}).get("vs_previous") or {}
            out.append({
                "id": n,
                "name": (cfg.names.get(n) or n) if section == "managers" else n,
                "team": team_of.get(n) if section == "managers" else None,
                "values": {c.key: figure(now_fig, c.key, cfg.currency) for c in COLUMNS},
                "changes": {c.key: _change(vs.get(c.key), cfg.currency) for c in COLUMNS},
                "series": {c.key: [figure(k[section].get(n), c.key, cfg.currency)
                                   for k in series] for c in COLUMNS},
                "flags": flags.get(n, {}) if section == "managers" else {}})
        return _sorted(out, sort, order)

    return {"kind": kind, "period": this.name, "periods": [p.name for p in periods],
            "first_day": this.first.isoformat(),
            "last_day": min(this.last - timedelta(days=1), current("day", now).first).isoformat(),
            "to_date": bool(compared.get("to_date")), "previous": compared["previous"],
            "currency": cfg.currency, "sort": sort, "order": order,
            "columns": [c.__dict__ for c in COLUMNS],
            "managers": rows("managers"), "teams": rows("teams")}


def _sorted(rows: list[dict[str, Any]], sort: str, order: str) -> list[dict[str, Any]]:
    """Rows by ``sort``; rows without that figure last, whatever the order."""
    if sort == "name":
        return sorted(rows, key=lambda r: r["name"].lower(), reverse=order == "desc")
    known = sorted((r for r in rows if r["values"][sort] is not None),
                   key=lambda r: (r["values"][sort], r["name"]), reverse=order == "desc")
    return known + sorted((r for r in rows if r["values"][sort] is None), key=lambda r: r["name"])


def clients_section(q: Queries, now: float | None = None, limit: int = CLIENTS_SHOWN
                    ) -> dict[str, Any]:
    """Cooling and zombie clients (``Queries.clients``), the most urgent ``limit`` of each,
    with how many there are in all."""
    lists = q.clients(now=now)
    return {kind: lists[kind][:limit] for kind in ("cooling", "zombie")} | {
        "counts": {kind: len(lists[kind]) for kind in ("cooling", "zombie")}}


@bp.get("/managers")
@login_required()
def managers() -> Any:
    return render_template("managers.html", m=managers_page(_q(), request.args),
                           clients=clients_section(_q()), args=request.args)
