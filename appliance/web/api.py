"""``/api/v1``: everything the panel shows (calls, KPIs, missed calls, alerts, system,
dictionaries, checklists, settings, users), and PBX records and outcomes in. Described by
``/api/v1/openapi.json``.

Machine clients authenticate with ``Authorization: Bearer <token>`` (``appliance token
create``); the panel's own pages call it with their session cookie and CSRF header. Every
error is JSON: ``{"error": "what was wrong and what to do"}``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from functools import wraps
from pathlib import Path
from typing import Any, Callable

from flask import Blueprint, abort, current_app, g, jsonify, request, session

from ..cdr.asterisk import decode_csv
from ..cdr.record import CdrError
from ..analysis.library import LibraryError
from ..query import NotFound, Queries
from ..store.outcomes import OutcomeError
from ..system import panel_settings
from ..system.atomic import write_json_atomic
from ..system.disk import disk_state
from . import views
from .apispec import check_query
from .auditview import LIMIT, audit_entries, export, searched
from .auth import session_user
from .users import UserError

api = Blueprint("api", __name__, url_prefix="/api/v1")

READ = ("admin", "supervisor", "viewer", "integration")


def _q() -> Queries:
    return current_app.extensions["queries"]


def _error(status: int, message: str) -> Any:
    return jsonify(error=message), status


def bearer() -> bool:
    """The request carries a bearer token (valid or not)."""
    return request.headers.get("Authorization", "")[:7].lower() == "bearer "


def token_owner() -> dict[str, Any] | None:
    """The API token of this request, if it sent a valid one (checked once per request)."""
    if "token_owner" not in g:
        token = request.headers["Authorization"][7:].strip() if bearer() else ""
        g.token_owner = current_app.extensions["tokens"].check(token) if token else None
    return g.token_owner


def allow(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Require a valid token, or a signed-in panel user, whose role is one of ``roles``."""
    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if bearer():
                owner = token_owner()
                actor = f"token:{owner['name']}" if owner else ""
            else:
                owner = session_user()
                actor = owner["name"] if owner else ""
            if owner is None:
                resp, status = _error(401, "the panel session has ended (signed out, expired or "
                                           "ended everywhere): sign in again"
                                      if not bearer() and session.get("user") else
                                      "missing or unknown API token: send "
                                      "'Authorization: Bearer <token>' (appliance token create)"
                                      " or sign in to the panel")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="appliance"'
                return resp, status
            if owner["role"] not in roles:
                return _error(403, f"role {owner['role']!r} may not do this")
            g.actor = actor
            check_query(request.endpoint, request.args)      # as declared in apispec.py
            return view(*args, **kwargs)
        return checked
    return wrap


def _arg_int(name: str, default: int, high: int) -> int:
    return views.whole_arg(request.args, name, default, high)


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
    """``period`` (day, week, month), or ``from``/``to`` dates (default: the last 30 days);
    filters agent, direction, tag, min_score, max_score, q (transcript words), party,
    problem; sort (date, score, duration, talk_share, interruptions, dead_air) and order."""
    if request.args.get("period"):
        f = views.call_filters({k: v for k, v in request.args.items() if k not in ("from", "to")})
        f.pop("range")
        page = _q().calls(_period(), offset=_arg_int("offset", 0, 10**7),
                          limit=_arg_int("limit", 50, 500), **f)
    else:
        page = views.calls_page(_q(), request.args)
    if request.args.get("q"):       # the rows found say which calls contain the words
        _audit("transcript search", searched(request.args["q"], current_app.extensions[
            "settings"].privacy.redact), found=page["total"])
    return jsonify(page)


@api.get("/calls/<uid>")
@allow(*READ)
def call(uid: str) -> Any:
    return jsonify(_q().call(uid))


@api.get("/calls/<uid>/detail")
@allow(*READ)
def call_detail(uid: str) -> Any:
    """Metrics, timeline, transcript and score as the call page shows them."""
    detail = views.call_detail(_q(), uid)
    if detail.get("transcript"):
        _audit("transcript view", uid)
    return jsonify(detail)


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
        if not request.is_json:
            abort(400, "send the records as JSON (Content-Type: application/json)")
        try:
            json.loads(request.get_data() or b"")
        except ValueError as exc:
            abort(400, f"the body is not valid JSON ({exc})")
        abort(400, "the body is not a record, a list of records or {\"records\": [...]} in "
                   "JSON")
    try:
        out = _q().add_cdr(payload, g.actor)
    except CdrError as exc:
        return _error(400, str(exc))
    return _import_answer(out)


def _import_answer(out: dict[str, Any]) -> Any:
    """200: all kept; 207: some rows bad (listed), the rest kept; 400: nothing usable, with
    an ``error`` like every other 400 besides the list."""
    if not out["errors"]:
        return jsonify(out), 200
    if out["accepted"]:
        return jsonify(out), 207
    first = out["errors"][0]["error"]
    return jsonify({**out, "error": f"no record kept: {len(out['errors'])} bad, the first: "
                                    f"{first}"}), 400


@api.post("/cdr/asterisk")
@allow("admin", "integration")
def cdr_asterisk() -> Any:
    """Asterisk's Master.csv: the body as it is (any type but a form with a file, since
    ``curl --data-binary`` sends its default form type), or a form file named ``file``."""
    upload = request.files.get("file") if request.mimetype == "multipart/form-data" else None
    # parse_form_data=False: a 'form' body that is really the CSV is taken as it is
    raw = upload.read() if upload is not None else request.get_data(parse_form_data=False)
    text = decode_csv(raw)
    if not text.strip():
        abort(400, "send Master.csv as the body (text/csv) or as a form file named 'file'")
    name = upload.filename if upload is not None and upload.filename else "Master.csv"
    out = _q().import_asterisk(text, g.actor, name[:100])
    return _import_answer(out)


@api.post("/recordings")
@allow("admin", "integration")
def recording_upload() -> Any:
    """A stereo recording the PBX wrote (form file ``file``, WAV or FLAC, agent on channel
    ``channels.agent_channel``) with what the PBX knows: ``agent``, ``client``,
    ``direction``, ``started_at``, ``call_id``. Queued for analysis like the inbox's files."""
    from ..cdr.record import Context
    from ..sources.inbox import AUDIO_SUFFIXES
    from ..sources.sidecar import SidecarError, normalise_info, sidecar_path

    settings = current_app.extensions["settings"]
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _error(400, "send the recording as a form file named 'file' (curl -F file=@call.wav)")
    suffix = Path(upload.filename).suffix.lower()
    head = upload.stream.read(4)
    upload.stream.seek(0)
    if suffix not in AUDIO_SUFFIXES or head not in (b"RIFF", b"fLaC"):
        return _error(400, "the file must be a WAV or FLAC recording (.wav, .flac)")
    try:
        info = normalise_info(request.form, Context.from_settings(settings))
    except SidecarError as exc:
        return _error(400, str(exc))
    inbox = settings.paths.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    free_mb = disk_state(inbox).free_mb
    if free_mb < settings.retention.stop_recording_free_mb:
        return _error(507, f"disk full ({free_mb:.0f} MB free): the recording was not kept; "
                      "free space or lower retention.audio_days, then send it again")
    name = f"api-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}{suffix}"
    part = inbox / f".{name}.part"          # the watcher takes only finished .wav/.flac files
    try:
        if info:
            write_json_atomic(sidecar_path(inbox / name), info)
        upload.save(part)
        os.replace(part, inbox / name)
    except OSError as exc:
        part.unlink(missing_ok=True)
        sidecar_path(inbox / name).unlink(missing_ok=True)
        return _error(507, f"the recording could not be stored: {exc}")
    _audit("recording upload", name, **{k: v for k, v in info.items() if k != "started_at"})
    return jsonify(file=name, call_id=info.get("call_id") or Path(name).stem, status="queued"), 202


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
    """Missed calls of a ``period`` or ``from``/``to`` (default: the last 7 days) with their
    callbacks, counts by status, and the ones to call back now (the missed-calls page)."""
    from .missed import missed_page

    return jsonify(missed_page(_q(), request.args))


@api.get("/managers")
@allow(*READ)
def managers() -> Any:
    """Per manager and team: each figure over the last 8 weeks (``kind=week``) or 6 months
    (``kind=month``), its change to date, baseline flags, ranked by ``sort``."""
    from .managers import managers_page

    return jsonify(managers_page(_q(), request.args))


@api.get("/plans")
@allow(*READ)
def plans() -> Any:
    """Every plan's progress this week or month: value, forecast at the current pace, status."""
    from .plans import plans_page

    return jsonify(plans=plans_page(_q())["plans"])


@api.put("/plans")
@allow("admin", "supervisor")
def plan_put() -> Any:
    """Set a plan: one per group, period kind and figure (a new target replaces the old)."""
    from ..kpi.plans import PlanError

    payload = request.get_json(silent=True)
    if payload is None:
        abort(400, 'send JSON such as {"scope": "manager", "who": "101", "kind": "month", '
                   '"metric": "calls", "target": 300}')
    try:
        plan = _q().save_plan(payload, g.actor)
    except PlanError as exc:
        return _error(400, str(exc))
    return jsonify(plan)


@api.delete("/plans/<plan_id>")
@allow("admin", "supervisor")
def plan_delete(plan_id: str) -> Any:
    _q().delete_plan(plan_id, g.actor)
    return "", 204


@api.get("/clients")
@allow(*READ)
def clients() -> Any:
    return jsonify(_q().clients())


@api.get("/dashboard")
@allow(*READ)
def dashboard() -> Any:
    return jsonify(views.dashboard(_q()))


@api.get("/alerts")
@allow(*READ)
def alerts() -> Any:
    return jsonify(alerts=_q().alerts(days=_arg_int("days", 2, 62)))


@api.get("/system")
@allow("admin", "supervisor", "integration")
def system() -> Any:
    from .admin import system_data
    out = system_data()
    out.pop("logs")
    return jsonify(out)


@api.post("/system/store-problems/acknowledge")
@allow("admin")
def store_problems_acknowledge() -> Any:
    """The store's problems have been seen: they stop failing the health check."""
    n = _q().db.damage.acknowledge(g.actor)
    _audit("store problems acknowledged", "", problems=n)
    return jsonify(acknowledged=n)


@api.get("/dictionaries")
@allow(*READ)
def dictionaries() -> Any:
    return jsonify(dictionaries=_lib().dictionaries())


@api.get("/dictionaries/<lang>/<name>")
@allow(*READ)
def dictionary(lang: str, name: str) -> Any:
    try:
        return jsonify(_lib().dictionary(lang, name))
    except LibraryError as exc:
        return _error(404, str(exc))


@api.put("/dictionaries/<lang>/<name>")
@allow("admin", "supervisor")
def dictionary_put(lang: str, name: str) -> Any:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        abort(400, 'send JSON such as {"party": "client", "severity": 2, "entries": ["..."]}')
    try:
        saved = _lib().save_dictionary(lang, name, payload)
    except LibraryError as exc:
        return _error(400, str(exc))
    _audit("dictionary saved", f"{lang}/{name}", entries=len(saved["entries"]))
    return jsonify(saved)


@api.delete("/dictionaries/<lang>/<name>")
@allow("admin", "supervisor")
def dictionary_delete(lang: str, name: str) -> Any:
    try:
        _lib().reset_dictionary(lang, name)
    except LibraryError as exc:
        return _error(404, str(exc))
    _audit("dictionary reset", f"{lang}/{name}")
    return "", 204


@api.get("/checklists")
@allow(*READ)
def checklists() -> Any:
    return jsonify(checklists=_lib().checklists())


@api.put("/checklists/<name>")
@allow("admin", "supervisor")
def checklist_put(name: str) -> Any:
    text = request.get_data(as_text=True)
    try:
        saved = _lib().save_checklist(name, text)
    except LibraryError as exc:
        return _error(400, str(exc))
    _audit("checklist saved", name, items=len(saved["items"]))
    return jsonify(saved)


@api.get("/settings")
@allow("admin")
def settings_get() -> Any:
    from .admin import saved_settings
    return jsonify(values=panel_settings.current_values(saved_settings()),
                   live=list(panel_settings.LIVE), fixed=sorted(panel_settings.env_keys()))


@api.patch("/settings")
@allow("admin")
def settings_patch() -> Any:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        abort(400, 'send JSON such as {"retention": {"audio_days": 90}}')
    from .admin import apply_settings
    try:
        restart = apply_settings(payload)
    except panel_settings.SettingsError as exc:
        return _error(400, str(exc))
    _audit("settings changed", "", restart=restart)
    return jsonify(restart_needed=restart)


@api.get("/users")
@allow("admin")
def users_list() -> Any:
    return jsonify(users=current_app.extensions["users"].all())


@api.post("/users")
@allow("admin")
def users_create() -> Any:
    payload = request.get_json(silent=True) or {}
    try:
        user = current_app.extensions["users"].create(str(payload.get("name", "")),
                                                      str(payload.get("password", "")),
                                                      str(payload.get("role", "")))
    except UserError as exc:
        return _error(400, str(exc))
    _audit("user create", user["name"], role=user["role"])
    return jsonify(user), 201


@api.get("/audit")
@allow("admin")
def audit_list() -> Any:
    if request.args.get("format") == "csv":
        return export(_q().db.audit, request.args, _audit)
    return jsonify(entries=audit_entries(_q().db.audit, request.args, _arg_int("limit", 100, LIMIT)))


@api.get("/health")
@allow(*READ)
def health_detail() -> Any:
    """Registration, broker, disk, recognition queue and model, each with a detail line."""
    out = current_app.extensions["health"]()
    return jsonify(out), 200 if out["ok"] else 503


@api.get("/openapi.json")
def openapi() -> Any:
    from .openapi import document
    return jsonify(document())


def _lib() -> Any:
    return current_app.extensions["library"]


def _audit(action: str, target: str = "", **detail: Any) -> None:
    _q().db.audit.record(g.actor, action, target, ip=request.remote_addr, **detail)
