"""Plans: a manager's (or a team's) target for a week or a month, and how the period is
going: progress, a forecast to the period's end at the current pace, and whether they are
behind.

A plan repeats: "300 calls a month" holds for every month until it is changed or removed.
Counts (calls, revenue) are forecast at the pace so far (the value over the share of the
period gone by); shares and levels (answer rate, conversion, average score) are forecast
as they stand.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .periods import Period

METRICS = {"calls": "count", "answer_rate": "share", "conversion": "share",
           "revenue": "count", "avg_score": "level"}
SCOPES = ("manager", "team")
KINDS = ("week", "month")
# Before a fifth of the period has gone by, a forecast is mostly noise (a slow Monday): no
# one is called behind yet.
MIN_ELAPSED = 0.2


class PlanError(ValueError):
    """A plan that cannot be kept; the message says which field and why."""


def plan_id(scope: str, who: str, kind: str, metric: str) -> str:
    return f"{scope}:{who}:{kind}:{metric}"


def validate_plan(payload: Any, teams: Mapping[str, Any]) -> dict[str, Any]:
    """``{scope, who, kind, metric, target}`` checked; raises PlanError."""
    if not isinstance(payload, Mapping):
        raise PlanError('a plan is a JSON object such as {"scope": "manager", "who": "101", '
                        '"kind": "month", "metric": "calls", "target": 300}')
    unknown = set(payload) - {"scope", "who", "kind", "metric", "target"}
    if unknown:
        raise PlanError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:80]}")
    scope, kind, metric = payload.get("scope"), payload.get("kind"), payload.get("metric")
    if scope not in SCOPES:
        raise PlanError(f"scope: manager or team, not {str(scope)[:20]!r}")
    if kind not in KINDS:
        raise PlanError(f"kind: week or month, not {str(kind)[:20]!r}")
    if metric not in METRICS:
        raise PlanError(f"metric: one of {', '.join(METRICS)}")
    who = payload.get("who")
    if not isinstance(who, str) or not who.strip() or len(who) > 64:
        raise PlanError("who: the manager's extension or the team's name")
    if any(ch in who for ch in "/:?#%<>\\") or not who.isprintable():
        # the plan's id (scope:who:kind:metric) is a URL path segment
        raise PlanError("who: letters, digits, spaces, '.', '-', '_', '+' and '@' only")
    who = who.strip()
    if scope == "team" and who not in teams:
        raise PlanError(f"who: {who[:40]!r} is not a team of kpi.teams")
    target = payload.get("target")
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target):
        raise PlanError("target: a number")
    if METRICS[metric] == "share" and not 0 < target <= 1:
        raise PlanError(f"target: {metric} is a share, from 0 to 1 (0.9 for 90 %)")
    if metric == "avg_score" and not 0 < target <= 100:
        raise PlanError("target: a score from 0 to 100")
    if not 0 < target <= 1e12:
        raise PlanError("target: a positive number")
    return {"id": plan_id(scope, who, kind, metric), "scope": scope, "who": who, "kind": kind,
            "metric": metric, "target": float(target)}


def figure(fig: Mapping[str, Any] | None, metric: str, currency: str) -> float | None:
    """A plan's figure from a group's KPIs (revenue: in ``currency``)."""
    if fig is None:
        return 0.0 if METRICS.get(metric) == "count" else None
    if metric == "calls":
        return fig.get("calls", fig.get("calls_in", 0) + fig.get("calls_out", 0))
    if metric == "revenue":
        return (fig.get("revenue") or {}).get(currency, 0.0)
    return fig.get(metric)


def progress(plan: Mapping[str, Any], fig: Mapping[str, Any] | None, period: Period,
             now: float, currency: str) -> dict[str, Any]:
    """Where ``plan`` stands in ``period`` (``fig``: the group's KPIs so far)."""
    elapsed = min(1.0, max(0.0, (now - period.start) / (period.end - period.start)))
    value = figure(fig, plan["metric"], currency)
    target = plan["target"]
    if value is None:
        forecast = None
    elif METRICS[plan["metric"]] == "count":
        forecast = round(value / elapsed, 2) if elapsed > 0 else None
    else:
        forecast = value
    if elapsed >= 1.0:
        status = "done" if value is not None and value >= target else "missed"
    elif value is not None and value >= target and METRICS[plan["metric"]] == "count":
        status = "done"
    elif elapsed < MIN_ELAPSED or forecast is None:
        status = "early"
    else:
        status = "on_track" if forecast >= target else "behind"
    return {**plan, "period": period.name, "value": value, "forecast": forecast,
            "share": round(value / target, 4) if value is not None else None,
            "elapsed": round(elapsed, 4), "status": status, "currency": currency
            if plan["metric"] == "revenue" else None}
