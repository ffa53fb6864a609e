"""Flask application factory and the server that runs it inside the daemon."""

from __future__ import annotations

import errno
import logging
import threading
from datetime import timedelta
from typing import Any, Callable

from flask import Flask, g, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

from ..analysis.library import Library
from ..config import Settings
from ..query import Queries
from .i18n import LANGUAGES, gettext, pick_language
from .sessions import Sessions
from .throttle import LoginThrottle
from .tokens import TokenFile
from .users import SetupToken, Users, secret_key

log = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
FULL = (errno.ENOSPC, errno.EDQUOT)
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
       "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


class _Sessions(SecureCookieSessionInterface):
    """The ``Secure`` flag whenever the panel is reached over HTTPS (directly or through a
    TLS proxy that says so), or always with ``web.secure_cookies``."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def create_app(queries: Queries, settings: Settings,
               status: Callable[[], dict[str, Any]] | None = None,
               model: Callable[[], dict[str, Any]] | None = None,
               health: Callable[[], dict[str, Any]] | None = None,
               daemon: Callable[[], dict[str, Any]] | None = None) -> Flask:
    """The WSGI app: the panel (session login) and ``/api/v1`` (session or token).
    ``daemon``: what only the running daemon knows (its MQTT connection)."""
    from . import admin, api, auth, filters, managers, pages, plans, wording

    data_dir = settings.paths.data_dir
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key(data_dir),
        MAX_CONTENT_LENGTH=int(settings.web.max_body_mb * 2**20),
        SESSION_COOKIE_NAME="appliance_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.web.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.web.session_hours),
        WTF_CSRF_CHECK_DEFAULT=False,            # checked below, for cookie sessions only
        WTF_CSRF_TIME_LIMIT=None,                # as long as the session
        WTF_CSRF_HEADERS=["X-CSRFToken"],
        JSON_SORT_KEYS=False)
    app.session_interface = _Sessions()
    csrf = CSRFProtect(app)
    app.extensions.update(
        queries=queries, settings=settings, tokens=TokenFile(data_dir),
        users=Users(queries.db.users), setup=SetupToken(data_dir), throttle=LoginThrottle(),
        sessions=Sessions(queries.db.sessions, settings.web.session_hours),
        library=Library(data_dir / "dictionaries"),
        status=status or (lambda: {}), model=model or (lambda: {"status": "unknown"}))
    app.extensions["health"] = health or (lambda: _health(app))
    app.extensions["daemon"] = daemon or (lambda: {"mqtt": {"enabled": False}})

    @app.before_request
    def _guard() -> None:
        g.lang = pick_language()
        if request.endpoint == "admin.update_upload":      # bundles are larger than forms
            request.max_content_length = admin.UPDATE_MAX_BYTES
        elif request.endpoint == "api.recording_upload":    # so are recordings
            request.max_content_length = int(settings.files.max_upload_mb * 2**20)
        # Every state change made with the session cookie, and the sign-in forms themselves
        # (login CSRF); a request with neither is refused by the view (401), not here. Only
        # an API request authenticated by a valid token skips it: a header alone proves
        # nothing, and the panel's forms never take a token.
        machine = request.blueprint == "api" and api.token_owner() is not None
        if request.method not in SAFE_METHODS and not machine and (
                auth.session_user() is not None or request.blueprint == "auth"):
            csrf.protect()

    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        if resp.mimetype in ("text/html", "application/json"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.context_processor
    def _template_helpers() -> dict[str, Any]:
        return {"lang": g.get("lang", "ru"), "languages": LANGUAGES, "user": g.get("user")}

    app.jinja_env.globals["_"] = gettext        # macros imported without context need it too

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        message = _too_large(settings) if code == 413 else exc.description or exc.name
        # what the answer says besides its body: Content-Range on a 416, Retry-After, Allow
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            return jsonify(error=message), code, headers
        return render_template("error.html", code=code, message=message), code, headers

    @app.errorhandler(OSError)
    def _storage_error(exc: OSError) -> Any:
        # a store write that failed kept nothing of itself (see store.md): say so, and that
        # sending it again is safe
        if exc.errno == errno.EFBIG:
            code, message = 507, (f"file size limit reached ({exc.strerror}): nothing of this "
                                  "request was kept; raise the service's file size limit "
                                  "(LimitFSIZE) and send it again")
        elif exc.errno in FULL:
            code, message = 507, (f"disk full ({exc.strerror}): nothing of this request was "
                                  "kept; free space (retention settings) and send it again")
        elif exc.errno in (errno.EIO, errno.EROFS):
            code, message = 500, (f"storage error ({exc.strerror}): nothing of this request was "
                                  "kept; send it again, and check the disk if it persists")
        else:
            raise exc
        log.error("request failed on the disk", extra={"path": request.path, "status": code,
                                                      "reason": str(exc)})
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            return jsonify(error=message), code
        return render_template("error.html", code=code, message=message), code

    filters.install(app)
    app.add_template_filter(wording.evidence)
    for bp in (auth.bp, pages.bp, managers.bp, plans.bp, admin.bp, api.api):
        app.register_blueprint(bp)
    return app


def _too_large(settings: Settings) -> str:
    """The limit that applied to this request's body, by name."""
    from .admin import UPDATE_MAX_BYTES

    if request.endpoint == "api.recording_upload":
        limit = f"{settings.files.max_upload_mb:g} MB (files.max_upload_mb)"
    elif request.endpoint == "admin.update_upload":
        limit = f"{UPDATE_MAX_BYTES / 2**30:g} GB (the largest update bundle)"
    else:
        limit = f"{settings.web.max_body_mb:g} MB (web.max_body_mb)"
    return f"request body over {limit}"


def _health(app: Flask) -> dict[str, Any]:
    from ..system.health import health, store_state

    ext = app.extensions
    return health(ext["settings"], ext["status"](),
                  {"model": ext["model"](), "store": store_state(ext["queries"].db)})


class WebServer:
    """waitress serving the app on ``web.bind_address:web.port`` from a daemon thread."""

    def __init__(self, app: Flask, settings: Settings) -> None:
        from waitress.server import create_server

        proxy: dict[str, Any] = ({"trusted_proxy": settings.web.trusted_proxy,
                                  "trusted_proxy_headers": {"x-forwarded-proto"}}
                                 if settings.web.trusted_proxy else {})
        self.server = create_server(app, host=settings.web.bind_address, port=settings.web.port,
                                    threads=settings.web.threads, ident="appliance", **proxy)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)
        self.app = app

    @property
    def url(self) -> str:
        host = self.server.effective_host
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{self.server.effective_port}"

    def start(self) -> None:
        self.thread.start()
        log.info("web panel listening", extra={"url": self.url + "/"})
        users = self.app.extensions.get("users")
        if users is not None and len(users) == 0:          # first run: the one way in is the set-up link
            token = self.app.extensions["setup"].ensure()
            log.warning("first run: create the admin account",
                        extra={"setup_url": f"{self.url}/setup?token={token}"})

    def stop(self) -> None:
        self.server.close()
