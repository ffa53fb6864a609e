"""The plans page: targets per manager and team for the week or the month, their progress,
the forecast at the current pace, and who is behind; plans are set and removed here or
through ``/api/v1/plans``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from ..kpi.plans import KINDS, METRICS, SCOPES, PlanError
from ..query import NotFound, Queries
from .auth import login_required
from .i18n import gettext as _

bp = Blueprint("plans", __name__)
EDITORS = ("admin", "supervisor")


def _q() -> Queries:
    return current_app.extensions["queries"]


def plans_page(q: Queries) -> dict[str, Any]:
    """Every plan's progress, and what a new plan may name."""
    kpi = q.settings.kpi
    managers = sorted(set(kpi.names) | {a for t in kpi.teams.values() for a in t})
    return {"plans": q.plans(), "metrics": list(METRICS), "kinds": list(KINDS),
            "scopes": list(SCOPES), "managers": managers, "teams": sorted(kpi.teams),
            "currency": kpi.currency}


def _page(**extra: Any) -> str:
    return render_template("plans.html", p=plans_page(_q()), **extra)


@bp.get("/plans")
@login_required()
def plans() -> Any:
    return _page()


@bp.post("/plans")
@login_required(*EDITORS)
def plans_change() -> Any:
    form = request.form
    try:
        if form.get("action") == "delete":
            _q().delete_plan(form.get("id", ""), g.user["name"])
            flash(_("Plan removed."))
        else:
            raw = form.get("target", "").strip().replace(",", ".")
            try:
                target: Any = float(raw)
            except ValueError:
                raise PlanError("target: a number") from None
            if METRICS.get(form.get("metric", "")) == "share" and target > 1:
                target /= 100              # typed as a percentage
            who = form.get("manager") if form.get("scope") == "manager" else form.get("team")
            _q().save_plan({"scope": form.get("scope"), "who": who or "",
                            "kind": form.get("kind"), "metric": form.get("metric"),
                            "target": target}, g.user["name"])
            flash(_("Plan saved."))
    except (PlanError, NotFound) as exc:
        return _page(error=str(exc) if isinstance(exc, PlanError) else exc.args[0]), 400
    return redirect(url_for("plans.plans"))
