"""The published API description against the API's real answers: every route is exercised,
and every answer it gives (successes and errors) has its status in the document and a body
that validates against the schema documented for that status. Query parameters and request
bodies are checked from the same declarations (appliance/web/apispec.py)."""

from __future__ import annotations

import io
import time
from pathlib import Path


from schemacheck import errors

MASTER = (Path(__file__).parent / "data" / "cdr" / "Master.csv").read_bytes()


def _wav() -> bytes:
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    t = np.arange(8000) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    sf.write(buf, np.stack([tone, tone * 0], axis=1), 8000, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _cases(box) -> list[tuple[str, str, dict, int]]:
    """(method, url, request kwargs, expected status): every operation, its errors too."""
    month, today = time.strftime("%Y-%m"), time.strftime("%Y-%m-%d")
    row = {"id": "r1", "start": time.time() - 3000, "from": "79160000001", "to": "101"}
    checklist = box.app.extensions["library"].checklist("sales")["text"]
    return [
        ("get", f"/api/v1/calls?period={month}", {}, 200),
        ("get", "/api/v1/calls?q=доставку&party=client", {}, 200),
        ("get", "/api/v1/calls?period=yesterday", {}, 400),
        ("get", "/api/v1/calls?direction=up", {}, 400),
        ("get", "/api/v1/calls/c-polite", {}, 200),
        ("get", "/api/v1/calls/nope", {}, 404),
        ("get", "/api/v1/calls/c-polite/detail", {}, 200),
        ("get", "/api/v1/calls/nope/detail", {}, 404),
        ("post", "/api/v1/calls/c-polite/outcome", {"json": {"result": "won", "amount": 10}}, 201),
        ("post", "/api/v1/calls/c-polite/outcome", {"json": {"result": "sold"}}, 400),
        ("post", "/api/v1/calls/nope/outcome", {"json": {"result": "won"}}, 404),
        ("post", "/api/v1/cdr", {"json": [row]}, 200),
        ("post", "/api/v1/cdr", {"json": [row, {"start": "nope"}]}, 207),
        ("post", "/api/v1/cdr", {"data": "not json", "content_type": "application/json"}, 400),
        ("post", "/api/v1/cdr", {"json": [{"start": "nope"}]}, 400),          # every record bad
        ("post", "/api/v1/cdr/asterisk", {"data": b'"x","y"\n', "content_type": "text/csv"}, 400),
        ("post", "/api/v1/cdr/asterisk", {"data": MASTER, "content_type": "text/csv"}, 207),
        ("post", "/api/v1/cdr/asterisk", {"data": MASTER[:MASTER.index(b"\n") + 1],
                                          "content_type": "text/csv"}, 200),
        ("post", "/api/v1/cdr/asterisk", {"data": MASTER,            # curl --data-binary
                                          "content_type": "application/x-www-form-urlencoded"}, 207),
        ("post", "/api/v1/cdr/asterisk", {"data": b" ", "content_type": "text/csv"}, 400),
        ("post", "/api/v1/cdr/asterisk", {"data": b"x" * (2 << 20), "content_type": "text/csv"}, 413),
        ("post", "/api/v1/recordings", {"content_type": "multipart/form-data", "data": {
            "file": (_wav(), "call.wav"), "agent": "101"}}, 202),
        ("post", "/api/v1/recordings", {"content_type": "multipart/form-data", "data": {
            "file": (b"not audio", "call.wav")}}, 400),
        ("get", f"/api/v1/kpis?period={today}", {}, 200),
        ("get", "/api/v1/kpis", {}, 400),
        ("get", f"/api/v1/kpis/compare?period={month}", {}, 200),
        ("get", f"/api/v1/kpis/flags?period={month}", {}, 200),
        ("get", f"/api/v1/missed?period={month}&status=never", {}, 200),
        ("get", f"/api/v1/missed?period={month}&status=fast", {}, 400),
        ("get", "/api/v1/missed?agent=101&alone=1", {}, 200),
        ("get", "/api/v1/missed?team=nobody", {}, 400),
        ("get", "/api/v1/calls?sort=score&order=asc&problem=1", {}, 200),
        ("get", "/api/v1/calls?sort=loudness", {}, 400),
        ("get", "/api/v1/managers?kind=month&sort=avg_score", {}, 200),
        ("get", "/api/v1/managers?kind=year", {}, 400),
        ("put", "/api/v1/plans", {"json": {"scope": "manager", "who": "101", "kind": "month",
                                           "metric": "calls", "target": 300}}, 200),
        ("put", "/api/v1/plans", {"json": {"scope": "manager", "who": "101", "kind": "month",
                                           "metric": "answer_rate", "target": 90}}, 400),
        ("get", "/api/v1/plans", {}, 200),
        ("delete", "/api/v1/plans/manager:101:month:calls", {}, 204),
        ("delete", "/api/v1/plans/manager:101:month:calls", {}, 404),
        ("get", "/api/v1/clients", {}, 200),
        ("get", "/api/v1/dashboard", {}, 200),
        ("get", "/api/v1/alerts?days=7", {}, 200),
        ("get", "/api/v1/alerts?days=99", {}, 400),
        ("get", "/api/v1/system", {}, 200),
        ("post", "/api/v1/system/store-problems/acknowledge", {}, 200),
        ("get", "/api/v1/dictionaries", {}, 200),
        ("get", "/api/v1/dictionaries/ru/complaints", {}, 200),
        ("get", "/api/v1/dictionaries/ru/nope", {}, 404),
        ("put", "/api/v1/dictionaries/ru/complaints",
         {"json": {"party": "client", "entries": ["жалоба"]}}, 200),
        ("put", "/api/v1/dictionaries/ru/complaints", {"json": {"party": "nobody", "entries": ["x"]}}, 400),
        ("delete", "/api/v1/dictionaries/ru/complaints", {}, 204),
        ("get", "/api/v1/checklists", {}, 200),
        ("put", "/api/v1/checklists/sales", {"data": checklist, "content_type": "text/plain"}, 200),
        ("put", "/api/v1/checklists/sales", {"data": "not = [toml", "content_type": "text/plain"}, 400),
        ("get", "/api/v1/settings", {}, 200),
        ("patch", "/api/v1/settings", {"json": {"retention": {"audio_days": 90}}}, 200),
        ("patch", "/api/v1/settings", {"json": {"retention": {"audio_days": -1}}}, 400),
        ("get", "/api/v1/users", {}, 200),
        ("post", "/api/v1/users", {"json": {"name": "eve", "password": "long enough pass",
                                            "role": "viewer"}}, 201),
        ("post", "/api/v1/users", {"json": {"name": "eve2", "password": "short", "role": "viewer"}}, 400),
        ("get", "/api/v1/audit?limit=5", {}, 200),
        ("get", "/api/v1/audit?limit=many", {}, 400),
        ("get", "/api/v1/health", {}, 200),
        ("get", "/api/v1/openapi.json", {}, 200),
    ]


def _send(client, method: str, url: str, headers: dict | None = None, **kwargs):
    """The request, with fresh file objects for each send (the client closes them)."""
    data = kwargs.get("data")
    if isinstance(data, dict):
        kwargs["data"] = {k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v
                          for k, v in data.items()}
    return getattr(client, method)(url, headers=headers or {}, **kwargs)


def _operation(app, doc, method: str, url: str) -> dict:
    adapter = app.url_map.bind("localhost")
    endpoint, _ = adapter.match(url.split("?")[0], method=method.upper())
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    import re

    path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
    return doc["paths"][path][method], (path, method)


def _conforms(doc, op, resp, where) -> None:
    answers = op["responses"]
    assert str(resp.status_code) in answers, (where, resp.status_code, sorted(answers))
    content = answers[str(resp.status_code)].get("content")
    if content is None:
        assert resp.data == b"", where
        return
    body = resp.get_json()
    problems = errors(body, content["application/json"]["schema"], doc)
    assert not problems, (where, resp.status_code, problems[:5])


def test_every_route_answers_as_the_openapi_document_says(box, monkeypatch):
    app = box.app
    client = app.test_client()
    tokens = app.extensions["tokens"]
    admin = {"Authorization": f"Bearer {tokens.create('admin-client', 'admin')}"}
    viewer = {"Authorization": f"Bearer {tokens.create('viewer-client', 'viewer')}"}
    doc = client.get("/api/v1/openapi.json").get_json()
    operations = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    succeeded = set()
    for method, url, kwargs, status in _cases(box):
        resp = _send(client, method, url, admin, **kwargs)
        assert resp.status_code == status, (method, url, resp.status_code, resp.get_data(as_text=True)[:300])
        op, key = _operation(app, doc, method, url)
        _conforms(doc, op, resp, (method, url))
        if resp.status_code < 300:
            succeeded.add(key)
        if op.get("security") != []:               # the refusals every route may give
            refused = _send(client, method, url)
            assert refused.status_code == 401
            _conforms(doc, op, refused, (method, url, "no token"))
            lowly = _send(client, method, url, viewer, **kwargs)
            if lowly.status_code == 403:
                _conforms(doc, op, lowly, (method, url, "viewer"))
    assert succeeded == operations, sorted(operations - succeeded)
    # a full disk, and a failing health check
    from appliance.system import atomic

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "_os_write", full)
    for method, url, kwargs in (("post", "/api/v1/cdr", {"json": [{"id": "r9", "start": time.time(),
                                                                    "from": "1", "to": "101"}]}),
                                ("post", "/api/v1/calls/c-xss/outcome", {"json": {"result": "lost"}})):
        resp = getattr(client, method)(url, headers=admin, **kwargs)
        assert resp.status_code == 507
        _conforms(doc, _operation(app, doc, method, url)[0], resp, (method, url, "full"))
    monkeypatch.undo()
    app.extensions["status"] = lambda: {"asr_queue": 10**6}
    resp = client.get("/api/v1/health", headers=admin)
    assert resp.status_code == 503
    _conforms(doc, _operation(app, doc, "get", "/api/v1/health")[0], resp, "unhealthy")


def test_the_document_lists_the_real_values_and_answers(box):
    doc = box.app.test_client().get("/api/v1/openapi.json").get_json()
    status = next(p for p in doc["paths"]["/api/v1/missed"]["get"]["parameters"] if p["name"] == "status")
    assert status["schema"]["enum"] == ["called_back_fast", "called_back_slow", "client_called_again",
                                        "never", "pending", "no_number"]
    answers = {code for ops in doc["paths"].values() for op in ops.values() for code in op["responses"]}
    assert answers >= {"200", "201", "202", "204", "207", "400", "401", "403", "404", "413", "503", "507"}
    cdr = doc["paths"]["/api/v1/cdr"]["post"]
    assert "application/json" in cdr["requestBody"]["content"] and "207" in cdr["responses"]
