"""The web panel through Flask's test client: first-run set-up, sign-in and its rate limit,
roles, CSRF, the pages and their JSON API, recordings with Range, editors, settings applied
live, backup, languages, and the security cases (traversal, XSS, oversized bodies)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from appliance.media.session import Stages
from paneldata import PASSWORD, XSS, Box, csrf, login


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    b.add_calls()
    yield b
    b.close()


@pytest.fixture
def admin(box):
    client = box.app.test_client()
    box.setup_admin(client)
    return client


def _as(box, role: str):
    box.app.extensions["users"].create(role + "1", PASSWORD, role)
    client = box.app.test_client()
    assert login(client, role + "1").status_code == 302
    return client


# --- first run and sign-in ---
def test_first_run_needs_the_setup_link_and_no_default_password_exists(box):
    client = box.app.test_client()
    assert client.get("/login").headers["Location"].endswith("/setup")
    page = client.get("/setup")
    assert page.status_code == 200 and "setup-token" in page.get_data(as_text=True)
    assert client.get("/setup?token=wrong").status_code == 403
    for name in ("admin", "root", "administrator"):
        for password in ("admin", "password", ""):
            assert box.app.extensions["users"].authenticate(name, password) is None
    token = box.app.extensions["setup"].ensure()
    page = client.get(f"/setup?token={token}")
    weak = client.post("/setup", data={"token": token, "username": "admin", "password": "short",
                                       "password2": "short", "csrf_token": csrf(page)})
    assert weak.status_code == 400 and "10 characters" in weak.get_data(as_text=True)
    box.setup_admin(client)
    assert not (box.settings.paths.data_dir / "secrets" / "setup-token").exists()
    assert client.get(f"/setup?token={token}").status_code == 404
    stored = box.db.users.get("admin")
    assert PASSWORD not in json.dumps(stored) and stored["hash"].startswith("scrypt:")
    assert client.get("/").status_code == 200


def test_login_failures_are_rate_limited_and_audited(box, admin):
    client = box.app.test_client()
    assert login(client, "admin", "wrong password").status_code == 401
    codes = [login(client, "admin", f"wrong {i}").status_code for i in range(6)]
    assert codes[-1] == 429
    resp = login(client, "admin")                 # even the right password waits now
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    actions = [e["action"] for e in box.db.audit.recent(50)]
    assert "login failed" in actions and "login refused" in actions and "setup" in actions
    assert login(admin, "admin", "wrong again").status_code == 429     # signed in, tries again
    assert box.db.audit.recent(1)[0]["action"] == "login refused"


def test_session_cookie_flags(box):
    client = box.app.test_client()
    box.setup_admin(client)
    cookie = client.get_cookie("appliance_session")
    assert cookie.http_only and cookie.same_site == "Strict" and not cookie.secure
    https = box.app.test_client()
    page = https.get("/login", base_url="https://box.lan")
    resp = https.post("/login", base_url="https://box.lan",
                      headers={"Referer": "https://box.lan/login"},
                      data={"username": "admin", "password": PASSWORD, "csrf_token": csrf(page)})
    assert "Secure" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]


def _get_rules(app):
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in (
                "static", "auth.login", "auth.setup", "auth.language", "api.openapi",
                "auth.healthz"):             # public by design: tested in test_health.py
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<{arg}>", "c-polite" if arg == "uid" else "ru" if arg == "lang" else "x")
        yield url


def test_unauthenticated_access_is_refused_everywhere(box):
    client = box.app.test_client()
    urls = list(_get_rules(box.app))
    assert len(urls) > 25
    for url in urls:
        resp = client.get(url)
        if url.startswith("/api/"):
            assert resp.status_code == 401, url
        else:
            assert resp.status_code == 302 and "/login" in resp.headers["Location"], url
    for url in ("/settings", "/users", "/dictionaries/ru/complaints", "/calls/c-polite/outcome",
                "/system/backup", "/logout"):
        assert client.post(url, data={"x": "1"}).status_code in (400, 401, 302), url
        assert box.db.users.get("x") is None


def test_state_changes_without_csrf_token_are_refused(box, admin):
    form = {"tag": "complaints", "party": "client", "severity": "2", "entries": "жалоба"}
    resp = admin.post("/dictionaries/ru/complaints", data=form)
    assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True)
    assert not (box.settings.paths.data_dir / "dictionaries" / "ru" / "complaints.toml").exists()
    resp = admin.patch("/api/v1/settings", json={"retention": {"audio_days": 30}})
    assert resp.status_code == 400 and "CSRF" in resp.get_json()["error"]
    assert box.settings.retention.audio_days == 365
    token = csrf(admin.get("/"))
    resp = admin.patch("/api/v1/settings", json={"retention": {"audio_days": 30}},
                       headers={"X-CSRFToken": token})
    assert resp.status_code == 200 and box.settings.retention.audio_days == 30
    resp = admin.post("/dictionaries/ru/complaints", data={**form, "csrf_token": "forged"})
    assert resp.status_code == 400


def test_viewer_reads_but_cannot_change_anything(box, admin):
    viewer = _as(box, "viewer")
    assert viewer.get("/calls").status_code == 200
    assert viewer.get("/calls/c-polite").status_code == 200
    token = csrf(viewer.get("/"))
    assert viewer.get("/settings").status_code == 403
    assert viewer.post("/settings", data={"csrf_token": token}).status_code == 403
    assert viewer.patch("/api/v1/settings", json={"retention": {"audio_days": 1}},
                        headers={"X-CSRFToken": token}).status_code == 403
    assert viewer.post("/dictionaries/ru/complaints",
                       data={"csrf_token": token, "entries": "x"}).status_code == 403
    assert viewer.post("/users", data={"csrf_token": token, "action": "create", "username": "evil",
                                       "password": PASSWORD, "role": "admin"}).status_code == 403
    assert viewer.post("/calls/c-polite/outcome",
                       data={"csrf_token": token, "result": "won"}).status_code == 403
    assert box.settings.retention.audio_days == 365 and box.db.users.get("evil") is None
    supervisor = _as(box, "supervisor")
    assert supervisor.get("/system").status_code == 200
    assert supervisor.get("/settings").status_code == 403


# --- pages ---
def test_dashboard_shows_todays_calls_alerts_and_managers(admin):
    html = admin.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Recent alerts" in html and "complaint" in html and "low score" in html
    assert "c-complaint" in html                         # the alert links the call
    data = admin.get("/api/v1/dashboard").get_json()
    assert data["today_figures"]["recorded"] == 3
    assert {a["kind"] for a in data["alerts"]} == {"complaint", "low_score"}
    assert set(data["compare"]["managers"]) == {"101", "102"}


def test_calls_list_filters_and_transcript_search(admin):
    def uids(query):
        resp = admin.get("/api/v1/calls" + query)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return {c["uid"] for c in resp.get_json()["calls"]}

    assert uids("") == {"c-polite", "c-complaint", "c-xss"}
    assert uids("?q=доставк") == {"c-polite", "c-complaint"}
    assert uids("?q=ЖАЛОБА+доставку") == {"c-complaint"}
    assert uids("?q=елки") == {"c-complaint"}                    # ё folded
    assert uids("?q=ромашка&party=client") == set()
    assert uids("?q=ромашка&party=agent") == {"c-polite"}
    assert uids("?q=%22+OR+*") == set()                         # FTS syntax is inert
    assert uids("?agent=101&direction=outbound") == {"c-xss"}
    assert uids("?min_score=50&max_score=80") == {"c-xss"}
    assert uids("?tag=complaints") == {"c-complaint"}
    assert uids("?from=2001-01-01&to=2001-01-31") == set()
    assert admin.get("/api/v1/calls?from=yesterday").status_code == 400
    page = admin.get("/calls?q=доставк&limit=1").get_data(as_text=True)
    assert "c-complaint" in page and "c-polite" not in page and "page 1 / 2" in page.replace(
        "страница", "page")


def test_call_page_timeline_transcript_checklist_and_waveform(admin):
    html = admin.get("/calls/c-complaint").get_data(as_text=True)
    assert "У меня жалоба на доставку" in html and "Agent greets within 15 s" in html
    assert 'id="audio"' in html and "/calls/c-complaint/audio" in html
    detail = admin.get("/api/v1/calls/c-complaint/detail").get_json()
    assert detail["timeline"]["interruptions"] == [{"by": "client", "of": "agent", "at": 3.6}]
    assert detail["timeline"]["tags"][0]["tag"] == "complaints"
    assert detail["timeline"]["holds"] == [{"party": "agent", "start": 8.0, "end": 9.0}]
    assert detail["timeline"]["events"] == [{"kind": "dtmf", "party": "client", "start": 11.6,
                                             "end": 11.9}]
    assert "на удержании" in html and admin.get("/api/v1/calls/c-polite/detail").get_json()[
        "timeline"]["holds"] == []
    wave = admin.get("/calls/c-complaint/waveform").get_json()
    assert len(wave["agent"]) == len(wave["client"]) == 1000 and wave["duration_s"] == 12.0
    agent, client = wave["agent"], wave["client"]
    assert max(agent[100:300]) > 100 and max(client[100:300]) == 0    # 1.2-3.6 s: agent only
    assert max(client[350:600]) > 100 and max(agent[350:600]) == 0    # 4.2-7.2 s: client only
    token = csrf(admin.get("/calls/c-complaint"))
    bad = admin.post("/calls/c-complaint/outcome", data={"csrf_token": token, "result": "maybe"})
    assert bad.status_code == 400
    ok = admin.post("/calls/c-complaint/outcome", data={"csrf_token": token, "result": "won",
                                                         "amount": "1500", "note": "<b>x</b>"})
    assert ok.status_code == 302
    assert admin.get("/api/v1/calls/c-complaint").get_json()["outcome"]["amount"] == 1500
    assert "&lt;b&gt;x&lt;/b&gt;" in admin.get("/calls/c-complaint").get_data(as_text=True)


def test_audio_streams_with_range_and_each_listen_is_audited(box, admin):
    full = admin.get("/calls/c-polite/audio")
    assert full.status_code == 200 and full.mimetype == "audio/flac"
    size = len(full.data)
    part = admin.get("/calls/c-polite/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and len(part.data) == 100 and part.data == full.data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{size}"
    dl = admin.get("/calls/c-polite/audio?download=1")
    assert "attachment" in dl.headers["Content-Disposition"]
    actions = [(e["action"], e["target"]) for e in box.db.audit.recent(20)]
    assert actions.count(("listen", "c-polite")) == 1 and ("download", "c-polite") in actions


def test_recording_paths_never_leave_the_calls_folder(box, admin):
    secret = box.settings.paths.data_dir / "secrets" / "web-secret-key"
    assert secret.exists()
    for url in ("/calls/..%2F..%2Fsecrets%2Fweb-secret-key/audio", "/calls/../secrets/audio",
                "/calls/%2e%2e/audio", "/static/../app.py", "/static/..%2fapp.py",
                "/calls/c-nope/audio", "/calls/c-nope/waveform"):
        assert admin.get(url).status_code == 404, url
    box.db.calls.update("c-polite", {"recording": "../../secrets/web-secret-key"})
    assert admin.get("/calls/c-polite/audio").status_code == 404
    box.db.calls.update("c-polite", {"recording": str(secret)})
    assert admin.get("/calls/c-polite/audio").status_code == 404


def test_xss_in_transcripts_and_dictionaries_is_rendered_inert(box, admin):
    html = admin.get("/calls/c-xss").get_data(as_text=True)
    assert "<script>document.title" not in html and '<img src=x onerror' not in html
    assert "&lt;script&gt;document.title" in html
    token = csrf(admin.get("/"))
    resp = admin.post("/dictionaries/ru/complaints", data={
        "csrf_token": token, "tag": "complaints", "party": "client", "severity": "2",
        "alert": "on", "enabled": "on", "entries": "жалоба\n" + XSS})
    assert resp.status_code == 302
    page = admin.get("/dictionaries/ru/complaints").get_data(as_text=True)
    assert "<script>document.title" not in page and "&lt;script&gt;" in page
    assert "script-src 'self'" in admin.get("/").headers["Content-Security-Policy"]


def test_oversized_upload_is_refused_with_413(admin):
    token = csrf(admin.get("/system"))
    big = b"x" * (2 * 2**20)
    import io
    resp = admin.post("/system/backup", content_type="multipart/form-data",
                      data={"csrf_token": token, "file": (io.BytesIO(big), "b.json")})
    assert resp.status_code == 413
    assert "web.max_body_mb" in resp.get_data(as_text=True)


# --- editors, settings, users ---
def test_dictionary_editor_validates_and_new_calls_use_it(box, admin):
    stages = Stages(library=box.app.extensions["library"], language="ru")
    stages.refresh()
    seg = [{"party": "client", "start": 1.0, "end": 2.0, "text": "это просто безобразие и волокита"}]
    assert [t["tag"] for t in stages.tagger.tag(seg)] == ["complaints"]
    token = csrf(admin.get("/dictionaries"))
    bad = admin.post("/dictionaries/ru/complaints", data={
        "csrf_token": token, "tag": "complaints", "party": "client", "severity": "2",
        "entries": "волокита | colour=red"})
    assert bad.status_code == 400 and "colour=red" in bad.get_data(as_text=True)
    ok = admin.post("/dictionaries/ru/complaints", data={
        "csrf_token": token, "tag": "complaints", "party": "client", "severity": "2",
        "alert": "on", "enabled": "on", "entries": "волокит*\nбезобразие | severity=3"})
    assert ok.status_code == 302
    stages.refresh()
    found = stages.tagger.tag(seg)
    assert sorted((t["text"], t["severity"]) for t in found) == [("безобразие", 3), ("волокита", 2)]
    listing = admin.get("/api/v1/dictionaries").get_json()["dictionaries"]
    mine = next(d for d in listing if d["language"] == "ru" and d["name"] == "complaints")
    assert mine["origin"] == "edited" and mine["entries"] == 2
    new = admin.get("/dictionaries/new?lang=ru&name=competitors", follow_redirects=True)
    assert new.status_code == 200
    assert admin.get("/dictionaries/new?lang=ru&name=../x").status_code == 400
    resp = admin.post("/dictionaries/ru/complaints", data={"csrf_token": token, "action": "reset"})
    assert resp.status_code == 302
    stages.refresh()
    assert [t["tag"] for t in stages.tagger.tag(seg)] == ["complaints"]
    assert {"dictionary saved", "dictionary reset"} <= {e["action"] for e in box.db.audit.recent(20)}


def test_checklist_editor_validates(box, admin):
    page = admin.get("/checklists/sales")
    text = re.search(r"<textarea[^>]*>(.*?)</textarea>", page.get_data(as_text=True), re.S).group(1)
    import html as html_mod
    text = html_mod.unescape(text)
    token = csrf(page)
    vibes = text.replace('rule = "tag_within"', 'rule = "vibes"')
    bad = admin.post("/checklists/sales", data={"csrf_token": token, "text": vibes})
    assert bad.status_code == 400 and "rule must be one of" in bad.get_data(as_text=True)
    ok = admin.post("/checklists/sales", data={"csrf_token": token,
                                               "text": text.replace("weight = 15", "weight = 30", 1)})
    assert ok.status_code == 302
    c = admin.get("/api/v1/checklists").get_json()["checklists"][0]
    assert c["origin"] == "edited" and c["items"][0]["weight"] == 30


def test_settings_apply_live_or_say_a_restart_is_needed(box, admin):
    token = csrf(admin.get("/settings"))
    resp = admin.patch("/api/v1/settings", headers={"X-CSRFToken": token},
                       json={"retention": {"audio_days": 90}, "mqtt": {"host": "broker.lan"},
                             "sip": {"accounts": [{"registrar": "pbx.lan", "user": "200",
                                                   "password": "s3cret"}]}})
    assert resp.status_code == 200
    assert set(resp.get_json()["restart_needed"]) == {"mqtt.host", "sip.accounts"}
    assert box.settings.retention.audio_days == 90           # live
    saved = json.loads((box.settings.paths.data_dir / "panel-settings.json").read_text())
    assert saved["mqtt"]["host"] == "broker.lan"
    assert (box.settings.paths.data_dir / "panel-settings.json").stat().st_mode & 0o077 == 0
    from appliance.config import load_settings
    reloaded = load_settings(environ={"APPLIANCE_PATHS__DATA_DIR": str(box.settings.paths.data_dir)})
    assert reloaded.mqtt.host == "broker.lan" and reloaded.sip.accounts[0].password == "s3cret"
    view = admin.get("/api/v1/settings").get_json()["values"]
    assert "password" not in json.dumps(view["sip"]) and "password" not in view["mqtt"]
    bad = admin.patch("/api/v1/settings", headers={"X-CSRFToken": token},
                      json={"retention": {"audio_days": -5}, "web": {"port": 1}})
    assert bad.status_code == 400
    assert "web: not a section the panel edits" in bad.get_json()["error"]
    bad = admin.patch("/api/v1/settings", headers={"X-CSRFToken": token},
                      json={"retention": {"audio_days": -5}})
    assert "retention.audio_days" in bad.get_json()["error"] and box.settings.retention.audio_days == 90
    # the form keeps a password when its field is left empty
    form = admin.get("/settings")
    assert form.status_code == 200 and "pbx.lan" in form.get_data(as_text=True)
    resp = admin.post("/settings", data={"csrf_token": token, "accounts": "1",
                                         "acc0.registrar": "pbx.lan", "acc0.user": "200",
                                         "acc0.password": "", "acc0.transport": "tcp",
                                         "retention.audio_days": "60", "mqtt.host": "broker.lan",
                                         "asr.language": "ru", "asr.enabled": "on"})
    assert resp.status_code == 302
    reloaded = load_settings(environ={"APPLIANCE_PATHS__DATA_DIR": str(box.settings.paths.data_dir)})
    assert reloaded.sip.accounts[0].password == "s3cret" and reloaded.sip.accounts[0].transport == "tcp"
    assert box.settings.retention.audio_days == 60


def test_settings_fixed_by_the_environment_are_refused(box, admin, monkeypatch):
    monkeypatch.setenv("APPLIANCE_RETENTION__AUDIO_DAYS", "400")
    token = csrf(admin.get("/"))
    resp = admin.patch("/api/v1/settings", headers={"X-CSRFToken": token},
                       json={"retention": {"audio_days": 10}})
    assert resp.status_code == 400 and "environment" in resp.get_json()["error"]


def test_users_roles_and_sessions_end_when_access_changes(box, admin):
    token = csrf(admin.get("/users"))
    weak = admin.post("/users", data={"csrf_token": token, "action": "create", "username": "anna",
                                      "password": "anna", "role": "viewer"})
    assert weak.status_code == 400
    assert admin.post("/users", data={"csrf_token": token, "action": "create", "username": "anna",
                                      "password": PASSWORD, "role": "viewer"}).status_code == 302
    anna = box.app.test_client()
    assert login(anna, "anna").status_code == 302 and anna.get("/").status_code == 200
    assert admin.post("/users", data={"csrf_token": token, "action": "update", "username": "anna",
                                      "role": "supervisor"}).status_code == 302
    assert anna.get("/").status_code == 302                       # signed out
    assert login(anna, "anna").status_code == 302 and anna.get("/system").status_code == 200
    assert admin.post("/users", data={"csrf_token": token, "action": "update", "username": "anna",
                                      "role": "supervisor", "disabled": "on"}).status_code == 302
    assert anna.get("/").status_code == 302 and login(anna, "anna").status_code == 401
    last = admin.post("/users", data={"csrf_token": token, "action": "update", "username": "admin",
                                      "role": "viewer"})
    assert last.status_code == 400 and "last admin" in last.get_data(as_text=True)


def test_backup_round_trip_and_a_bad_backup_changes_nothing(box, admin):
    token = csrf(admin.get("/"))
    admin.put("/api/v1/dictionaries/ru/competitors", headers={"X-CSRFToken": token},
              json={"party": "client", "entries": ["рога и копыта"]})
    admin.patch("/api/v1/settings", headers={"X-CSRFToken": token}, json={"retention": {"audio_days": 77}})
    doc = admin.get("/system/backup").get_json()
    assert "ru/competitors.toml" in doc["files"] and doc["settings"]["retention"]["audio_days"] == 77
    assert all("hash" in u and PASSWORD not in json.dumps(u) for u in doc["users"])
    import io
    broken = dict(doc, files={"ru/competitors.toml": 'dictionary = "competitors"\nentries = [1]'})
    resp = admin.post("/system/backup", content_type="multipart/form-data", data={
        "csrf_token": token, "file": (io.BytesIO(json.dumps(broken).encode()), "b.json")})
    assert resp.status_code == 400
    (box.settings.paths.data_dir / "dictionaries" / "ru" / "competitors.toml").unlink()
    admin.patch("/api/v1/settings", headers={"X-CSRFToken": token}, json={"retention": {"audio_days": 5}})
    resp = admin.post("/system/backup", content_type="multipart/form-data", data={
        "csrf_token": token, "file": (io.BytesIO(json.dumps(doc).encode()), "b.json")})
    assert resp.status_code == 302
    assert (box.settings.paths.data_dir / "dictionaries" / "ru" / "competitors.toml").exists()
    assert box.settings.retention.audio_days == 77


def test_system_page_and_api(box, admin):
    html = admin.get("/system", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "test-model" in html and "sip:100@pbx" in html and "web panel" not in html
    data = admin.get("/api/v1/system").get_json()
    assert data["status"]["active_calls"] == 1 and data["machine"]["cpus"] >= 1


# --- language, API description ---
def test_russian_and_english(box, admin):
    assert "Звонки" in admin.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(as_text=True)
    assert ">Calls<" in admin.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    resp = admin.get("/lang/en?next=/calls")
    assert resp.headers["Location"].endswith("/calls")
    assert ">Calls<" in admin.get("/calls", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert admin.get("/lang/en?next=//evil.example/").headers["Location"] == "/"
    for lang in ("en", "ru"):                  # setting names are words, not keys, in both
        admin.get(f"/lang/{lang}")
        page = admin.get("/settings").get_data(as_text=True)
        labels = (re.findall(r"<label>([^<]+)<input", page) + re.findall(r"<option[^>]*>([^<]+)<", page)
                  + re.findall(r'checkbox"[^>]*> ([^<]+)</label>', page))
        assert labels and not [x for x in labels if re.search(r"[a-z]\.[a-z]|lang_", x)], labels


def test_every_panel_text_has_a_russian_translation():
    from appliance.web.catalog_ru import RU

    root = Path(__file__).parent.parent / "appliance" / "web"
    texts = set()
    for f in list((root / "templates").glob("*.html")) + list(root.glob("*.py")):
        src = f.read_text(encoding="utf-8")
        texts |= set(re.findall(r'_\(\s*"((?:[^"\\]|\\.)*)"', src))
        texts |= set(re.findall(r"_\(\s*'((?:[^'\\]|\\.)*)'", src))
    assert len(texts) > 150
    assert sorted(t for t in texts if t not in RU and t != "lang_") == []


def test_openapi_describes_every_api_route(admin, box):
    doc = admin.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    rules = {re.sub(r"<([^>]+)>", r"{\1}", r.rule) for r in box.app.url_map.iter_rules()
             if r.rule.startswith("/api/v1/")}
    assert rules == set(doc["paths"]) and len(rules) >= 20
    assert {p["name"] for p in doc["paths"]["/api/v1/calls"]["get"]["parameters"]} >= {"q", "from", "to"}
    assert "patch" in doc["paths"]["/api/v1/settings"]


def test_an_unreadable_recording_gets_a_clear_error_not_a_crash(box, admin):
    rec = box.db.calls.get("c-polite")
    path = box.settings.paths.calls / Path(rec["result_path"]).parent / rec["recording"]
    path.write_bytes(b"fLaC" + b"\0" * 300)
    resp = admin.get("/calls/c-polite/waveform", headers={"Accept": "application/json"})
    assert resp.status_code == 422 and "recording unreadable" in resp.get_json()["error"]
    assert admin.get("/calls/c-polite").status_code == 200      # the page still opens


def test_device_status_lists_active_calls(tmp_path):
    from appliance.system.status import device_status

    run = tmp_path / "run"
    run.mkdir()
    call = {"uid": "u1", "source": "siprec", "agent": "101", "client": "7916",
            "frames": {"0": 500, "1": 750}}
    (run / "sip-0.json").write_text(json.dumps({"registrations": [], "active_calls": [call]}))
    backlog = {"calls": 1, "pieces": 2, "audio_s": 7.5, "oldest_s": 3.0}
    status = device_status(tmp_path, asr=backlog)
    assert status["active_calls"] == 1 and status["asr_queue"] == 2
    assert status["asr_backlog"] == backlog
    assert status["calls"] == [{"uid": "u1", "source": "siprec", "agent": "101", "client": "7916",
                                "seconds": 15}]


def test_update_bundle_uploaded_on_the_system_page(box, admin, tmp_path):
    import io
    import os

    from appliance.system import update

    keys = tmp_path / "keys"
    keys.mkdir()
    update.generate_key(tmp_path / "release.pem", keys / "release.pub")
    root = tmp_path / "root"
    (root / "slots" / "a").mkdir(parents=True)
    (root / "slots" / "a" / "slot.json").write_text(json.dumps({"version": "1.0.0"}))
    os.symlink("slots/a", root / "current")
    box.settings.update.root, box.settings.update.keys_dir = root, keys
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "big.bin").write_bytes(os.urandom(3 * 2**20))     # over web.max_body_mb (1 MB)
    good = tmp_path / "good.tar"
    update.build_bundle(payload, "1.1.0", tmp_path / "release.pem", good)
    token = csrf(admin.get("/system"))

    def upload(client, path):
        return client.post("/system/update", content_type="multipart/form-data", data={
            "csrf_token": token, "bundle": (io.BytesIO(path.read_bytes()), path.name)})

    update.generate_key(tmp_path / "other.pem", tmp_path / "other.pub")
    foreign = tmp_path / "foreign.tar"
    update.build_bundle(payload, "1.1.0", tmp_path / "other.pem", foreign)
    resp = upload(admin, foreign)
    assert resp.status_code == 400 and "bad signature" in resp.get_data(as_text=True)
    assert os.readlink(root / "current") == "slots/a"
    viewer = _as(box, "viewer")
    assert viewer.post("/system/update", data={"csrf_token": csrf(viewer.get("/"))}).status_code == 403
    resp = upload(admin, good)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    assert os.readlink(root / "current") == "slots/b" and (root / "slots" / "b" / "big.bin").exists()
    actions = [e["action"] for e in box.db.audit.recent(10)]
    assert "update applied" in actions and "update refused" in actions
    # on the image the daemon may not write the slots: it verifies, the root updater installs
    box.settings.update.handoff = True
    newer = tmp_path / "newer.tar"
    update.build_bundle(payload, "1.2.0", tmp_path / "release.pem", newer)
    (root / "update-state.json").unlink()                  # as if 1.1.0 had been confirmed
    assert upload(admin, good).status_code == 400           # 1.1.0 again: a downgrade, not handed over
    pending = box.settings.paths.data_dir / "updates" / update.HANDOFF
    assert not pending.exists()
    resp = upload(admin, newer)
    assert resp.status_code == 302 and pending.read_bytes() == newer.read_bytes()
    assert os.readlink(root / "current") == "slots/b"       # untouched by the daemon
    assert "update handed over" in [e["action"] for e in box.db.audit.recent(10)]


def test_api_tokens_are_made_and_revoked_on_the_users_page(box, admin):
    page = admin.get("/users")
    token = csrf(page)
    resp = admin.post("/tokens", data={"csrf_token": token, "action": "create", "name": "pbx",
                                       "role": "integration"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "apl_" in html
    secret = re.search(r'value="(apl_[^"]+)"', html).group(1)
    assert "apl_" not in (resp.headers.get("Set-Cookie") or "")        # shown once, never stored
    assert "apl_" not in admin.get("/users").get_data(as_text=True)
    api = box.app.test_client()
    bearer = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/kpis?period=2026-11", headers=bearer).status_code == 200
    bad = admin.post("/tokens", data={"csrf_token": token, "action": "create", "name": "x", "role": "root"})
    assert bad.status_code == 400 and "role" in bad.get_data(as_text=True)
    assert admin.post("/tokens", data={"action": "create", "name": "y", "role": "viewer"}).status_code == 400
    viewer = _as(box, "viewer")
    assert viewer.post("/tokens", data={"csrf_token": csrf(viewer.get("/")), "action": "create",
                                        "name": "z", "role": "admin"}).status_code == 403
    resp = admin.post("/tokens", data={"csrf_token": token, "action": "revoke", "name": "pbx"})
    assert resp.status_code == 302
    assert api.get("/api/v1/kpis?period=2026-11", headers=bearer).status_code == 401
    actions = [e["action"] for e in box.db.audit.recent(10)]
    assert "token create" in actions and "token revoke" in actions
