"""Flask application factory and the server that runs it inside the daemon."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from ..config import Settings
from ..query import Queries
from .tokens import TokenFile

log = logging.getLogger(__name__)


def create_app(queries: Queries, settings: Settings) -> Flask:
    """The WSGI app: ``/api/v1`` (token auth)."""
    from .api import api

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(settings.web.max_body_mb * 2**20)
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["queries"] = queries
    app.extensions["tokens"] = TokenFile(settings.paths.data_dir)
    app.register_blueprint(api)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        messages = {413: f"request body over {settings.web.max_body_mb} MB (web.max_body_mb)"}
        return jsonify(error=messages.get(exc.code or 500, exc.description)), exc.code

    return app


class WebServer:
    """waitress serving the app on ``web.bind_address:web.port`` from a daemon thread."""

    def __init__(self, app: Flask, settings: Settings) -> None:
        from waitress.server import create_server

        self.server = create_server(app, host=settings.web.bind_address, port=settings.web.port,
                                    threads=4, ident="appliance")
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self) -> None:
        self.thread.start()
        log.info("http api listening", extra={"url": f"http://{self.server.effective_host}:"
                                                     f"{self.server.effective_port}/api/v1"})

    def stop(self) -> None:
        self.server.close()
