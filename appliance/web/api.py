"""``/api/v1``: calls, KPIs, missed calls, client lists; PBX records and outcomes in.

Machine clients authenticate with ``Authorization: Bearer <token>`` (``appliance token
create``). Every error is JSON: ``{"error": "what was wrong and what to do"}``.
"""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from flask import Blueprint, abort, current_app, g, jsonify, request

from ..cdr.record import CdrError
from ..query import NotFound, Queries
from ..store.outcomes import OutcomeError

api = Blueprint("api", __name__, url_prefix="/api/v1")

READ = ("admin", "supervisor", "viewer", "integration")


def _q() -> Queries:
    return current_app.extensions["queries"]


def _error(status: int, message: str) -> Any:
    return jsonify(error=message), status


def allow(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Require a valid token whose role is one of ``roles``."""
    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            tokens = current_app.extensions["tokens"]
            owner = tokens.check(token.strip()) if scheme.lower() == "bearer" else None
            if owner is None:
                resp, status = _error(401, "missing or unknown API token: send "
                                           "'Authorization: Bearer <token>' (appliance token create)")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="appliance"'
                return resp, status
            if owner["role"] not in roles:
                return _error(403, f"role {owner['role']!r} may not do this")
            g.actor = f"token:{owner['name']}"
            return view(*args, **kwargs)
        return checked
    return wrap


def _arg_float(name: str) -> float | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        abort(400, f"{name}: {raw[:20]!r} is not a number")


def _arg_int(name: str, default: int, high: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or int(raw) > high:
        abort(400, f"{name}: a whole number from 0 to {high}")
    return int(raw)


def _period() -> str:
    period = request.args.get("period", "")
    if not period:
        abort(400, "period: required, e.g. 2026-11 (month), 2026-W48 (week) or 2026-11-24 (day)")
    return period


@api.errorhandler(ValueError)
def _bad_value(exc: ValueError) -> Any:       # periods, CDR and outcome validation
    return _error(400, str(exc))


@api.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return _error(404, exc.args[0] if exc.args else "not found")


@api.get("/calls")
@allow(*READ)
def calls() -> Any:
    direction = request.args.get("direction") or None
    if direction not in (None, "inbound", "outbound"):
        abort(400, "direction: inbound or outbound")
    return jsonify(_q().calls(
        _period(), agent=request.args.get("agent") or None, direction=direction,
        tag=request.args.get("tag") or None, min_score=_arg_float("min_score"),
        max_score=_arg_float("max_score"), offset=_arg_int("offset", 0, 10**7),
        limit=_arg_int("limit", 50, 500)))


@api.get("/calls/<uid>")
@allow(*READ)
def call(uid: str) -> Any:
    return jsonify(_q().call(uid))


@api.post("/calls/<uid>/outcome")
@allow("admin", "supervisor", "integration")
def outcome(uid: str) -> Any:
    payload = request.get_json(silent=True)
    if payload is None:
        abort(400, 'send JSON such as {"result": "won", "amount": 1500}')
    try:
        return jsonify(_q().post_outcome(uid, payload, g.actor)), 201
    except OutcomeError as exc:
        return _error(400, str(exc))


@api.post("/cdr")
@allow("admin", "integration")
def cdr() -> Any:
    payload = request.get_json(silent=True)
    if payload is None:
        abort(400, "send the records as JSON (Content-Type: application/json)")
    try:
        out = _q().add_cdr(payload, g.actor)
    except CdrError as exc:
        return _error(400, str(exc))
    return jsonify(out), _status(out)


def _status(out: dict[str, Any]) -> int:
    """200: all kept; 207: some rows bad (listed), the rest kept; 400: nothing usable."""
    if not out["errors"]:
        return 200
    return 207 if out["accepted"] else 400


@api.post("/cdr/asterisk")
@allow("admin", "integration")
def cdr_asterisk() -> Any:
    upload = request.files.get("file")
    raw = upload.read() if upload is not None else request.get_data()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1251", errors="replace")     # older Russian-locale PBXs
    if not text.strip():
        abort(400, "send Master.csv as the body (text/csv) or as a form file named 'file'")
    name = upload.filename if upload is not None and upload.filename else "Master.csv"
    out = _q().import_asterisk(text, g.actor, name[:100])
    return jsonify(out), _status(out)


@api.get("/kpis")
@allow(*READ)
def kpis() -> Any:
    return jsonify(_q().kpis(_period()))


@api.get("/kpis/compare")
@allow(*READ)
def kpis_compare() -> Any:
    return jsonify(_q().compare(_period()))


@api.get("/kpis/flags")
@allow(*READ)
def kpis_flags() -> Any:
    return jsonify(flags=_q().flags(_period()))


@api.get("/missed")
@allow(*READ)
def missed() -> Any:
    return jsonify(missed=_q().missed(_period(), status=request.args.get("status") or None,
                                      agent=request.args.get("agent") or None))


@api.get("/clients")
@allow(*READ)
def clients() -> Any:
    return jsonify(_q().clients())
