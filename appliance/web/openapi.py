"""The OpenAPI 3.1 description of ``/api/v1``, built from the routes themselves (so it
cannot miss one) plus the query parameters each takes."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app

from .. import __version__

PERIOD = {"name": "period", "in": "query", "schema": {"type": "string"},
          "description": "2026-11 (month), 2026-W48 (ISO week) or 2026-11-24 (day)"}


def _q(name: str, kind: str = "string", text: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind}, "description": text}


QUERY: dict[str, list[dict[str, Any]]] = {
    "api.calls": [_q("period", text=PERIOD["description"] + " (or from/to)"),
                  _q("from", text="first day, YYYY-MM-DD (default: 30 days ago)"),
                  _q("to", text="last day, YYYY-MM-DD (default: today)"),
                  _q("agent"), _q("direction", text="inbound or outbound"), _q("tag"),
                  _q("min_score", "number"), _q("max_score", "number"),
                  _q("q", text="words that must all appear in the transcript (prefixes)"),
                  _q("party", text="agent or client: search only that party's words"),
                  _q("offset", "integer"), _q("limit", "integer", "at most 500"),
                  _q("page", "integer")],
    "api.kpis": [{**PERIOD, "required": True}],
    "api.kpis_compare": [{**PERIOD, "required": True}],
    "api.kpis_flags": [{**PERIOD, "required": True}],
    "api.missed": [{**PERIOD, "required": True}, _q("status", text="fast, slow, client_again, "
                                                    "never, pending, no_number"), _q("agent")],
    "api.alerts": [_q("days", "integer", "days back (default 2)")],
    "api.audit": [_q("limit", "integer")],
}
ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        view = current_app.view_functions[rule.endpoint]
        doc = (view.__doc__ or rule.endpoint.split(".")[-1].replace("_", " ")).strip()
        params = [{"name": a, "in": "path", "required": True, "schema": {"type": "string"}}
                  for a in sorted(rule.arguments)] + QUERY.get(rule.endpoint, [])
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "operationId": rule.endpoint.split(".")[-1]
                + ("" if method == "GET" else f"_{method.lower()}"),
                "summary": doc.splitlines()[0], "description": doc, "parameters": params,
                "responses": {"200": {"description": "JSON"}, "400": ERROR, "401": ERROR,
                              "403": ERROR, "404": ERROR}}
            if rule.endpoint == "api.openapi":
                op["security"] = []
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Call recording appliance API", "version": __version__,
                 "description": "Tokens: `appliance token create NAME --role ROLE`; send "
                                "`Authorization: Bearer <token>`. Panel pages use their "
                                "session cookie and an `X-CSRFToken` header instead."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie",
                                            "name": "appliance_session"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}},
                                  "required": ["error"]}}},
        "paths": dict(sorted(paths.items())),
    }
