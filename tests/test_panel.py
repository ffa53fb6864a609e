"""The web panel through Flask's test client: first-run set-up, sign-in and its rate limit,
roles, CSRF, the pages and their JSON API, recordings with Range, editors, settings applied
live, backup, languages, and the security cases (traversal, XSS, oversized bodies)."""

from __future__ import annotations

import json
import time
import re
from pathlib import Path


from appliance.media.session import Stages
from appliance.store.database import Database
from paneldata import PASSWORD, XSS, Box, csrf, login
from panelfixtures import signed_in_as


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


def test_only_a_valid_api_token_skips_the_csrf_check(box, admin):
    users = box.app.extensions["users"]
    form = {"action": "create", "username": "mallory", "password": PASSWORD, "role": "admin"}
    junk = {"Authorization": "Bearer junk"}
    resp = admin.post("/users", data=form, headers=junk)            # the cookie signs it in
    assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True)
    resp = admin.post("/api/v1/users", json={"name": "mallory", "password": PASSWORD,
                                             "role": "admin"}, headers=junk)
    assert resp.status_code in (400, 401)
    valid = {"Authorization": f"Bearer {box.app.extensions['tokens'].create('crm', 'admin')}"}
    resp = admin.post("/users", data=form, headers=valid)          # a panel form: never skipped
    assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True)
    assert users.get("mallory") is None
    resp = box.app.test_client().post("/api/v1/users", headers=valid, json={
        "name": "robot", "password": PASSWORD, "role": "viewer"})
    assert resp.status_code == 201                                  # a machine client


def _copy_of(client):
    """Another browser holding the same session cookie (captured, say, before logout)."""
    other = client.application.test_client()
    other.set_cookie("appliance_session", client.get_cookie("appliance_session").value)
    return other


def test_sign_out_ends_the_session_on_the_box_not_just_in_the_browser(box, admin):
    captured = _copy_of(admin)
    assert captured.get("/api/v1/calls").status_code == 200
    resp = admin.post("/logout", data={"csrf_token": csrf(admin.get("/"))})
    assert resp.status_code == 302
    ended = captured.get("/api/v1/calls")
    assert ended.status_code == 401 and "session has ended" in ended.get_json()["error"]
    stranger = box.app.test_client().get("/api/v1/calls")       # no cookie, no token
    assert stranger.status_code == 401 and "API token" in stranger.get_json()["error"]
    assert captured.get("/").status_code == 302                 # to the sign-in page
    # sign out everywhere: every other session of the user ends too
    phone, laptop = box.app.test_client(), box.app.test_client()
    for c in (phone, laptop):
        assert login(c, "admin").status_code == 302
    page = laptop.get("/account", headers={"Accept-Language": "en"})
    assert "Sign out everywhere" in page.get_data(as_text=True)
    resp = laptop.post("/logout", data={"csrf_token": csrf(page), "everywhere": "1"})
    assert resp.status_code == 302
    assert phone.get("/api/v1/calls").status_code == 401
    assert laptop.get("/api/v1/calls").status_code == 401
    assert ("logout everywhere", "admin") in [(e["action"], e["target"])
                                              for e in box.db.audit.recent(5)]
    # sessions live on the box: a restart keeps a signed-in user signed in
    assert login(phone, "admin").status_code == 302
    box.db.close()
    restarted = Box(box.settings.paths.data_dir)
    try:
        again = restarted.app.test_client()
        again.set_cookie("appliance_session", phone.get_cookie("appliance_session").value)
        assert again.get("/api/v1/calls").status_code == 200
    finally:
        restarted.close()
    box.db = Database(box.settings.paths.data_dir)        # for the fixture's close


def test_viewer_reads_but_cannot_change_anything(box, admin):
    viewer = signed_in_as(box, "viewer")
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
    supervisor = signed_in_as(box, "supervisor")
    assert supervisor.get("/system").status_code == 200
    assert supervisor.get("/settings").status_code == 403


# --- pages ---
def test_dashboard_shows_todays_calls_alerts_and_managers(admin):
    html = admin.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Recent alerts" in html and "problem call" in html and "low score" in html
    assert "client complained" in html
    assert "c-complaint" in html                         # the alert links the call
    data = admin.get("/api/v1/dashboard").get_json()
    assert data["today_figures"]["recorded"] == 3
    # the client's complaint makes it a problem call: one alert with its reason, not two
    assert sorted((a["kind"], a.get("reasons")) for a in data["alerts"]) == [
        ("low_score", None), ("problem_call", ["complaint"])]
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


def test_calls_list_with_a_date_out_of_range_says_so(admin):
    for url in ("/calls?from=0001-01-01", "/calls?to=9999-12-31"):
        resp = admin.get(url, headers={"Accept-Language": "en"})
        assert resp.status_code == 400 and "out of range" in resp.get_data(as_text=True), url


def test_call_page_timeline_transcript_checklist_and_waveform(admin):
    html = admin.get("/calls/c-complaint").get_data(as_text=True)
    assert "У меня жалоба на доставку" in html and "Менеджер здоровается в первые 15 с" in html
    # evidence in words, in the page's language; a call scored before that keeps its text
    assert "менеджер перебил 0 раз (допустимо 2)" in html and "parties.agent" not in html
    assert "&#39;здравствуйте&#39; at 0.5 s" in html
    assert "Проблемный звонок" in html and "жалоба клиента" in html
    en = admin.get("/calls/c-complaint", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Agent greets within 15 s" in en and "the agent interrupted 0 times (limit 2)" in en
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
    for other in ("bytes=0-9,20-29", "items=0-9", "bytes=x"):       # not served as ranges
        whole = admin.get("/calls/c-polite/audio", headers={"Range": other})
        assert whole.status_code == 200 and whole.data == full.data, other
    beyond = admin.get("/calls/c-polite/audio", headers={"Range": f"bytes={size + 10}-"})
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{size}"


def _recorded_by_the_pbx(path: Path) -> None:
    import numpy as np
    import soundfile as sf

    from paneldata import speech_like

    sf.write(str(path), np.stack([speech_like(6, [(0.5, 3.0)], 220),
                                  speech_like(6, [(3.2, 5.5)], 330)], axis=1), 16000)


def test_recordings_from_the_inbox_and_the_upload_api_can_be_played(box, admin, tmp_path):
    import io

    from appliance.sources.inbox import InboxWatcher

    inbox = box.settings.paths.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    _recorded_by_the_pbx(inbox / "pbx-0001.wav")
    _recorded_by_the_pbx(tmp_path / "up.wav")
    token = box.app.extensions["tokens"].create("pbx", "integration")
    resp = admin.post("/api/v1/recordings", headers={"Authorization": f"Bearer {token}"},
                      content_type="multipart/form-data",
                      data={"file": (io.BytesIO((tmp_path / "up.wav").read_bytes()), "up.wav"),
                            "call_id": "upload-1", "agent": "101"})
    assert resp.status_code == 202
    watcher = InboxWatcher(box.settings, on_result=box.ingester.ingest_file)
    watcher.poll_once(now=0.0)
    written = watcher.poll_once(now=100.0)
    assert len(written) == 2
    # each kept as calls/<day>/<uid>.*, the PBX's name and call id kept with it
    calls = {json.loads(p.read_text())["call"]["call_id"]: json.loads(p.read_text())["call"]["extra"]
             for p in written}
    assert set(calls) == {"pbx-0001", "upload-1"}
    assert {c["original_name"] for c in calls.values()} >= {"pbx-0001.wav"}
    for extra in calls.values():
        uid = extra["uid"]
        call = admin.get(f"/api/v1/calls/{uid}").get_json()
        assert call["recording"], call
        audio = admin.get(f"/calls/{uid}/audio")
        assert audio.status_code == 200 and audio.data[:4] == b"RIFF"
        page = admin.get(f"/calls/{uid}", headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert "No recording kept" not in page and f"/calls/{uid}/audio" in page
        assert admin.get(f"/calls/{uid}/waveform").status_code == 200


def test_inbox_calls_stored_before_recordings_were_named_can_be_played(box, admin):
    calls = box.settings.paths.calls
    _recorded_by_the_pbx(calls / "old-inbox.wav")
    from paneldata import call_result

    res = call_result("old-inbox", 1.7e9, "101", "79160000009", [], 50)
    res["call"]["source"] = "file"
    res["call"]["extra"] = {"files": [str(calls / "old-inbox.wav")]}     # no "recording"
    (calls / "old-inbox.json").write_text(json.dumps(res))
    box.db.calls.add(res, "old-inbox.json")
    box.db.calls.update("old-inbox", {"recording": None})      # as stored before
    assert admin.get("/calls/old-inbox/audio").status_code == 404
    from appliance.store.ingest import Ingester

    Ingester(box.db.calls, calls, None, box.db.search).scan()     # the next start
    assert admin.get("/calls/old-inbox/audio").status_code == 200


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
    from appliance import __version__
    from appliance.web.filters import uptime

    html = admin.get("/system", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "test-model" in html and "sip:100@pbx" in html and "web panel" not in html
    data = admin.get("/api/v1/system").get_json()
    assert data["status"]["active_calls"] == 1 and data["machine"]["cpus"] >= 1
    # what IT asks first: the version and slot, where SIP listens, the broker, the checks
    assert data["version"] == __version__ and f"<dd id=\"version\">{__version__}" in html
    assert data["slot"] is None and "not an A/B installation" in html
    assert data["sip"]["listen"] == "0.0.0.0:5060" and "0.0.0.0:5060 (udp, tcp)" in html
    assert data["mqtt"] == {"enabled": False} and "MQTT off" in html
    assert set(data["health"]["checks"]) >= {"registration", "broker", "disk", "queue", "model", "store"}
    for name, check in data["health"]["checks"].items():
        assert f'id="check-{name}"' in html and check["detail"] in html
    box.app.extensions["daemon"] = lambda: {"mqtt": {"enabled": True, "host": "broker", "port": 1883,
                                                     "connected": False, "outbox": 7}}
    html = admin.get("/system", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "broker:1883: not connected, 7 messages waiting" in html
    # uptime reads as a duration, not as a time of day
    assert uptime(26 * 60 + 37) == "26 min" and uptime(95_000) == "1 d 2 h 23 min"
    assert uptime(3600 * 26 + 37 * 60) == "1 d 2 h 37 min"
    assert "uptime" in html and uptime(data["machine"]["uptime_s"]) in html


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
    # a text ending in '_' or ' ' is the prefix of symbolic keys, checked below one by one
    assert sorted(t for t in texts if t not in RU and t[-1:] not in ("_", " ")) == []
    from appliance.analysis.problems import REASONS
    from appliance.kpi.figures import CALLBACK_STATUSES
    from appliance.kpi.plans import KINDS, METRICS
    from appliance.web.managers import COLUMNS

    symbolic = ([f"problem_{r}" for r in REASONS] + [f"cb_{s}" for s in CALLBACK_STATUSES]
                + [f"plan_{m}" for m in METRICS] + [f"every {k}" for k in KINDS]
                + [f"plan_status_{s}" for s in ("early", "on_track", "behind", "done", "missed")]
                + [f"flag_{v}" for v in ("worse", "better", "changed")] + [c.title for c in COLUMNS]
                + [f"tag_{t}" for t in ("greeting", "introduction", "farewell", "profanity",
                                        "stop_words", "complaints", "objections", "interest")])
    from appliance.analysis.scoring import load_checklist
    from appliance.web.wording import METRICS as WORDED

    symbolic += list(WORDED.values()) + [i["title"] for i in load_checklist().items]
    assert [t for t in symbolic if t not in RU] == []


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
    viewer = signed_in_as(box, "viewer")
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
    viewer = signed_in_as(box, "viewer")
    assert viewer.post("/tokens", data={"csrf_token": csrf(viewer.get("/")), "action": "create",
                                        "name": "z", "role": "admin"}).status_code == 403
    resp = admin.post("/tokens", data={"csrf_token": token, "action": "revoke", "name": "pbx"})
    assert resp.status_code == 302
    assert api.get("/api/v1/kpis?period=2026-11", headers=bearer).status_code == 401
    actions = [e["action"] for e in box.db.audit.recent(10)]
    assert "token create" in actions and "token revoke" in actions


# --- the head of sales' pages ---
def test_missed_calls_page_filters_callbacks_and_csv(box, admin):
    box.add_office()
    page = admin.get("/api/v1/missed").get_json()
    by = {m["group"]: m for m in page["missed"]}
    assert set(by) == {"w1", "w2", "q1", "n1", "x1"}
    assert by["q1"]["callback"]["status"] == "called_back_fast" and by["q1"]["callback"]["by"] == "102"
    assert by["n1"]["callback"]["status"] == "never" and by["x1"]["callback"]["status"] == "no_number"
    assert page["counts"]["pending"] == 2 and page["never_share"] == 0.2       # 1 of 5
    assert page["median_callback_s"] == 300.0
    # to call back now: the ones still waiting, the longest wait first
    assert [m["group"] for m in page["to_call_back"]] == ["w1", "w2"]
    assert page["to_call_back"][0]["waiting_s"] >= 2400
    groups = lambda q: {m["group"] for m in admin.get("/api/v1/missed" + q).get_json()["missed"]}  # noqa: E731
    assert groups("?agent=101") == {"w1", "q1", "n1"}              # rang Anna's phone
    assert groups("?agent=101&alone=1") == {"w1", "n1"}            # missed by her alone
    assert groups("?team=support") == {"x1"} and groups("?status=never") == {"n1"}
    assert admin.get("/api/v1/missed?team=nobody").status_code == 400

    html = admin.get("/missed?agent=101").get_data(as_text=True)
    assert "Анна Петрова" in html and "Борис Смирнов" in html and ">101<" not in html
    assert "Перезвонить сейчас" in html and "не перезвонили" in html
    assert "<b>x</b>" not in admin.get("/missed").get_data(as_text=True)   # escaped
    csv_text = admin.get("/missed.csv?status=no_number").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0] == "start,client,rang,status,callback_at,callback_by,reached,waited_s"
    assert len(lines) == 2 and ",'=SUM(A:A)" in lines[1] and "Вера" in lines[1]   # formula made text
    fast = admin.get("/missed.csv?status=called_back_fast").get_data(as_text=True).splitlines()[1]
    assert "Анна Петрова; Борис Смирнов" in fast and ",Борис Смирнов,yes,300.0" in fast
    assert box.db.audit.recent(1)[0]["action"] == "missed export"


def test_dashboard_links_to_the_missed_calls_and_names_managers(box, admin):
    box.add_office()
    html = admin.get("/").get_data(as_text=True)
    assert 'id="tile-never" href="/missed?status=never' in html
    assert 'href="/missed"' in html                                          # all missed calls
    # a manager's 'missed, never called back' opens their missed calls, not recorded calls
    assert re.search(r'class="missed-never" href="/missed\?agent=101&amp;alone=1&amp;status=never', html)
    assert "Анна Петрова" in html and "Борис Смирнов" in html


def test_managers_page_ranks_by_any_column_with_names_and_charts(box, admin):
    box.add_office()
    data = admin.get("/api/v1/managers?sort=missed_rang").get_json()
    assert data["kind"] == "week" and len(data["periods"]) == 8
    ranked = [r["values"]["missed_rang"] for r in data["managers"]]
    # early in a week a manager may have no figure yet: those rank last, whatever the order
    present = [v for v in ranked if v is not None]
    assert ranked == sorted(present, reverse=True) + [None] * (len(ranked) - len(present))
    # the KPI agrees with the missed-calls list of the same week (n1 may be last week's)
    week = data["period"]
    for agent in ("101", "102"):
        listed = admin.get(f"/api/v1/missed?period={week}&agent={agent}").get_json()["missed"]
        row = next(r for r in data["managers"] if r["id"] == agent)
        assert (row["values"]["missed_rang"] or 0) == len(listed)
    names = [r["name"] for r in admin.get("/api/v1/managers?sort=name").get_json()["managers"]]
    assert names == sorted(names) and "Анна Петрова" in names
    rev = [r["name"] for r in admin.get("/api/v1/managers?sort=name&order=desc").get_json()["managers"]]
    assert rev == names[::-1]
    anna = next(r for r in data["managers"] if r["id"] == "101")
    assert len(anna["series"]["calls"]) == 8 and anna["series"]["calls"][-1] == anna["values"]["calls"]
    assert anna["team"] == "sales" and [t["id"] for t in data["teams"]] == ["sales", "support"]
    months = admin.get("/api/v1/managers?kind=month").get_json()
    assert len(months["periods"]) == 6 and months["to_date"] is True
    html = admin.get("/managers?sort=calls").get_data(as_text=True)
    assert "Анна Петрова" in html and "<polyline" in html and "Пропустил сам" in html
    assert admin.get("/managers?sort=nonsense").status_code == 400


def test_plans_are_set_in_the_panel_by_editors_with_csrf(box, admin):
    box.add_office()
    page = admin.get("/plans")
    form = {"action": "save", "scope": "manager", "manager": "101", "kind": "week",
            "metric": "answer_rate", "target": "90"}
    assert admin.post("/plans", data=form).status_code == 400               # no CSRF token
    assert box.queries.plan_list() == []
    resp = admin.post("/plans", data={**form, "csrf_token": csrf(page)})
    assert resp.status_code == 302
    assert box.queries.plan_list()[0]["target"] == 0.9                      # 90 % as a share
    bad = admin.post("/plans", data={**form, "target": "lots", "csrf_token": csrf(page)})
    assert bad.status_code == 400 and "target" in bad.get_data(as_text=True)
    html = admin.get("/plans").get_data(as_text=True)
    assert "Анна Петрова" in html and "доля отвеченных" in html and "90%" in html
    viewer = signed_in_as(box, "viewer")
    vpage = viewer.get("/plans")
    assert vpage.status_code == 200 and 'id="plan-form"' not in vpage.get_data(as_text=True)
    assert viewer.post("/plans", data={**form, "csrf_token": csrf(vpage)}).status_code == 403
    resp = admin.post("/plans", data={"action": "delete", "id": "manager:101:week:answer_rate",
                                      "csrf_token": csrf(page)})
    assert resp.status_code == 302 and box.queries.plan_list() == []


def test_calls_list_sorts_and_presets(admin):
    def uids(query):
        return [c["uid"] for c in admin.get("/api/v1/calls" + query).get_json()["calls"]]

    assert uids("?sort=score&order=asc") == ["c-complaint", "c-xss", "c-polite"]     # 35, 70, 92
    assert uids("?sort=score") == ["c-polite", "c-xss", "c-complaint"]
    assert uids("?problem=1") == ["c-complaint"]
    assert admin.get("/api/v1/calls?sort=volume").status_code == 400
    html = admin.get("/calls").get_data(as_text=True)
    worst = re.search(r'id="preset-worst" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "sort=score" in worst and "order=asc" in worst
    page = admin.get(worst).get_data(as_text=True)
    assert page.index("c-complaint") < page.index("c-xss") < page.index("c-polite")
    assert 'data-sort="score"' in page and "↑" in page


def test_managers_page_marks_a_figure_off_the_managers_own_baseline(box, admin):
    from datetime import date, timedelta

    from storedata import result

    box.settings.kpi.baseline_min_calls = 5
    box.settings.kpi.names = {"101": "Анна Петрова", "102": "Борис Смирнов"}
    box.queries.settings_changed()
    now = time.time()
    month = date.today().replace(day=1)
    start = time.mktime(month.timetuple())
    calls = []
    for back in range(1, 7):      # six months of Anna scoring 80-84 and Boris 70-74 ...
        month = (month - timedelta(days=1)).replace(day=1)
        for i in range(12):
            t = time.mktime((month.year, month.month, 10, 9, i, 0, 0, 0, -1))
            calls.append(result(f"a{back}-{i}", t, "101", f"79161{back:02d}{i:04d}", score=80 + i % 5))
            calls.append(result(f"b{back}-{i}", t + 3600, "102", f"79162{back:02d}{i:04d}",
                                score=70 + i % 5, interruptions=1))
    for i in range(12):           # ... and this month so far, Anna at 45-47, Boris as ever
        t = start + (now - start) * (i + 1) / 14          # also on the 1st just after midnight
        calls.append(result(f"a0-{i}", t, "101", f"791610{i:05d}", score=45 + i % 3))
        calls.append(result(f"b0-{i}", t, "102", f"791620{i:05d}", score=70 + i % 5, interruptions=1))
    box.db.calls.add_many(calls)

    data = admin.get("/api/v1/managers?kind=month").get_json()
    flags = {r["id"]: r["flags"] for r in data["managers"]}
    assert flags["101"] == {"avg_score": "worse"} and flags["102"] == {}
    html = admin.get("/managers?kind=month").get_data(as_text=True)
    anna = re.search(r'<tr data-id="101">(.*?)</tr>', html, re.S).group(1)
    score = re.search(r'<td class="fig-avg_score"(.*?)</td>', anna, re.S).group(1)
    assert 'class="flag worse"' in score and "хуже обычного" in score
    assert "flag" not in re.search(r'<tr data-id="102">(.*?)</tr>', html, re.S).group(1)


def test_audit_actions_and_tags_are_shown_in_the_panels_language(box, admin):
    from appliance.web.catalog_ru import RU

    # every action the code writes to the audit log has its Russian name
    root = Path(__file__).resolve().parents[1] / "appliance"
    written = set()
    for path in root.rglob("*.py"):
        src = path.read_text(encoding="utf-8")
        written |= set(re.findall(r'\baudit\(\s*"([^"{]+)"', src))
        written |= set(re.findall(r'\baudit\.record\(\s*\w+,\s*"([^"{]+)"', src))
        if 'audit(f"user {action}"' in src:
            written |= {"user create", "user update", "user delete"}
    assert {"login", "plan saved", "missed export", "user delete"} <= written
    assert sorted(a for a in written if f"audit_{a}" not in RU) == []

    box.queries.save_plan({"scope": "manager", "who": "101", "kind": "month", "metric": "calls",
                           "target": 10}, "admin")
    html = admin.get("/audit").get_data(as_text=True)
    assert "план сохранён" in html and "первоначальная настройка" in html
    assert ">plan saved<" not in html
    en = admin.get("/audit", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "plan saved" in en
    # dictionary tags: the calls list and its tag filter speak Russian
    calls = admin.get("/calls").get_data(as_text=True)
    assert 'class="tag tag-complaints">жалоба<' in calls and 'class="tag tag-greeting">приветствие<' in calls
    assert '<option value="complaints" >жалоба</option>' in calls.replace("  ", " ")


def test_managers_page_lists_cooling_and_zombie_clients_by_their_own_rhythm(box, admin):
    from datetime import date, timedelta

    from storedata import result

    box.settings.kpi.names = {"101": "Анна Петрова", "102": "Борис Смирнов"}
    box.queries.settings_changed()
    today = date.today()

    def noon(days_ago: int) -> float:
        day = today - timedelta(days=days_ago)
        return time.mktime((day.year, day.month, day.day, 12, 0, 0, 0, 0, -1))

    # 79165550001 talked to Anna three days running, 10 to 8 days ago: a usual gap of one
    # day, silent since for more than twice that (and kpi.cooling_min_days, 3): cooling.
    # 79165550002 talked to Boris three times 40 to 38 days ago: zombie (3 conversations,
    # then 30 days or more). 79165550003 talks to Anna every 7 days, last 6 days ago: fine.
    box.db.calls.add_many(
        [result(f"c{d}", noon(d), "101", "79165550001") for d in (10, 9, 8)]
        + [result(f"z{d}", noon(d), "102", "79165550002") for d in (40, 39, 38)]
        + [result(f"r{d}", noon(d), "101", "79165550003") for d in (27, 20, 13, 6)])
    html = admin.get("/managers").get_data(as_text=True)
    cooling = re.search(r'<table class="grid" id="cooling">(.*?)</table>', html, re.S).group(1)
    zombie = re.search(r'<table class="grid" id="zombie">(.*?)</table>', html, re.S).group(1)
    assert "79165550001" in cooling and "Анна Петрова" in cooling and "79165550003" not in cooling
    assert "79165550002" in zombie and "Борис Смирнов" in zombie and ">3<" in zombie
    assert "79165550002" not in cooling and "79165550001" not in zombie
    assert re.search(r'id="cooling-count">1<', html) and re.search(r'id="zombie-count">1<', html)
    assert "Остывают" in html and "Зомби" in html
