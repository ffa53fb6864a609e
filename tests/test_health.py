"""Health: each check fails on its own cause with a clear detail; /healthz for machines
(no details, no login), /api/v1/health with details behind auth; `appliance status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from appliance.config import load_settings
from appliance.system.health import daemon_state, health, write_daemon_state
from paneldata import Box

GOOD_STATUS = {"registrations": [{"account": "sip:100@pbx", "registered": True}],
               "asr_queue": 3, "disk": {"free_mb": 5000.0, "free_percent": 40.0}}
GOOD_DAEMON = {"mqtt": {"enabled": True, "host": "broker", "port": 1883, "connected": True,
                        "outbox": 0}, "model": {"status": "ok", "model": "whisper-base"}}


def test_each_check_fails_on_its_own_cause():
    s = load_settings(environ={})
    assert health(s, GOOD_STATUS, GOOD_DAEMON)["ok"]
    cases = {
        "registration": ({**GOOD_STATUS, "registrations": [{"registered": False}]}, GOOD_DAEMON,
                         "0 of 1"),
        "broker": (GOOD_STATUS, {**GOOD_DAEMON, "mqtt": {**GOOD_DAEMON["mqtt"], "connected": False,
                                                          "outbox": 12}}, "12 messages kept"),
        "disk": ({**GOOD_STATUS, "disk": {"free_mb": 100.0, "free_percent": 1.0}}, GOOD_DAEMON,
                 "recording stops below 256 MB"),
        "queue": ({**GOOD_STATUS, "asr_queue": 500}, GOOD_DAEMON, "500 speech segments"),
        "model": (GOOD_STATUS, {**GOOD_DAEMON, "model": {"status": "unavailable",
                                                         "reason": "run appliance models build"}},
                  "models build"),
        "store": (GOOD_STATUS, {**GOOD_DAEMON, "store": {"damaged": 1, "problem": "x: 2 lines lost"}},
                  "x: 2 lines lost"),
    }
    for name, (status, daemon, words) in cases.items():
        out = health(s, status, daemon)
        failed = [k for k, c in out["checks"].items() if not c["ok"]]
        assert not out["ok"] and failed == [name], (name, out)
        assert words in out["checks"][name]["detail"]
    off = health(s, {**GOOD_STATUS, "registrations": []}, {"mqtt": {"enabled": False},
                                                           "model": {"status": "disabled"}})
    assert off["ok"] and "direct calls only" in off["checks"]["registration"]["detail"]


def test_daemon_state_is_ignored_when_stale_or_its_process_is_gone(tmp_path):
    write_daemon_state(tmp_path, {"mqtt": {}})
    assert daemon_state(tmp_path)["pid"] == os.getpid()
    assert daemon_state(tmp_path, now=time.time() + 60) is None
    path = tmp_path / "run" / "daemon.json"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    path.write_text(json.dumps({**json.loads(path.read_text()), "pid": int(gone)}))
    assert daemon_state(tmp_path) is None


def test_healthz_for_machines_and_details_behind_auth(tmp_path):
    box = Box(tmp_path)
    try:
        client = box.app.test_client()
        resp = client.get("/healthz")
        assert resp.status_code == 200
        assert resp.get_json() == {"ok": True, "checks": {"registration": True, "broker": True,
                                                          "disk": True, "queue": True, "model": True,
                                                          "store": True}}
        assert client.get("/api/v1/health").status_code == 401
        box.app.extensions["status"] = lambda: {**GOOD_STATUS, "asr_queue": 999}
        resp = client.get("/healthz")
        assert resp.status_code == 503 and resp.get_json()["checks"]["queue"] is False
        assert "detail" not in resp.get_data(as_text=True)
        box.setup_admin(client)
        detail = client.get("/api/v1/health")
        assert detail.status_code == 503
        assert "999 speech segments" in detail.get_json()["checks"]["queue"]["detail"]
    finally:
        box.close()


def test_status_command_says_when_the_appliance_is_not_running(tmp_path):
    env = dict(os.environ, APPLIANCE_PATHS__DATA_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "appliance.cli", "status"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and "not running" in out.stdout


def test_lost_store_data_fails_health_after_a_restart_until_an_admin_acknowledges_it(tmp_path):
    from storedata import corrupt_line

    box = Box(tmp_path)
    box.add_calls()
    box.close()
    month = time.strftime("%Y-%m")
    corrupt_line(tmp_path / "store" / "calls" / month / "journal.log", 1)
    box = Box(tmp_path)
    box.queries.calls(month)                       # the month loads: a record is lost
    box.close()
    box = Box(tmp_path)                            # restarted: still reported
    try:
        client = box.app.test_client()
        resp = client.get("/healthz")
        assert resp.status_code == 503 and resp.get_json()["checks"]["store"] is False
        box.setup_admin(client)
        problems = client.get("/api/v1/system").get_json()["store_problems"]
        assert len(problems) == 1 and problems[0]["lost"] and "corrupt line" in problems[0]["problem"]
        detail = client.get("/api/v1/health").get_json()["checks"]["store"]["detail"]
        assert "corrupt line" in detail and "acknowledge" in detail
        page = client.get("/system", headers={"Accept-Language": "en"})
        assert "corrupt line" in page.get_data(as_text=True)
        resp = client.post("/system/store-problems", data={"csrf_token": _csrf(page)})
        assert resp.status_code == 302
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/system").get_json()["store_problems"] == []
        assert box.db.audit.recent(1)[0]["action"] == "store problems acknowledged"
    finally:
        box.close()


def _csrf(page) -> str:
    from paneldata import csrf

    return csrf(page)
