"""The HTTP API with Flask's test client: token auth and roles, PBX records in (JSON and
Master.csv), outcomes, KPIs, and clear JSON errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import load_settings
from appliance.query import Queries
from appliance.store.database import Database
from appliance.web import create_app
from appliance.web.tokens import TokenFile
from storedata import at, result

MASTER = (Path(__file__).parent / "data" / "cdr" / "Master.csv").read_bytes()


@pytest.fixture
def web(tmp_path):
    settings = load_settings(environ={})
    settings.paths.data_dir = tmp_path
    settings.web.max_body_mb = 0.5
    db = Database(tmp_path)
    q = Queries(db, settings)
    app = create_app(q, settings)
    tokens = TokenFile(tmp_path)
    keys = {role: {"Authorization": f"Bearer {tokens.create(role + '-client', role)}"}
            for role in ("admin", "viewer", "integration", "supervisor")}
    yield app.test_client(), keys, q
    db.close()


ENDPOINTS = [("get", "/api/v1/calls?period=2026-10"), ("get", "/api/v1/calls/x"),
             ("post", "/api/v1/calls/x/outcome"), ("post", "/api/v1/cdr"),
             ("post", "/api/v1/cdr/asterisk"), ("post", "/api/v1/recordings"),
             ("get", "/api/v1/kpis?period=2026-10"),
             ("get", "/api/v1/kpis/compare?period=2026-10"), ("get", "/api/v1/kpis/flags?period=2026-10"),
             ("get", "/api/v1/missed?period=2026-10"), ("get", "/api/v1/clients")]


@pytest.mark.parametrize("method,url", ENDPOINTS)
def test_every_endpoint_refuses_requests_without_a_valid_token(web, method, url):
    client, _, _ = web
    for headers in ({}, {"Authorization": "Bearer apl_wrong"}, {"Authorization": "Basic YTpi"}):
        resp = getattr(client, method)(url, headers=headers)
        assert resp.status_code == 401
        assert "token" in resp.get_json()["error"]


def test_roles_viewer_reads_but_cannot_write(web):
    client, keys, q = web
    q.db.calls.add(result("c1", at(10, 3, 10)))
    assert client.get("/api/v1/calls?period=2026-10", headers=keys["viewer"]).status_code == 200
    resp = client.post("/api/v1/calls/c1/outcome", json={"result": "won"}, headers=keys["viewer"])
    assert resp.status_code == 403
    assert client.post("/api/v1/cdr", json={}, headers=keys["viewer"]).status_code == 403
    assert client.post("/api/v1/cdr", json={}, headers=keys["supervisor"]).status_code == 403
    resp = client.post("/api/v1/calls/c1/outcome", json={"result": "won", "amount": 10},
                       headers=keys["supervisor"])
    assert resp.status_code == 201 and resp.get_json()["by"] == "token:supervisor-client"
    TokenFile(q.settings.paths.data_dir).revoke("supervisor-client")
    resp = client.post("/api/v1/calls/c1/outcome", json={"result": "won"}, headers=keys["supervisor"])
    assert resp.status_code == 401                                      # revoked at once


def test_cdr_json_and_master_csv_with_per_row_errors(web):
    client, keys, q = web
    ok = {"id": "a1", "start": at(10, 3, 9), "from": "79160000001", "to": "101"}
    resp = client.post("/api/v1/cdr", json=[ok], headers=keys["integration"])
    assert resp.status_code == 200 and resp.get_json() == {"accepted": 1, "new": 1, "errors": []}
    resp = client.post("/api/v1/cdr", json=[ok, {"start": "nope", "to": "1"}], headers=keys["integration"])
    assert resp.status_code == 207
    assert resp.get_json()["errors"] == [{"index": 1, "error": "start: 'nope' is not a time "
                                          "(use ISO 8601, e.g. 2026-11-24T10:15:00+03:00, or epoch seconds)"}]
    resp = client.post("/api/v1/cdr", json=[{"start": "nope"}], headers=keys["integration"])
    body = resp.get_json()          # nothing kept: the list, and an error like any 400
    assert resp.status_code == 400 and body["accepted"] == 0 and len(body["errors"]) == 1
    assert body["error"].startswith("no record kept: 1 bad, the first: start:"), body
    for data, word in (("not json", "not valid JSON (Expecting value"), ("null", "not a record"),
                       ('{"records": "x"}', "'records' must be a list")):
        resp = client.post("/api/v1/cdr", data=data, content_type="application/json",
                           headers=keys["integration"])
        assert resp.status_code == 400 and word in resp.get_json()["error"], (data, resp.get_json())
    resp = client.post("/api/v1/cdr", data="[]", content_type="text/plain",
                       headers=keys["integration"])
    assert resp.status_code == 400 and "Content-Type: application/json" in resp.get_json()["error"]
    resp = client.post("/api/v1/cdr/asterisk", data=MASTER, content_type="text/csv",
                       headers=keys["integration"])
    body = resp.get_json()
    assert resp.status_code == 207 and body["accepted"] == 4
    assert [e["line"] for e in body["errors"]] == [5, 6, 7, 8]
    resp = client.post("/api/v1/cdr/asterisk", headers=keys["admin"],
                       data={"file": (__import__("io").BytesIO(MASTER), "Master.csv")})
    assert resp.status_code == 207 and resp.get_json()["new"] == 0        # idempotent
    missed = client.get("/api/v1/missed?period=2026-10", headers=keys["viewer"]).get_json()["missed"]
    assert {m["client"] for m in missed} == {"79160000001", "79161234568"}


def test_outcomes_kpis_and_bad_queries(web):
    client, keys, q = web
    q.db.calls.add(result("c1", at(10, 3, 10), score=90))
    h = keys["integration"]
    assert client.post("/api/v1/calls/nope/outcome", json={"result": "won"}, headers=h).status_code == 404
    resp = client.post("/api/v1/calls/c1/outcome", json={"result": "sold"}, headers=h)
    assert resp.status_code == 400 and "result" in resp.get_json()["error"]
    assert client.post("/api/v1/calls/c1/outcome", json={"result": "won", "amount": 99},
                       headers=h).status_code == 201
    k = client.get("/api/v1/kpis?period=2026-10", headers=h).get_json()
    assert k["managers"]["101"]["won"] == 1 and k["managers"]["101"]["revenue"] == {"RUB": 99.0}
    assert client.get("/api/v1/calls/c1", headers=h).get_json()["outcome"]["result"] == "won"
    page = client.get("/api/v1/calls?period=2026-10&min_score=80", headers=h).get_json()
    assert page["total"] == 1 and page["calls"][0]["outcome"]["amount"] == 99.0
    assert client.get("/api/v1/calls?period=2026-10&min_score=95", headers=h).get_json()["total"] == 0
    for url, word in [("/api/v1/kpis", "period"), ("/api/v1/kpis?period=yesterday", "period"),
                      ("/api/v1/calls?period=2026-10&limit=100000", "limit"),
                      ("/api/v1/calls?period=2026-10&min_score=high", "min_score"),
                      ("/api/v1/calls?period=2026-10&direction=up", "direction"),
                      ("/api/v1/calls/..%5c..%5cetc", "no call"),
                      ("/api/v1/calls/%2e%2e%2f%2e%2e%2fetc", "not found")]:
        resp = client.get(url, headers=h)
        assert resp.status_code in (400, 404) and word in resp.get_json()["error"], url
    big = b"x" * (600 * 1024)
    resp = client.post("/api/v1/cdr/asterisk", data=big, content_type="text/csv", headers=h)
    assert resp.status_code == 413 and "web.max_body_mb" in resp.get_json()["error"]
    assert client.get("/api/v1/nothing", headers=h).status_code == 404


def _stereo_wav(path: Path, seconds: float = 2.0) -> bytes:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * 8000)) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    sf.write(str(path), np.stack([tone, tone * 0], axis=1), 8000, subtype="PCM_16")
    return path.read_bytes()


def test_recording_upload_queues_the_file_with_what_the_pbx_knows(web, tmp_path):
    import io

    from appliance.sources.inbox import InboxWatcher

    client, keys, q = web
    wav = _stereo_wav(tmp_path / "call.wav")
    fields = {"agent": "101", "client": "+7 916 123-45-67", "direction": "inbound",
              "started_at": "2026-11-24T10:15:00+03:00", "call_id": "a84b4c76e66710@pbx"}

    def send(data: bytes, name: str, headers=None, **form):
        return client.post("/api/v1/recordings", headers=headers or keys["integration"],
                           content_type="multipart/form-data",
                           data={"file": (io.BytesIO(data), name), **form})

    resp = send(wav, "call.wav", **fields)
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "queued" and body["call_id"] == "a84b4c76e66710@pbx"
    inbox = q.settings.paths.inbox
    assert (inbox / body["file"]).read_bytes() == wav
    assert not list(inbox.glob(".*.part"))
    watcher = InboxWatcher(q.settings)
    watcher.poll_once(now=0.0)
    written = watcher.poll_once(now=100.0)                        # settled
    import json

    call = json.loads(written[0].read_text())["call"]
    assert (call["agent"], call["client"], call["direction"]) == ("101", "+7 916 123-45-67", "inbound")
    assert call["call_id"] == "a84b4c76e66710@pbx" and call["started_at"] == 1795504500.0
    assert not list(inbox.glob("*.meta.json"))                     # its content is in the JSON
    # refusals, each saying what was wrong; nothing is left in the inbox
    cases = [(send(b"not audio at all", "call.wav"), 400, "WAV or FLAC"),
             (send(wav, "call.mp3"), 400, "WAV or FLAC"),
             (send(wav, "call.wav", direction="sideways"), 400, "direction"),
             (send(wav, "call.wav", started_at="yesterday"), 400, "started_at"),
             (send(wav, "call.wav", agent="<script>"), 400, "agent"),
             (send(wav, "call.wav", colour="red"), 400, "unknown fields"),
             (client.post("/api/v1/recordings", headers=keys["integration"]), 400, "form file"),
             (send(wav, "call.wav", headers=keys["viewer"]), 403, "")]
    for resp, status, words in cases:
        assert resp.status_code == status and words in resp.get_json()["error"], resp.get_json()
    assert not [p for p in inbox.iterdir() if p.is_file()]


def test_recording_upload_may_exceed_the_form_limit_but_not_its_own(web, tmp_path):
    import io

    client, keys, q = web
    big = _stereo_wav(tmp_path / "long.wav", seconds=60.0)          # ~1.9 MB > web.max_body_mb 0.5
    resp = client.post("/api/v1/recordings", headers=keys["admin"], content_type="multipart/form-data",
                       data={"file": (io.BytesIO(big), "long.wav")})
    assert resp.status_code == 202
    q.settings.files.max_upload_mb = 1.0
    resp = client.post("/api/v1/recordings", headers=keys["admin"], content_type="multipart/form-data",
                       data={"file": (io.BytesIO(big), "long.wav")})
    assert resp.status_code == 413
    error = resp.get_json()["error"]
    assert "1 MB (files.max_upload_mb)" in error and "web.max_body_mb" not in error, error


@pytest.mark.parametrize("code,status,words", [(28, 507, "disk full"), (5, 500, "storage error"),
                                               (27, 507, "file size limit")])
def test_a_store_write_failing_on_a_full_disk_answers_507_and_keeps_nothing_half(
        web, monkeypatch, code, status, words):
    import os

    from appliance.system import atomic

    client, keys, q = web
    q.db.calls.add(result("c1", at(10, 3, 10)))
    real = atomic._os_write

    def full(fd, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic, "_os_write", full)
    row = {"id": "a1", "start": at(10, 3, 9), "from": "79160000001", "to": "101"}
    for resp in (client.post("/api/v1/cdr", json=[row], headers=keys["integration"]),
                 client.post("/api/v1/cdr/asterisk", data=MASTER, content_type="text/csv",
                             headers=keys["integration"]),
                 client.post("/api/v1/calls/c1/outcome", json={"result": "won"},
                             headers=keys["integration"])):
        assert resp.status_code == status, resp.get_data(as_text=True)
        error = resp.get_json()["error"]
        assert words in error and "again" in error, error
    monkeypatch.setattr(atomic, "_os_write", real)
    resp = client.post("/api/v1/cdr", json=[row], headers=keys["integration"])
    assert resp.status_code == 200 and resp.get_json()["new"] == 1       # sent again: kept


@pytest.mark.parametrize("url,word", [
    ("/api/v1/calls?period=9999-12-31", "period"), ("/api/v1/missed?period=9999-W52", "period"),
    ("/api/v1/kpis?period=9999-12", "period"), ("/api/v1/kpis/compare?period=0001-01", "period"),
    ("/api/v1/kpis/flags?period=0001-W01", "period"), ("/api/v1/calls?from=0001-01-01", "from"),
    ("/api/v1/calls?to=9999-12-31", "to"), ("/api/v1/calls?period=1969-12-31", "period")])
def test_dates_out_of_range_are_a_400_that_says_which_parameter(web, url, word):
    client, keys, _ = web
    resp = client.get(url, headers=keys["viewer"])
    assert resp.status_code == 400, (url, resp.status_code)
    error = resp.get_json()["error"]
    assert error.startswith(word) and "1970" in error, error
