"""Who saw what: transcript views, searches and exports are audited; the log is filtered and
exported as CSV by admins only, and nobody can delete from it through the panel or API."""

from __future__ import annotations

import csv
import json
import io
import time


from panelfixtures import signed_in_as


def _entries(box, action):
    return [e for e in box.db.audit.recent(100) if e["action"] == action]


def test_transcript_views_and_searches_are_audited(box, admin):
    viewer = signed_in_as(box, "viewer")
    assert viewer.get("/calls/c-complaint").status_code == 200
    assert admin.get("/api/v1/calls/c-polite/detail").status_code == 200
    views = _entries(box, "transcript view")
    assert [(e["actor"], e["target"]) for e in views] == [("admin", "c-polite"),
                                                          ("viewer1", "c-complaint")]
    assert viewer.get("/calls?q=доставк").status_code == 200
    assert admin.get("/api/v1/calls?q=жалоба").status_code == 200
    searches = _entries(box, "transcript search")
    assert [(e["actor"], e["target"], e["detail"]["found"]) for e in searches] == [
        ("admin", "жалоба", 1), ("viewer1", "доставк", 2)]
    assert admin.get("/calls").status_code == 200                   # no words: not a search
    assert len(_entries(box, "transcript search")) == 2
    # a card number searched for is kept masked, as transcripts keep it
    assert admin.get("/api/v1/calls?q=карта+4111111111111111").status_code == 200
    assert _entries(box, "transcript search")[0]["target"] == "карта [card]"


def test_audit_log_filters_and_csv_export(box, admin):
    box.db.audit.record("=HYPERLINK(\"http://x\")", "listen", "c-polite")
    box.db.audit.record("anna", "listen", "c-complaint")
    box.db.audit.record("anna", "download", "c-complaint")
    today = time.strftime("%Y-%m-%d")
    got = admin.get(f"/api/v1/audit?actor=anna&from={today}&to={today}").get_json()["entries"]
    assert [(e["action"], e["target"]) for e in got] == [("download", "c-complaint"),
                                                         ("listen", "c-complaint")]
    got = admin.get("/api/v1/audit?action=listen&target=polite").get_json()["entries"]
    assert [e["actor"] for e in got] == ['=HYPERLINK("http://x")']
    assert admin.get("/api/v1/audit?from=2001-01-01&to=2001-01-31").get_json()["entries"] == []
    assert admin.get("/api/v1/audit?from=tomorrow").status_code == 400
    page = admin.get("/audit?actor=anna").get_data(as_text=True)
    assert page.count('href="/calls/c-complaint"') == 2 and "c-polite" not in page.split('id="audit"')[1]
    resp = admin.get("/audit?action=listen&format=csv")
    assert resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0] == ["at", "actor", "action", "target", "ip", "detail"]
    assert sorted(r[1] for r in rows[1:]) == ["'=HYPERLINK(\"http://x\")", "anna"]   # inert in a sheet
    export = _entries(box, "audit export")[0]
    assert export["actor"] == "admin" and export["detail"]["entries"] == 2
    assert export["detail"]["filters"] == {"action": "listen"}


def test_csv_cells_never_run_as_formulas_and_numbers_stay_numbers():
    from appliance.web.csvcell import cell

    for hostile in ("=1+2", "+1-cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", " =1", "\n=1+2",
                    "\t=1", "+", "-"):
        assert cell(hostile).startswith("'"), hostile
    for plain in ("+79161234567", "79161234567", "-5", "12.5", "Анна", "101", "", None):
        assert cell(plain) == ("" if plain is None else plain)


def test_a_long_log_says_what_it_leaves_out(box, admin):
    for i in range(305):
        box.db.audit.record("anna", "listen", f"u{i}")
    page = admin.get("/audit?actor=anna", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert page.count('href="/calls/u') == 300 and 'id="audit-more"' in page
    assert "transcript view" in page.split('name="action"')[1]        # named, though unused yet


def test_only_admins_read_the_log_and_nobody_deletes_from_it(box, admin):
    for role in ("supervisor", "viewer"):
        client = signed_in_as(box, role)
        assert client.get("/audit").status_code == 403
        assert client.get("/audit?format=csv").status_code == 403
        assert client.get("/api/v1/audit").status_code == 403
    before = len(box.db.audit.recent(1000))
    for method in ("delete", "post", "put", "patch"):
        assert getattr(admin, method)("/api/v1/audit").status_code in (400, 403, 405)
        assert getattr(admin, method)("/audit").status_code in (400, 403, 405)
    writes = [r for r in box.app.url_map.iter_rules() if "audit" in r.rule
              and set(r.methods) & {"POST", "PUT", "PATCH", "DELETE"}]
    assert writes == []
    assert len(box.db.audit.recent(1000)) >= before


def _rescored(box, uid):
    """The call JSON of ``uid`` scored by the real checklist, as new calls are."""
    from appliance.analysis.scoring import load_checklist, score_call

    path = next(box.settings.paths.calls.rglob(f"{uid}.json"))
    res = json.loads(path.read_text(encoding="utf-8"))
    res["tags"] = [{"tag": "greeting", "dictionary": "greetings", "party": "agent", "at": 0.5,
                    "phrase": "здравствуйте", "text": "Здравствуйте", "severity": "info",
                    "alert": False}]
    res["score"] = score_call(res, load_checklist("sales"))
    path.write_text(json.dumps(res, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_call_page_quotes_what_the_checklist_heard(box, admin):
    _rescored(box, "c-polite")
    page = admin.get("/calls/c-polite", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "“Здравствуйте” at" in page.get_data(as_text=True)
    assert admin.get("/calls/c-polite").status_code == 200                 # Russian too


def test_transcript_retention_leaves_no_quoted_words(box, admin):
    from appliance.store.retention import strip_transcript

    path = _rescored(box, "c-polite")
    res = json.loads(path.read_text(encoding="utf-8"))
    assert "Здравствуйте" in json.dumps(res["score"], ensure_ascii=False)
    res["events"] = [{"kind": "dtmf", "party": "client", "start": 5.0, "end": 7.0, "keys": 4,
                      "digits": "1234"}]
    assert strip_transcript(res, time.time())
    assert res["events"][0]["keys"] == 4 and "digits" not in res["events"][0]
    text = json.dumps(res, ensure_ascii=False).lower()
    assert "здравствуйте" not in text and "ромашка" not in text
    assert res["tags"][0]["tag"] == "greeting" and res["score"]["total"] is not None
    path.write_text(json.dumps(res, ensure_ascii=False), encoding="utf-8")
    page = admin.get("/calls/c-polite", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and "Здравствуйте" not in page.get_data(as_text=True)
