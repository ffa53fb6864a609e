"""The OpenAPI 3.1 description of ``/api/v1``, built from the routes themselves (so it
cannot miss one) and from their declarations in ``apispec.py``, the ones that check each
request: query parameters, request bodies, and every answer with the schema of its body."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from flask import current_app

from .. import __version__
from .apispec import ROUTES, SCHEMAS


def _answer(status: int, schema: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        route = ROUTES[rule.endpoint]          # a route without a declaration is a bug
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        view = current_app.view_functions[rule.endpoint]
        doc = (view.__doc__ or rule.endpoint.split(".")[-1].replace("_", " ")).strip()
        params = [{"name": a, "in": "path", "required": True, "schema": {"type": "string"}}
                  for a in sorted(rule.arguments)]
        params += [{"name": p.name, "in": "query", "required": p.required, "schema": p.schema(),
                    "description": p.text} for p in route.query]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "operationId": rule.endpoint.split(".")[-1]
                + ("" if method == "GET" else f"_{method.lower()}"),
                "summary": doc.splitlines()[0], "description": doc, "parameters": params,
                "responses": {str(status): _answer(status, schema) for status, schema
                              in route.responses(bool(rule.arguments)).items()}}
            if route.body:
                op["requestBody"] = {"required": True, "content": {
                    kind: {"schema": schema} for kind, schema in route.body.items()}}
            if route.public:
                op["security"] = []
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Call recording appliance API", "version": __version__,
                 "description": "Tokens: `appliance token create NAME --role ROLE`; send "
                                "`Authorization: Bearer <token>`. Panel pages use their "
                                "session cookie and an `X-CSRFToken` header instead. Every "
                                "error is JSON: `{\"error\": \"what was wrong and what to do\"}`."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie",
                                            "name": "appliance_session"}},
            "schemas": SCHEMAS},
        "paths": dict(sorted(paths.items())),
    }
