"""Pages for supervisors: dashboard, calls list, call detail with its recording."""

from __future__ import annotations

import io
import logging
from typing import Any

from flask import (Blueprint, Response, abort, current_app, g, jsonify, redirect, render_template,
                   request, send_file, url_for)
from werkzeug.http import parse_range_header

from ..query import NotFound, Queries
from ..store.outcomes import OutcomeError
from ..system import sealing
from . import views
from .missed import missed_csv, missed_page
from .auditview import searched
from .auth import audit, login_required
from .waveform import peaks

bp = Blueprint("pages", __name__)
log = logging.getLogger(__name__)
AUDIO_TYPES = {".flac": "audio/flac", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}


def _q() -> Queries:
    return current_app.extensions["queries"]


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> Any:
    return render_template("error.html", code=404, message=exc.args[0] if exc.args else ""), 404


@bp.get("/")
@login_required()
def dashboard() -> Any:
    return render_template("dashboard.html", d=views.dashboard(_q()))


@bp.get("/calls")
@login_required()
def calls() -> Any:
    filters = views.call_filters(request.args)
    page = views.calls_page(_q(), request.args, filters)
    if filters.get("text"):         # the rows found say which calls contain the words
        audit("transcript search", searched(filters["text"], current_app.extensions[
            "settings"].privacy.redact), found=page["total"])
    start, end = filters["range"]
    tags = sorted({d["tag"] for d in current_app.extensions["library"].dictionaries()})
    return render_template("calls.html", page=page, args=request.args,
                           agents=_q().agents(start, end), tags=tags)


@bp.get("/missed")
@login_required()
def missed() -> Any:
    page = missed_page(_q(), request.args)
    kpi = _q().settings.kpi
    agents = set(kpi.names) | {a for t in kpi.teams.values() for a in t} | {
        a for m in page["missed"] for a in m["rung"]}
    return render_template("missed.html", m=page, args=request.args, agents=sorted(agents))


@bp.get("/missed.csv")
@login_required()
def missed_export() -> Any:
    page = missed_page(_q(), request.args)
    audit("missed export", f"{page['from']}..{page['to']}", rows=len(page["missed"]))
    return Response(missed_csv(page), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="missed-{page["from"]}-{page["to"]}.csv"'})


@bp.get("/calls/<uid>")
@login_required()
def call(uid: str) -> Any:
    detail = views.call_detail(_q(), uid)
    if detail.get("transcript"):
        audit("transcript view", uid)
    return render_template("call.html", c=detail, uid=uid)


@bp.get("/calls/<uid>/audio")
@login_required()
def audio(uid: str) -> Any:
    """The recording, with HTTP Range (the player seeks without downloading it all)."""
    path = _q().audio_path(uid)
    if path is None:
        abort(404, "no recording kept for this call")
    download = request.args.get("download") == "1"
    wanted = parse_range_header(request.headers.get("Range"))
    if "HTTP_RANGE" in request.environ and (wanted is None or wanted.units != "bytes"
                                            or len(wanted.ranges) != 1):
        # several ranges, another unit or nonsense: the whole file (RFC 9110 lets a server
        # ignore Range), which every player handles, rather than a 416
        request.environ.pop("HTTP_RANGE", None)
    first = request.headers.get("Range", "bytes=0-").replace(" ", "").startswith("bytes=0-")
    if download or first:       # one entry per playback or download, not per Range request
        audit("download" if download else "listen", uid)
    # a sealed recording ([privacy] encrypt) is unsealed in memory, never to the disk
    try:
        body = io.BytesIO(sealing.read_bytes(path)) if sealing.is_sealed(path) else path
    except sealing.SealError as exc:
        log.error("recording cannot be unsealed", extra={"uid": uid, "reason": str(exc)})
        return render_template("error.html", code=500,
                               message=f"The recording cannot be read: {exc}"), 500
    resp = send_file(body, mimetype=AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream"),
                     conditional=True, as_attachment=download, download_name=f"{uid}{path.suffix}",
                     max_age=0)
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.get("/calls/<uid>/waveform")
@login_required()
def waveform(uid: str) -> Any:
    path = _q().audio_path(uid)
    if path is None:
        abort(404, "no recording kept for this call")
    try:
        return jsonify(peaks(path))
    except RuntimeError as exc:
        abort(422, str(exc))


@bp.post("/calls/<uid>/outcome")
@login_required("admin", "supervisor")
def outcome(uid: str) -> Any:
    payload: dict[str, Any] = {"result": request.form.get("result", "")}
    if request.form.get("amount"):
        try:
            payload["amount"] = float(request.form["amount"])
        except ValueError:
            abort(400, "amount: a number")
    if request.form.get("note"):
        payload["note"] = request.form["note"][:500]
    try:
        _q().post_outcome(uid, payload, g.user["name"])
    except OutcomeError as exc:
        abort(400, str(exc))
    return redirect(url_for("pages.call", uid=uid))
