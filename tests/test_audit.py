"""Who saw what: transcript views, searches and exports are audited; the log is filtered and
exported as CSV by admins only, and nobody can delete from it through the panel or API."""

from __future__ import annotations

import csv
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
