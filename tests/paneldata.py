"""A box with a few stored calls (call JSON, transcript, stereo FLAC) for the panel tests."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from appliance.config import load_settings
from appliance.query import Queries
from appliance.store.database import Database
from appliance.store.ingest import Ingester
from appliance.web import create_app

XSS = '<script>document.title="pwned"</script><img src=x onerror="alert(1)">'
PASSWORD = "correct horse battery"


def speech_like(seconds: float, on: list[tuple[float, float]], freq: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    x = np.zeros_like(t)
    for a, b in on:
        m = (t >= a) & (t < b)
        x[m] = 0.3 * np.sin(2 * np.pi * freq * t[m]) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t[m]))
    return x.astype(np.float32)


def call_result(uid: str, started: float, agent: str, client: str, transcript: list[dict],
                score: float, direction: str = "inbound", recording: str | None = None) -> dict:
    tags = []
    for seg in transcript:
        for word, tag in (("жалоб", "complaints"), ("здравствуйте", "greeting")):
            if word in seg["text"].lower():
                tags.append({"tag": tag, "dictionary": tag, "party": seg["party"], "at": seg["start"],
                             "phrase": word, "text": word, "severity": 2, "alert": tag == "complaints"})
    return {
        "schema": "call-analysis/1",
        "call": {"source": "sip", "call_id": uid, "started_at": started, "direction": direction,
                 "agent": agent, "client": client, "notes": [],
                 "extra": {"uid": uid, **({"recording": recording} if recording else {})}},
        "duration_s": 12.0,
        "parties": {"agent": {"talk_share": 0.55, "interruptions_made": 1, "talk_s": 5.0},
                    "client": {"talk_share": 0.45, "interruptions_made": 0, "talk_s": 4.0}},
        "segments": [{"party": "agent", "start": 0.5, "end": 4.0},
                     {"party": "client", "start": 3.6, "end": 8.0},
                     {"party": "agent", "start": 9.0, "end": 11.5}],
        "overlaps": [{"start": 3.6, "end": 4.0}],
        "interruptions": [{"by": "client", "of": "agent", "at": 3.6}],
        "silences": [{"start": 8.0, "end": 9.0, "position": "middle"}],
        "totals": {"dead_air_share": 0.08, "talk_s": 9.0},
        "transcript": transcript, "tags": tags,
        "score": {"total": score, "checklist": "sales", "items": [
            {"id": "greeting", "title": "Agent greets within 15 s", "passed": score > 50,
             "weight": 15, "evidence": "'здравствуйте' at 0.5 s"},
            {"id": "interruptions", "title": "Agent interrupts the client at most twice",
             "passed": True, "weight": 15, "evidence": "parties.agent.interruptions_made = 0",
             "detail": {"rule": "metric_max", "metric": "parties.agent.interruptions_made",
                        "value": 0, "max": 2}}]},
        "asr": {"status": "ok"}}


class Box:
    """Settings, store, queries and the Flask app over a temporary data directory."""

    def __init__(self, root: Path, environ: dict | None = None) -> None:
        self.settings = load_settings(environ=environ or {})
        self.settings.paths.data_dir = root
        self.settings.web.max_body_mb = 1
        self.db = Database(root)
        self.queries = Queries(self.db, self.settings)
        self.ingester = Ingester(self.db.calls, self.settings.paths.calls, None, self.db.search)
        self.app = create_app(self.queries, self.settings, status=lambda: {
            "registrations": [{"account": "sip:100@pbx", "registered": True, "status": "200 OK"}],
            "registered": True, "active_calls": 1, "asr_queue": 0,
            "calls": [{"uid": "live-1", "source": "siprec", "agent": "103", "client": "79169990000",
                       "seconds": 75}],
            "disk": {"free_mb": 20480.0, "total_mb": 40960.0, "free_percent": 50.0}},
            model=lambda: {"status": "ok", "model": "test-model"})
        self.uids: list[str] = []

    def add_calls(self) -> None:
        now = time.time()
        day = self.settings.paths.calls / time.strftime("%Y-%m-%d", time.localtime(now))
        day.mkdir(parents=True, exist_ok=True)
        calls = [
            ("c-polite", "101", "79160000001", 92, "inbound", [
                {"party": "agent", "start": 0.5, "end": 4.0, "text": "Здравствуйте, компания Ромашка"},
                {"party": "client", "start": 3.6, "end": 8.0, "text": "Хочу заказать доставку"}]),
            ("c-complaint", "102", "79160000002", 35, "inbound", [
                {"party": "agent", "start": 0.5, "end": 4.0, "text": "Слушаю вас"},
                {"party": "client", "start": 3.6, "end": 8.0, "text": "У меня жалоба на доставку, ёлки"}]),
            ("c-xss", "101", "79160000003", 70, "outbound", [
                {"party": "agent", "start": 0.5, "end": 4.0, "text": "Здравствуйте"},
                {"party": "client", "start": 3.6, "end": 8.0, "text": XSS}]),
        ]
        for i, (uid, agent, client, score, direction, transcript) in enumerate(calls):
            audio = np.stack([speech_like(12, [(0.5, 4.0), (9.0, 11.5)], 220),
                              speech_like(12, [(3.6, 8.0)], 330)], axis=1)
            sf.write(day / f"{uid}.flac", audio, 16000)
            # today, whatever the time: between midnight and now (the dashboard counts today's)
            midnight = time.mktime(time.localtime(now)[:3] + (0, 0, 0, 0, 0, -1))
            started = midnight + (now - midnight) * (i + 1) / 4
            res = call_result(uid, started, agent, client, transcript, score, direction,
                              recording=f"{uid}.flac")
            if uid == "c-complaint":      # the agent put the client on hold for a second
                res["events"] = [{"kind": "music", "party": "agent", "start": 8.0, "end": 9.0},
                                 {"kind": "dtmf", "party": "client", "start": 11.6, "end": 11.9,
                                  "keys": 2}]
                res["holds"] = [{"party": "agent", "start": 8.0, "end": 9.0, "duration_s": 1.0,
                                 "by": ["music"]}]
                res["totals"].update(hold_s=1.0, holds=1, longest_hold_s=1.0)
            (day / f"{uid}.json").write_text(json.dumps(res, ensure_ascii=False), encoding="utf-8")
            self.uids.append(uid)
        self.ingester.scan()

    def add_office(self) -> float:
        """Names, teams and a day of PBX records: missed calls waiting for a callback, a queue
        call called back by a colleague, one never called back, one from a caller whose
        'number' is markup and a spreadsheet formula. Returns 'now'."""
        kpi = self.settings.kpi
        kpi.names = {"101": "Анна Петрова", "102": "Борис Смирнов", "103": "Вера"}
        kpi.teams = {"sales": ["101", "102"], "support": ["103"]}
        self.queries.settings_changed()
        now = time.time()
        rows = [
            {"id": "w1", "start": now - 2400, "from": "79161000001", "to": "101"},
            {"id": "w2", "start": now - 600, "from": "79161000002", "to": "102"},
            {"id": "q1a", "start": now - 10800, "from": "79161000003", "to": "101", "group": "q1"},
            {"id": "q1b", "start": now - 10800, "from": "79161000003", "to": "102", "group": "q1"},
            {"id": "q1cb", "start": now - 10500, "from": "102", "to": "89161000003",
             "answer": now - 10490, "billsec": 120, "disposition": "ANSWERED"},
            {"id": "n1", "start": now - 26 * 3600, "from": "79161000004", "to": "101"},
            {"id": "x1", "start": now - 5000, "from": '=SUM(A:A)<b>x</b>', "to": "103"},
        ]
        out = self.queries.add_cdr(rows, "pbx")
        assert out["errors"] == [], out
        return now

    def setup_admin(self, client, name: str = "admin") -> None:
        token = self.app.extensions["setup"].ensure()
        page = client.get(f"/setup?token={token}")
        assert page.status_code == 200
        resp = client.post("/setup", data={"token": token, "username": name, "password": PASSWORD,
                                           "password2": PASSWORD, "csrf_token": csrf(page)})
        assert resp.status_code == 302, resp.get_data(as_text=True)

    def close(self) -> None:
        self.db.close()


def csrf(page) -> str:
    """The CSRF token of a rendered page."""
    html = page.get_data(as_text=True)
    marker = 'name="csrf-token" content="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


def login(client, name: str, password: str = PASSWORD):
    page = client.get("/login")
    return client.post("/login", data={"username": name, "password": password,
                                       "csrf_token": csrf(page)})
