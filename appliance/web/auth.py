"""Panel sign-in: first-run admin set-up, login with rate limiting, logout (here or
everywhere), language, own password. Sessions live on the box (``sessions.py``): the signed
cookie holds the user name, the session id and the user's ``epoch``; signing out ends the
session, and changing a user's password, role or access bumps the epoch, which ends them all."""

from __future__ import annotations

import time
from functools import wraps
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import (Blueprint, abort, current_app, flash, g, make_response, redirect,
                   render_template, request, session, url_for)

from .i18n import LANGUAGES, gettext as _
from .sessions import Sessions
from .users import UserError, Users

bp = Blueprint("auth", __name__)


def users() -> Users:
    return current_app.extensions["users"]


def audit(action: str, target: str = "", **detail: Any) -> None:
    claimed = detail.pop("actor", "anonymous")          # a name typed at sign-in
    actor = g.user["name"] if g.get("user") else claimed
    current_app.extensions["queries"].db.audit.record(actor, action, target, ip=request.remote_addr,
                                                      **detail)


def sessions() -> Sessions:
    return current_app.extensions["sessions"]


def session_user() -> dict[str, Any] | None:
    """The signed-in user of this request's cookie, if its session is still held on the box."""
    if "user" not in g:
        name = session.get("user")
        doc = users().get(name) if isinstance(name, str) else None
        if doc is None or doc.get("disabled") or doc.get("epoch", 0) != session.get("epoch") \
                or sessions().user_of(session.get("sid")) != name:
            doc = None
        g.user = doc
    return g.user


def login_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Pages: sign-in first (redirect), then one of ``roles`` (403); no roles: any user."""
    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            user = session_user()
            if user is None:
                if request.method != "GET":
                    abort(401, "sign in first")
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if roles and user["role"] not in roles:
                abort(403, _("Your role ({role}) may not open this page.", role=user["role"]))
            return view(*args, **kwargs)
        return checked
    return wrap


def _safe_next(target: str | None) -> str:
    # only a path on this site: never an open redirect to another host
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return url_for("pages.dashboard")
    return target


def _sign_in(doc: dict[str, Any]) -> None:
    sessions().end(session.get("sid"))   # the session this browser had, if any
    session.clear()                      # a fresh session (and CSRF token) at every sign-in
    session.permanent = True
    session["user"] = doc["name"]
    session["epoch"] = doc.get("epoch", 0)
    session["sid"] = sessions().start(doc["name"])
    g.user = doc


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if len(users()) == 0:
        return redirect(url_for("auth.setup"))
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    name = request.form.get("username", "")[:64]
    throttle = current_app.extensions["throttle"]
    address = request.remote_addr or "?"
    wait = throttle.wait_s(address, name)
    if wait > 0:
        audit("login refused", name, actor=name or "anonymous", reason="rate limited")
        resp = make_response(render_template(
            "login.html", next=request.form.get("next", ""),
            error=_("Too many failed attempts. Try again in {s} s.", s=int(wait) + 1)), 429)
        resp.headers["Retry-After"] = str(int(wait) + 1)
        return resp
    doc = users().authenticate(name, request.form.get("password", ""))
    if doc is None:
        throttle.failed(address, name)
        audit("login failed", name, actor=name or "anonymous")
        return render_template("login.html", next=request.form.get("next", ""),
                               error=_("Wrong user name or password.")), 401
    throttle.succeeded(name)
    _sign_in(doc)
    users().update(name, last_login=time.time())
    audit("login", name)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Any:
    """Sign out: this session ends on the box; with ``everywhere``, all of the user's."""
    user = session_user()
    if user is not None and request.form.get("everywhere"):
        n = sessions().end_all(user["name"])
        audit("logout everywhere", user["name"], sessions=n)
    elif user is not None:
        audit("logout", user["name"])
    sessions().end(session.get("sid"))
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> Any:
    """First run: the set-up link (token from the log or ``secrets/setup-token``) creates the
    first admin. Gone once any user exists."""
    if len(users()) > 0:
        abort(404, _("The appliance is already set up: sign in."))
    setup_token = current_app.extensions["setup"]
    token = request.values.get("token", "")
    if not setup_token.matches(token):
        setup_token.ensure()
        return render_template("setup.html", token=None), 403 if token else 200
    if request.method == "GET":
        return render_template("setup.html", token=token)
    name = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if password != request.form.get("password2", ""):
        return render_template("setup.html", token=token, error=_("The passwords differ.")), 400
    try:
        users().create(name, password, "admin")
    except UserError as exc:
        return render_template("setup.html", token=token, error=str(exc)), 400
    setup_token.discard()
    doc = users().get(name)
    _sign_in(doc)            # type: ignore[arg-type]
    audit("setup", name, role="admin")
    return redirect(url_for("pages.dashboard"))


@bp.get("/healthz")
def healthz() -> Any:
    """For the watchdog, the update check and load balancers: 200 when every check passes,
    503 otherwise; which checks failed, without details (those are at /api/v1/health)."""
    out = current_app.extensions["health"]()
    body = {"ok": out["ok"], "checks": {k: c["ok"] for k, c in out["checks"].items()}}
    return body, 200 if out["ok"] else 503


@bp.get("/lang/<code>")
def language(code: str) -> Any:
    if code not in LANGUAGES:
        abort(404)
    resp = redirect(_safe_next(request.args.get("next")))
    resp.set_cookie("lang", code, max_age=365 * 86400, samesite="Strict", httponly=True)
    return resp


@bp.route("/account", methods=["GET", "POST"])
@login_required()
def account() -> Any:
    if request.method == "GET":
        return render_template("account.html")
    user = g.user
    if users().authenticate(user["name"], request.form.get("current", "")) is None:
        return render_template("account.html", error=_("The current password is wrong.")), 400
    if request.form.get("password", "") != request.form.get("password2", ""):
        return render_template("account.html", error=_("The passwords differ.")), 400
    try:
        users().update(user["name"], password=request.form.get("password", ""))
    except UserError as exc:
        return render_template("account.html", error=str(exc)), 400
    _sign_in(users().get(user["name"]))  # type: ignore[arg-type]
    audit("password changed", user["name"])
    flash(_("Password changed."))
    return redirect(url_for("auth.account"))
