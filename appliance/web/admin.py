"""Pages for IT: dictionaries and checklists, settings, system, users, audit, backup."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from flask import (Blueprint, Response, abort, current_app, flash, g, redirect,
                   render_template, request, url_for)

from .. import __version__
from ..analysis.library import Library, LibraryError, entry_lines
from ..system import panel_settings
from ..system.egress import egress
from ..system.logs import RECENT
from . import backup
from .auditview import CALL_ACTIONS, PAGE_LIMIT, audit_entries, export, known_actions
from .catalog_ru import RU
from .auth import audit, login_required
from .i18n import gettext as _
from .tokens import ROLES as TOKEN_ROLES
from .users import ROLES, UserError, Users

bp = Blueprint("admin", __name__)
EDITORS = ("admin", "supervisor")
UPDATE_MAX_BYTES = 4 << 30


def _library() -> Library:
    return current_app.extensions["library"]


def _users() -> Users:
    return current_app.extensions["users"]


# --- dictionaries and checklists ---
@bp.get("/dictionaries")
@login_required()
def dictionaries() -> Any:
    return render_template("dictionaries.html", items=_library().dictionaries(),
                           checklists=_library().checklists())


@bp.get("/dictionaries/new")
@login_required(*EDITORS)
def new_dictionary() -> Any:
    lang, name = request.args.get("lang", ""), request.args.get("name", "")
    try:
        _library().check_name(lang, name)
    except LibraryError as exc:
        abort(400, str(exc))
    return redirect(url_for("admin.dictionary", lang=lang, name=name, new=1))


@bp.route("/dictionaries/<lang>/<name>", methods=["GET", "POST"])
@login_required()
def dictionary(lang: str, name: str) -> Any:
    lib = _library()
    if request.method == "GET":
        try:
            d = lib.dictionary(lang, name)
        except LibraryError:
            if request.args.get("new") != "1" or g.user["role"] not in EDITORS:
                abort(404, f"no dictionary {lang[:5]}/{name[:40]}")
            lib.check_name(lang, name)
            d = {"language": lang, "name": name, "tag": name, "party": "any", "severity": 1,
                 "alert": False, "enabled": True, "origin": "new", "entries": []}
        return render_template("dictionary.html", d=d, lines=_entry_lines(d["entries"]))
    if g.user["role"] not in EDITORS:
        abort(403, _("Your role ({role}) may not change dictionaries.", role=g.user["role"]))
    if request.form.get("action") == "reset":
        lib.reset_dictionary(lang, name)
        audit("dictionary reset", f"{lang}/{name}")
        flash(_("Dictionary {name} restored.", name=name))
        return redirect(url_for("admin.dictionaries"))
    fields = {"tag": request.form.get("tag", name), "party": request.form.get("party", "any"),
              "severity": request.form.get("severity", "1"), "alert": "alert" in request.form,
              "enabled": "enabled" in request.form, "entries": request.form.get("entries", "")}
    try:
        saved = lib.save_dictionary(lang, name, fields)
    except LibraryError as exc:
        d = {"language": lang, "name": name, "origin": "edited", **fields}
        return render_template("dictionary.html", d=d, lines=fields["entries"], error=str(exc)), 400
    audit("dictionary saved", f"{lang}/{name}", entries=len(saved["entries"]))
    flash(_("Dictionary {name} saved: {n} entries. New calls use it.", name=name,
            n=len(saved["entries"])))
    return redirect(url_for("admin.dictionary", lang=lang, name=name))


def _entry_lines(entries: Any) -> str:
    # a list from the file, or the form's own text sent back with its error
    return entry_lines(entries) if isinstance(entries, list) else str(entries)


@bp.route("/checklists/<name>", methods=["GET", "POST"])
@login_required()
def checklist(name: str) -> Any:
    lib = _library()
    if request.method == "GET":
        try:
            c = lib.checklist(name)
        except LibraryError as exc:
            abort(404, str(exc))
        return render_template("checklist.html", c=c)
    if g.user["role"] not in EDITORS:
        abort(403, _("Your role ({role}) may not change checklists.", role=g.user["role"]))
    if request.form.get("action") == "reset":
        lib.reset_checklist(name)
        audit("checklist reset", name)
        return redirect(url_for("admin.checklist", name=name))
    text = request.form.get("text", "").replace("\r\n", "\n")
    try:
        saved = lib.save_checklist(name, text)
    except LibraryError as exc:
        return render_template("checklist.html", c={"name": name, "text": text, "origin": "edited",
                                                    "items": []}, error=str(exc)), 400
    audit("checklist saved", name, items=len(saved["items"]))
    flash(_("Checklist saved. New calls are scored with it."))
    return redirect(url_for("admin.checklist", name=name))


# --- settings ---
def saved_settings() -> Any:
    """The settings as saved (what runs after a restart); the running ones until a change."""
    ext = current_app.extensions
    return ext.get("saved_settings") or ext["settings"]


def apply_settings(changes: dict[str, Any]) -> list[str]:
    """Validate, keep and apply ``changes``; return the keys that wait for a restart.
    Raises panel_settings.SettingsError."""
    ext = current_app.extensions
    saved, restart = panel_settings.change(ext["settings"], changes, saved_settings())
    ext["saved_settings"] = saved
    ext["queries"].settings_changed()
    return restart


def _settings_form(form: Any) -> dict[str, dict[str, Any]]:
    """The settings form as changes; an empty password field keeps the password."""
    s = saved_settings()
    changes: dict[str, dict[str, Any]] = {}
    for section, keys in panel_settings.EDITABLE.items():
        for key in keys:
            name = f"{section}.{key}"
            if key == "accounts":
                continue
            kind = type(getattr(getattr(s, section), key))
            if kind is bool:
                value: Any = name in form
            elif name not in form:
                continue
            else:
                value = form[name].strip()
                if (section, key) in panel_settings.SECRET and value == "":
                    continue
            changes.setdefault(section, {})[key] = value
    accounts = []
    old = {(a.registrar, a.user): a for a in s.sip.accounts}
    for i in range(int(form.get("accounts", "0") or 0) + 1):
        registrar = form.get(f"acc{i}.registrar", "").strip()
        user = form.get(f"acc{i}.user", "").strip()
        if not registrar and not user or f"acc{i}.remove" in form:
            continue
        acc = {"registrar": registrar, "user": user,
               "transport": form.get(f"acc{i}.transport", "udp")}
        password = form.get(f"acc{i}.password", "")
        prev = old.get((registrar, user))
        acc["password"] = password if password else (prev.password if prev else "")
        accounts.append(acc)
    changes.setdefault("sip", {})["accounts"] = accounts
    return changes


@bp.route("/settings", methods=["GET", "POST"])
@login_required("admin")
def settings() -> Any:
    if request.method == "GET":
        return render_template("settings.html", v=panel_settings.current_values(saved_settings()),
                               fixed=panel_settings.env_keys())
    try:
        restart = apply_settings(_settings_form(request.form))
    except panel_settings.SettingsError as exc:
        return render_template("settings.html", v=panel_settings.current_values(saved_settings()),
                               fixed=panel_settings.env_keys(), error=str(exc)), 400
    audit("settings changed", "", restart=restart)
    flash(_("Settings saved.") + (" " + _("Restart the appliance to apply: {keys}.",
                                          keys=", ".join(restart)) if restart else ""))
    return redirect(url_for("admin.settings"))


# --- system ---
def system_data() -> dict[str, Any]:
    from ..system.metrics import system_metrics

    ext = current_app.extensions
    settings = ext["settings"]
    db = ext["queries"].db
    db.check()
    sip = settings.sip
    mqtt = ext["daemon"]().get("mqtt") or {"enabled": False}
    return {"status": ext["status"](), "machine": system_metrics(), "model": ext["model"](),
            "health": ext["health"](), "version": __version__, "slot": _slot(settings.update.root),
            "sip": {"enabled": sip.enabled, "listen": f"{sip.bind_address}:{sip.port}",
                    "transports": list(sip.transports), "public_address": sip.public_address},
            "mqtt": mqtt, "egress": egress(settings),
            "store_problems": [{k: e[k] for k in ("at", "problem", "lost")} for e in db.damage.open()],
            "min_free_percent": ext["settings"].retention.min_free_percent,
            "logs": [{"level": lvl, "line": line} for lvl, line in list(RECENT.lines)[-200:]]}


def _slot(root: Any) -> str | None:
    """The A/B slot running (``a`` or ``b``); None when not installed in slots."""
    link = root / "current"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else None


@bp.get("/system")
@login_required("admin", "supervisor")
def system() -> Any:
    return render_template("system.html", s=system_data())


@bp.post("/system/store-problems")
@login_required("admin")
def store_problems_acknowledge() -> Any:
    """The admin has seen the store's problems (and restored from a backup what was lost):
    they stop failing the health check."""
    n = current_app.extensions["queries"].db.damage.acknowledge(g.user["name"])
    audit("store problems acknowledged", "", problems=n)
    flash(_("Store problems acknowledged."))
    return redirect(url_for("admin.system"))


@bp.get("/system/backup")
@login_required("admin")
def backup_export() -> Any:
    ext = current_app.extensions
    doc = backup.export(ext["settings"].paths.data_dir, ext["library"], _users())
    audit("backup exported")
    name = time.strftime("appliance-backup-%Y%m%d-%H%M.json")
    return Response(json.dumps(doc, ensure_ascii=False, indent=1), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.post("/system/backup")
@login_required("admin")
def backup_import() -> Any:
    upload = request.files.get("file")
    if upload is None:
        abort(400, "choose a backup file (.json) exported from this page")
    ext = current_app.extensions
    try:
        summary = backup.restore(upload.read(), apply_settings, ext["library"], _users())
    except backup.BackupError as exc:
        return render_template("system.html", s=system_data(), error=str(exc)), 400
    audit("backup restored", "", **summary)
    flash(_("Backup restored: {n} dictionaries and checklists, {u} users.",
            n=summary["files"], u=summary["users"]))
    return redirect(url_for("admin.system"))


@bp.post("/system/update")
@login_required("admin")
def update_upload() -> Any:
    """An update bundle uploaded from the system page: checked and applied as
    ``appliance update apply`` does; the restart is left to the admin."""
    from ..system import update

    upload = request.files.get("bundle")
    if upload is None:
        abort(400, "choose an update bundle (.tar)")
    cfg = current_app.extensions["settings"].update
    inbox = current_app.extensions["settings"].paths.data_dir / "updates"
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / "upload.tar"
    upload.save(path)
    slots = update.Slots(cfg.root)
    try:
        bundle = update.read_bundle(path, update.trusted_keys(cfg.keys_dir))
        if cfg.handoff:           # the root updater installs it and restarts the appliance
            slots.check_newer(bundle.version)
            os.replace(path, inbox / update.HANDOFF)
            state = {"version": bundle.version, "pending": "handoff"}
        else:
            state = slots.apply(bundle)
    except update.UpdateError as exc:
        audit("update refused", upload.filename or "", reason=str(exc))
        return render_template("system.html", s=system_data(), error=str(exc)), 400
    finally:
        path.unlink(missing_ok=True)
    if cfg.handoff:
        audit("update handed over", state["version"])
        flash(_("Version {v} verified: the box installs it and restarts in a minute (rolled back if not healthy).",  # noqa: E501
                v=state["version"]))
    else:
        audit("update applied", state["version"], slot=state["pending"])
        flash(_("Version {v} installed: restart to run it (rolled back if not healthy).",
                v=state["version"]))
    return redirect(url_for("admin.system"))


# --- users and audit ---
@bp.route("/users", methods=["GET", "POST"])
@login_required("admin")
def users() -> Any:
    if request.method == "GET":
        return _users_page()
    action = request.form.get("action", "")
    name = request.form.get("username", "").strip()
    try:
        if action == "create":
            _users().create(name, request.form.get("password", ""), request.form.get("role", ""))
        elif action == "update":
            password = request.form.get("password") or None
            _users().update(name, role=request.form.get("role") or None,
                            disabled="disabled" in request.form, password=password)
        elif action == "delete":
            if name == g.user["name"]:
                raise UserError("you cannot delete your own account")
            _users().delete(name)
        else:
            abort(400, "action: create, update or delete")
    except UserError as exc:
        return _users_page(error=str(exc)), 400
    audit(f"user {action}", name, role=request.form.get("role"))
    flash(_("User {name}: done.", name=name))
    return redirect(url_for("admin.users"))


def _users_page(**extra: Any) -> str:
    tokens = current_app.extensions["tokens"]
    return render_template("users.html", users=_users().all(), roles=ROLES, tokens=tokens.list(),
                           token_roles=TOKEN_ROLES, **extra)


@bp.post("/tokens")
@login_required("admin")
def tokens() -> Any:
    """API tokens for the PBX, a CRM or a central server: made here (the secret is shown
    once, on this page, never put in a cookie) or revoked."""
    action = request.form.get("action", "")
    name = request.form.get("name", "").strip()
    files = current_app.extensions["tokens"]
    if action == "create":
        try:
            secret = files.create(name, request.form.get("role", ""))
        except ValueError as exc:
            return _users_page(error=str(exc)), 400
        audit("token create", name, role=request.form.get("role"))
        return _users_page(new_token={"name": name, "secret": secret})
    if action == "revoke":
        if not files.revoke(name):
            return _users_page(error=_("No token named {name}.", name=name)), 404
        audit("token revoke", name)
        flash(_("Token {name} revoked.", name=name))
        return redirect(url_for("admin.users"))
    abort(400, "action: create or revoke")


@bp.get("/audit")
@login_required("admin")
def audit_log() -> Any:
    """Who did what: filters by dates, who, action and object; CSV of the same entries."""
    log = current_app.extensions["queries"].db.audit
    if request.args.get("format") == "csv":
        return export(log, request.args, audit)
    entries = audit_entries(log, request.args, limit=PAGE_LIMIT + 1)
    return render_template("audit.html", entries=entries[:PAGE_LIMIT], args=request.args,
                           more=len(entries) > PAGE_LIMIT, limit=PAGE_LIMIT,
                           call_actions=CALL_ACTIONS, actions=known_actions(log, RU))
