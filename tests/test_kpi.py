"""KPI arithmetic on hand-made calls: PBX records joined to recordings, missed calls and
callbacks, outcomes, period over period, baseline flags, cooling and zombie clients."""

from __future__ import annotations

import pytest

from appliance.config import load_settings
from appliance.kpi.periods import parse_period
from appliance.query import NotFound, Queries
from appliance.store.database import Database
from appliance.store.outcomes import OutcomeError
from storedata import at, result

LATER = at(12, 1, 12)      # "now": long after October, every callback window has closed


@pytest.fixture
def q(tmp_path):
    settings = load_settings(environ={})
    settings.kpi.teams = {"sales": ["101", "102"]}
    settings.kpi.names = {"101": "Anna"}
    db = Database(tmp_path)
    yield Queries(db, settings)
    db.close()


def cdr(id_, start, src, dst, answer=None, billsec=None, call_id=None, group=None):
    rec = {"id": id_, "start": start, "from": src, "to": dst, "end": start + 300}
    if answer is not None:
        rec.update(answer=answer, billsec=billsec, disposition="ANSWERED")
    else:
        rec["disposition"] = "NO ANSWER"
    if call_id:
        rec["call_id"] = call_id
    if group:
        rec["group"] = group
    return rec


def october(q):
    d = 14
    rows = [
        cdr("1", at(10, d, 10), "79161110001", "101", answer=at(10, d, 10, 0, 5), billsec=120,
            call_id="c1@pbx"),
        cdr("2", at(10, d, 11), "79161110002", "101"),
        cdr("2b", at(10, d, 11, 10), "101", "89161110002", answer=at(10, d, 11, 10, 8),
            billsec=60),
        cdr("3", at(10, d, 12), "+7 916 111-00-03", "102"),
        cdr("3b", at(10, d, 13), "102", "9161110003"),
        cdr("4a", at(10, d, 14), "79161110004", "101", group="q4"),
        cdr("4b", at(10, d, 14, 0, 1), "79161110004", "102", group="q4"),
        cdr("5", at(10, d, 15), "79161110005", "102"),
        cdr("5b", at(10, d, 15, 30), "79161110005", "102", answer=at(10, d, 15, 30, 10),
            billsec=200),
        cdr("6", at(10, d, 16), "", "102"),
    ]
    out = q.add_cdr(rows, "pbx")
    assert out == {"accepted": 10, "new": 10, "errors": []}
    q.db.calls.add(result("r1", at(10, d, 10, 0, 6), "101", "79161110001", score=80,
                          talk_share=0.6, interruptions=2, tags=("greeting", "greeting"),
                          sip_call_id="c1@pbx", holds=(20.0, 10.5)))
    q.db.calls.add(result("r2", at(10, d, 11, 10, 9), "101", "79161110002", direction="outbound",
                          score=60, talk_share=0.7, interruptions=4, tags=("objections",)))
    q.db.calls.add(result("r3", at(10, d, 17), "102", "79161110006", direction="outbound",
                          score=None, duration=90.0, holds=()))


def test_manager_team_and_office_figures(q):
    october(q)
    q.post_outcome("r1", {"result": "won", "amount": 1000, "currency": "rub"}, "crm")
    q.post_outcome("r2", {"result": "lost"}, "crm")
    k = q.kpis("2026-10", now=LATER)
    anna = k["managers"]["101"]
    assert anna["name"] == "Anna"
    assert (anna["calls_in"], anna["answered_in"], anna["missed"]) == (3, 1, 2)
    assert anna["missed_called_back_fast"] == 1 and anna["missed_never"] == 1
    assert (anna["calls_out"], anna["outbound_reached"]) == (1, 1)
    assert anna["answer_rate"] == round(1 / 3, 4)
    assert anna["avg_time_to_answer_s"] == 5.0
    assert anna["avg_duration_s"] == 90.0                 # 120 s and the 60 s callback
    assert anna["recorded"] == 2 and anna["avg_score"] == 70.0
    assert anna["interruptions_per_call"] == 3.0 and anna["avg_talk_share"] == 0.65
    assert anna["tags"] == {"greeting": 2, "objections": 1}
    assert (anna["outcomes"], anna["won"], anna["conversion"], anna["revenue"]) == (2, 1, 0.5, 1000.0)
    # hold time: r2 was analysed before holds were detected, so it is not averaged in
    assert (anna["hold_s"], anna["avg_hold_s"]) == (30.5, 30.5)

    b = k["managers"]["102"]
    assert (b["calls_in"], b["answered_in"], b["missed"]) == (5, 1, 4)
    assert (b["missed_called_back_slow"], b["missed_never"], b["missed_client_called_again"],
            b["missed_no_number"]) == (1, 1, 1, 1)
    assert (b["calls_out"], b["outbound_reached"]) == (2, 1)   # unanswered callback + recorded r3
    assert b["avg_time_to_answer_s"] == 10.0
    assert b["avg_score"] is None and b["conversion"] is None
    assert (b["hold_s"], b["avg_hold_s"]) == (0.0, 0.0)

    office = k["office"]
    assert (office["calls_in"], office["missed"], office["missed_never"]) == (7, 5, 1)  # q4 once
    assert k["teams"]["sales"]["missed"] == 5 and k["teams"]["sales"]["members"] == ["101", "102"]


def test_missed_calls_list_callback_details_and_the_join(q):
    october(q)
    missed = q.missed("2026-10", now=LATER)
    by_client = {m["client"]: m for m in missed}
    fast = by_client["79161110002"]["callback"]
    assert fast["status"] == "called_back_fast" and fast["by"] == "101" and fast["delay_s"] == 600
    assert fast["reached"] is True
    slow = by_client["+7 916 111-00-03"]["callback"]
    assert slow["status"] == "called_back_slow" and slow["reached"] is False
    assert by_client["79161110004"]["rung"] == ["101", "102"]
    assert [m["callback"]["status"] for m in q.missed("2026-10", status="never", now=LATER)] == ["never"]
    assert len(q.missed("2026-10", agent="101", now=LATER)) == 2
    # recordings joined: by Call-ID (r1), by number and time (r2)
    assert q.call("r1")["pbx"]["group"] == "1"
    assert q.call("r2")["pbx"]["group"] == "2b"
    assert q.call("r3")["pbx"]["group"] == "rec:r3"
    # the same missed call seen 'now', an hour later: still pending, not 'never'
    soon = at(10, 14, 15)
    q4 = [m for m in q.missed("2026-10-14", now=soon) if m["client"] == "79161110004"]
    assert q4[0]["callback"]["status"] == "pending"


def test_periods_day_week_month_and_period_over_period(q):
    october(q)
    q.db.calls.add(result("sep1", at(9, 10, 10), "101", "79160000001"))
    q.db.calls.add(result("sep2", at(9, 11, 10), "101", "79160000002"))
    q.db.calls.add(result("ly", at(10, 5, 10, year=2025), "101", "79160000003"))
    day = q.kpis("2026-10-14", now=LATER)
    week = q.kpis("2026-W42", now=LATER)
    month = q.kpis("2026-10", now=LATER)
    assert day["office"]["calls_in"] == week["office"]["calls_in"] == month["office"]["calls_in"] == 7
    assert q.kpis("2026-10-15", now=LATER)["office"]["calls_in"] == 0
    cmp = q.compare("2026-10", now=LATER)
    assert (cmp["previous"], cmp["year_ago"]) == ("2026-09", "2025-10")
    anna = cmp["managers"]["101"]
    assert anna["current"]["calls_in"] == 3
    assert anna["vs_previous"]["calls_in"] == {"delta": 1, "relative": 0.5}    # 2 -> 3
    assert anna["vs_year_ago"]["calls_in"] == {"delta": 2, "relative": 2.0}    # 1 -> 3
    assert cmp["office"]["vs_previous"]["missed"] == {"delta": 5, "relative": None}


def test_periods_parse_and_shift():
    assert parse_period("2026-W01").first.isoformat() == "2025-12-29"
    assert parse_period("2026-01").shifted(-1).name == "2025-12"
    assert parse_period("2024-02-29").year_ago().name == "2023-02-28"
    assert parse_period("2020-W53").year_ago().name == "2019-W52"
    with pytest.raises(ValueError, match="ISO week"):
        parse_period("2026-13")
    with pytest.raises(ValueError, match="use a day"):
        parse_period("last month")


def test_baseline_flags_a_manager_who_departs_from_their_own_record(q):
    q.settings.kpi.baseline_min_calls = 5
    results = []
    for m in range(4, 11):                       # April .. October
        for i in range(12):
            worse = m == 10
            results.append(result(f"a{m}-{i}", at(m, 10, 9, i), "101", f"7916100{m:02d}{i:02d}",
                                  score=(45 + i % 3) if worse else (80 + i % 5),
                                  interruptions=2))
            results.append(result(f"b{m}-{i}", at(m, 10, 10, i), "102", f"7916200{m:02d}{i:02d}",
                                  score=70 + i % 5, interruptions=1))
    q.db.calls.add_many(results)
    flags = q.flags("2026-10", now=LATER)
    assert [(f["agent"], f["metric"], f["verdict"]) for f in flags] == [("101", "avg_score", "worse")]
    assert flags[0]["baseline"] == 81.75 and flags[0]["periods"] == 6
    assert q.flags("2026-09", now=LATER) == []


def test_cooling_and_zombie_clients(q):
    now = at(11, 20, 12)
    q.db.calls.add(result("cool", at(10, 20, 10), "101", "79165550001", tags=("interest",)))
    q.db.calls.add(result("warm", at(11, 17, 10), "101", "79165550002", tags=("interest",)))
    q.db.calls.add(result("wonc", at(10, 20, 11), "101", "79165550003"))
    q.post_outcome("wonc", {"result": "interested"}, "crm")
    q.db.calls.add(result("wonc2", at(10, 22, 11), "101", "79165550003"))
    q.post_outcome("wonc2", {"result": "won", "amount": 5}, "crm")
    for i in range(6):
        q.db.calls.add(result(f"z{i}", at(11, 1 + i, 10), "102", "89165550004"))
        q.db.calls.add(result(f"y{i}", at(11, 1 + i, 11), "102", "79165550005"))
    q.post_outcome("y5", {"result": "lost"}, "crm")
    lists = q.clients(now=now)
    assert [c["client"] for c in lists["cooling"]] == ["79165550001"]
    assert lists["cooling"][0]["silent_days"] == 31.1     # 31 days and 2 hours
    assert [(c["client"], c["contacts"]) for c in lists["zombie"]] == [("89165550004", 6)]


def test_outcome_validation_and_unknown_calls(q):
    q.db.calls.add(result("x", at(10, 1, 10)))
    for bad, msg in [({"result": "maybe"}, "result"), ({"result": "won", "amount": -1}, "amount"),
                     ({"result": "won", "amount": True}, "amount"),
                     ({"result": "won", "currency": "roubles"}, "currency"),
                     ({"result": "won", "extra": 1}, "unknown field"), ([1], "JSON object")]:
        with pytest.raises(OutcomeError, match=msg):
            q.post_outcome("x", bad, "crm")
    with pytest.raises(NotFound):
        q.post_outcome("nope", {"result": "won"}, "crm")
    assert q.db.outcomes.get("x") is None
    q.post_outcome("x", {"result": "won", "amount": 10}, "crm")
    q.post_outcome("x", {"result": "lost"}, "crm")         # the latest wins
    assert q.db.outcomes.get("x")["result"] == "lost"
    assert [e["action"] for e in q.db.audit.recent()] == ["outcome", "outcome"]
