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
    # the queue call q4 rang 101 and 102: 'rang' for both, 'missed' by neither alone
    assert (anna["calls_in"], anna["answered_in"], anna["missed"], anna["missed_rang"]) == (2, 1, 1, 2)
    assert anna["missed_called_back_fast"] == 1 and anna["missed_never"] == 0
    assert (anna["calls_out"], anna["outbound_reached"]) == (1, 1)
    assert (anna["callbacks"], anna["callbacks_reached"], anna["median_callback_s"]) == (1, 1, 600.0)
    assert anna["answer_rate"] == 0.5
    assert anna["avg_time_to_answer_s"] == 5.0
    assert anna["avg_duration_s"] == 90.0                 # 120 s and the 60 s callback
    assert anna["recorded"] == 2 and anna["avg_score"] == 70.0
    assert anna["interruptions_per_call"] == 3.0 and anna["avg_talk_share"] == 0.65
    assert anna["tags"] == {"greeting": 2, "objections": 1}
    assert (anna["outcomes"], anna["won"], anna["conversion"]) == (2, 1, 0.5)
    assert anna["revenue"] == {"RUB": 1000.0}
    # hold time: r2 was analysed before holds were detected, so it is not averaged in
    assert (anna["hold_s"], anna["avg_hold_s"]) == (30.5, 30.5)

    b = k["managers"]["102"]
    assert (b["calls_in"], b["answered_in"], b["missed"], b["missed_rang"]) == (4, 1, 3, 4)
    assert (b["missed_called_back_slow"], b["missed_never"], b["missed_client_called_again"],
            b["missed_no_number"]) == (1, 0, 1, 1)
    assert (b["calls_out"], b["outbound_reached"]) == (2, 1)   # unanswered callback + recorded r3
    assert b["avg_time_to_answer_s"] == 10.0
    assert b["avg_score"] is None and b["conversion"] is None
    assert (b["hold_s"], b["avg_hold_s"]) == (0.0, 0.0)

    office = k["office"]
    assert (office["calls_in"], office["missed"], office["missed_never"]) == (7, 5, 1)  # q4 once
    assert office["missed_never_share"] == 0.2 and office["missed_never_share_of_inbound"] == round(1 / 7, 4)
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
    assert anna["current"]["calls_in"] == 2          # the queue miss q4 is the office's
    assert anna["vs_previous"]["calls_in"] == {"delta": 0, "relative": 0.0}    # 2 -> 2
    assert anna["vs_year_ago"]["calls_in"] == {"delta": 1, "relative": 1.0}    # 1 -> 2
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
    for i, d in enumerate((1, 5, 9)):            # active in September, silent since
        q.db.calls.add(result(f"s{i}", at(9, d, 10), "103", "79165550006"))
    lists = q.clients(now=now)
    # 0001: interest, one contact (no usual gap yet), silent 31 days >= kpi.cooling_days (14);
    # 0004: talked every day from 1 to 6 November (usual gap 1 day), silent 14 days since,
    # more than twice (kpi.cooling_factor) the usual gap and than kpi.cooling_min_days (3)
    assert [c["client"] for c in lists["cooling"]] == ["79165550001", "89165550004"]
    assert lists["cooling"][0]["silent_days"] == 31.1     # 31 days and 2 hours
    assert lists["cooling"][1]["usual_gap_days"] == 1.0 and lists["cooling"][1]["silent_days"] == 14.1
    # 0006: three conversations (kpi.zombie_contacts), then 72 days (>= kpi.zombie_days, 30)
    assert [(c["client"], c["contacts"], c["silent_days"]) for c in lists["zombie"]] == [
        ("79165550006", 3, 72.1)]


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


def test_a_period_updated_day_by_day_equals_one_summed_afresh(q, tmp_path):
    # the month's sums are kept and a changed day is taken out and put back in: after calls,
    # outcomes, PBX records and a manager's only call forgotten, they equal a fresh sum
    q.db.calls.add(result("k1", at(10, 2, 10), "101", score=70))
    q.db.calls.add(result("k2", at(10, 9, 11), "102", score=60))
    q.db.calls.add(result("k3", at(10, 20, 12), "103", score=90))
    first = q.kpis("2026-10", LATER)
    assert set(first["managers"]) == {"101", "102", "103"}
    q.db.calls.add(result("k4", at(10, 9, 15), "101", score=50))
    q.post_outcome("k4", {"result": "won", "amount": 700}, "crm")
    q.add_cdr([cdr("x1", at(10, 9, 16), "79160000077", "102"),
               cdr("x2", at(10, 21, 9), "79160000078", "101", at(10, 21, 9, 0, 5), 60)], "pbx")
    q.db.calls.forget(["k3"])
    kept = q.kpis("2026-10", LATER)
    fresh = Queries(q.db, q.settings).kpis("2026-10", LATER)
    assert kept == fresh
    assert set(kept["managers"]) == {"101", "102"} and kept["managers"]["101"]["won"] == 1
    assert kept["office"]["tags"] == fresh["office"]["tags"] == {"greeting": 3}


def test_a_month_tallied_from_one_view_equals_its_days_tallied_one_by_one(q):
    # misses called back across midnight and across the month's edges (31 Oct -> 1 Nov),
    # queues, transfers, outcomes in three currencies
    office_month(q)
    at_once = Queries(q.db, q.settings)
    by_day = Queries(q.db, q.settings)
    for day in range(1, 32):                   # each day on its own first: its own view
        by_day.kpis(f"2026-10-{day:02d}", LATER)
    for month in ("2026-10", "2026-11"):
        assert at_once.kpis(month, LATER) == by_day.kpis(month, LATER)
    assert at_once.flags("2026-11", LATER) == by_day.flags("2026-11", LATER)


def test_missed_calls_kept_per_day_equal_a_fresh_join_after_changes(q):
    office_month(q)
    warm = Queries(q.db, q.settings)
    assert warm.missed("2026-10", now=LATER) == Queries(q.db, q.settings).missed("2026-10", now=LATER)
    # a new miss on one day, a callback for it the next, and a missed call's record gone
    q.add_cdr([cdr("late1", at(10, 30, 23, 50), "79160000099", "101"),
               cdr("late1cb", at(10, 31, 0, 20), "101", "79160000099", at(10, 31, 0, 20, 5), 30)],
              "pbx")
    fresh = Queries(q.db, q.settings)
    for status in (None, "never", "called_back_slow", "called_back_fast"):
        assert warm.missed("2026-10", status=status, now=LATER) == \
            fresh.missed("2026-10", status=status, now=LATER), status
    got = {m["client"]: m["callback"]["status"] for m in warm.missed("2026-10", now=LATER)}
    assert got["79160000099"] == "called_back_slow"
    # whole days (kept per day) and a range that is not (joined afresh): the same calls
    start, end = at(10, 5, 0), at(10, 31, 0)
    whole = warm.missed((start, end), now=LATER)
    ragged = [m for m in fresh.missed((start, end + 1), now=LATER) if m["start"] < end]
    assert whole == ragged and len(whole) >= 3


def test_warm_up_computes_the_dashboards_months_ahead(q):
    q.db.calls.add(result("w1", at(11, 20, 10), "101"))
    now = at(11, 24, 12)
    assert q.warm_up(now) == ["2026-11", "2026-10", "2025-11"]
    # November to date (23 whole days and 12 h) against the same stretch of the others
    assert {"2026-11", "2026-10@23+43200", "2025-11@23+43200", "2026-11-24"} <= set(q._periods)
    assert q.kpis("2026-11", now)["managers"]["101"]["recorded"] == 1


def test_warm_up_leaves_the_managers_baselines_and_client_lists_ready(q, monkeypatch):
    office_month(q)
    now = at(11, 24, 12)
    assert q.warm_up_managers(now) == ["2026-W48 flags", "2026-11 flags", "client lists"]
    import appliance.query

    def joined(*args):
        raise AssertionError("joined calls again: the warm-up left nothing ready")
    monkeypatch.setattr(appliance.query, "contacts", joined)
    monkeypatch.setattr(appliance.query, "client_lists", joined)
    q.flags("2026-11", now)
    q.flags("2026-W48", now)
    q.compare("2026-W48", now)
    q.clients(now=now)


def test_client_lists_are_kept_until_the_window_changes_or_the_hour_turns(q):
    now = at(11, 20, 12)
    q.db.calls.add(result("c1", at(10, 20, 10), "101", "79165550001"))
    first = q.clients(now=now)
    assert q.clients(now=now + 600) is first                  # nothing changed, same hour
    q.db.calls.add(result("c2", at(11, 18, 10), "101", "79165550001"))
    assert q.clients(now=now + 700) is not first              # a call in the window
    again = q.clients(now=now + 800)
    assert q.clients(now=now + 3600) is not again             # the hour turned


# --- an office month worked out by hand: queues, a transfer, callbacks by a colleague, a
# miss on the last evening of the month called back after midnight, three currencies ---
def office_month(q):
    q.settings.kpi.teams = {"sales": ["101", "102"], "support": ["103"]}
    q.settings.kpi.names = {"101": "Anna", "102": "Boris", "103": "Vera"}
    q.settings_changed()
    d = 20
    rows = [
        # q1: the queue rang 101, 102 and 103, nobody answered; 103 called back 30 min later
        cdr("q1a", at(10, d, 9), "79160000001", "101", group="q1"),
        cdr("q1b", at(10, d, 9), "79160000001", "102", group="q1"),
        cdr("q1c", at(10, d, 9), "79160000001", "103", group="q1"),
        cdr("q1cb", at(10, d, 9, 30), "103", "79160000001", answer=at(10, d, 9, 30, 5), billsec=90),
        # q2: the queue rang 101 (no answer) and 102 (answered after 20 s, 200 s of talk)
        cdr("q2a", at(10, d, 10), "79160000002", "101", group="q2"),
        cdr("q2b", at(10, d, 10), "79160000002", "102", answer=at(10, d, 10, 0, 20), billsec=200,
            group="q2"),
        # t1: 101 answered after 10 s, talked 120 s and transferred to 102, who talked 300 s
        cdr("t1a", at(10, d, 11), "79160000003", "101", answer=at(10, d, 11, 0, 10), billsec=120,
            group="t1"),
        cdr("t1b", at(10, d, 11, 2, 10), "79160000003", "102", answer=at(10, d, 11, 2, 15),
            billsec=300, group="t1"),
        # m1: missed by 101 alone; 102 called back 5 min later (fast) and reached the client
        cdr("m1", at(10, d, 12), "79160000004", "101"),
        cdr("m1cb", at(10, d, 12, 5), "102", "89160000004", answer=at(10, d, 12, 5, 8), billsec=60),
        # m2: missed by 102 alone, never called back
        cdr("m2", at(10, d, 13), "79160000005", "102"),
        # o1: 101 called a client, 180 s
        cdr("o1", at(10, d, 14), "101", "79160000006", answer=at(10, d, 14, 0, 6), billsec=180),
        # e1: missed by 101 at 23:30 on 31 October; 101 called back at 00:20 on 1 November
        # (50 min: slow) and did not reach the client
        cdr("e1", at(10, 31, 23, 30), "79160000007", "101"),
        cdr("e1cb", at(11, 1, 0, 20), "101", "79160000007"),
        # n1: 103 answered a call in November
        cdr("n1", at(11, 2, 10), "79160000008", "103", answer=at(11, 2, 10, 0, 5), billsec=100),
    ]
    assert q.add_cdr(rows, "pbx")["errors"] == []
    q.db.calls.add_many([
        result("r-t1", at(10, d, 11, 0, 11), "101", "79160000003", score=80),
        result("r-q2", at(10, d, 10, 0, 21), "102", "79160000002", score=60),
        result("r-o1", at(10, d, 14, 0, 7), "101", "79160000006", direction="outbound", score=90),
        result("r-n1", at(11, 2, 10, 0, 6), "103", "79160000008", score=70)])
    q.post_outcome("r-t1", {"result": "won", "amount": 500, "currency": "EUR"}, "crm")
    q.post_outcome("r-q2", {"result": "won", "amount": 1000}, "crm")      # kpi.currency: RUB
    q.post_outcome("r-o1", {"result": "won", "amount": 200, "currency": "usd"}, "crm")
    q.post_outcome("r-n1", {"result": "won", "amount": 700, "currency": "RUB"}, "crm")


def test_office_month_worked_out_by_hand(q):
    office_month(q)
    k = q.kpis("2026-10", now=LATER)
    o = k["office"]
    # inbound: q1 q2 t1 m1 m2 e1 = 6 (the queue calls once each); answered q2, t1
    assert (o["calls_in"], o["answered_in"], o["missed"], o["missed_rang"]) == (6, 2, 4, 4)
    # q1 and e1 called back within 24 h but after 20 min, m1 within 20 min, m2 never
    assert (o["missed_called_back_slow"], o["missed_called_back_fast"], o["missed_never"]) == (2, 1, 1)
    assert o["answer_rate"] == round(2 / 6, 4)
    assert o["missed_never_share"] == 0.25                            # 1 of 4 missed
    assert o["missed_never_share_of_inbound"] == round(1 / 6, 4)      # 1 of 6 inbound
    # outbound: q1cb m1cb o1, all reached; the callbacks q1cb (1800 s) and m1cb (300 s)
    assert (o["calls_out"], o["outbound_reached"], o["callbacks"]) == (3, 3, 2)
    assert o["median_callback_s"] == 1050.0                           # (300 + 1800) / 2
    # conversations: q1cb 90 + q2 200 + t1 (120 + 300) + m1cb 60 + o1 180 = 950 s in 5
    assert (o["conversations"], o["talk_s"], o["avg_duration_s"]) == (5, 950.0, 190.0)
    assert o["avg_time_to_answer_s"] == 15.0                          # (20 + 10) / 2
    assert o["revenue"] == {"EUR": 500.0, "RUB": 1000.0, "USD": 200.0}   # never added up
    assert o["avg_score"] == round((80 + 60 + 90) / 3, 4)

    anna, boris, vera = (k["managers"][a] for a in ("101", "102", "103"))
    assert (anna["name"], boris["name"], vera["name"]) == ("Anna", "Boris", "Vera")
    # Anna: answered t1; missed m1 and e1 alone; the queue call q1 rang her too
    assert (anna["calls_in"], anna["answered_in"], anna["missed"], anna["missed_rang"]) == (3, 1, 2, 3)
    assert (anna["missed_called_back_fast"], anna["missed_called_back_slow"],
            anna["missed_never"]) == (1, 1, 0)
    assert anna["missed_never_share"] == 0.0 and anna["answer_rate"] == round(1 / 3, 4)
    # her own legs only: t1 120 s (not the 300 s after the transfer) and o1 180 s
    assert (anna["conversations"], anna["talk_s"], anna["avg_duration_s"]) == (2, 300.0, 150.0)
    assert (anna["callbacks"], anna["median_callback_s"]) == (0, None)   # e1's came in November
    assert anna["revenue"] == {"EUR": 500.0, "USD": 200.0} and anna["avg_score"] == 85.0
    # Boris: answered q2; missed m2 alone (never called back); rang on q1; took t1's transfer;
    # called back Anna's m1
    assert (boris["calls_in"], boris["answered_in"], boris["missed"],
            boris["missed_rang"]) == (2, 1, 1, 2)
    assert boris["missed_never"] == 1 and boris["missed_never_share"] == 1.0
    # talk: q2 200 + t1 after the transfer 300 + m1cb 60
    assert (boris["conversations"], boris["transfers_in"], boris["talk_s"]) == (3, 1, 560.0)
    assert (boris["callbacks"], boris["callbacks_reached"],
            boris["median_callback_s"]) == (1, 1, 300.0)
    assert boris["revenue"] == {"RUB": 1000.0}
    # Vera: only rang on q1, and called it back
    assert (vera["calls_in"], vera["missed"], vera["missed_rang"]) == (0, 0, 1)
    assert (vera["calls_out"], vera["callbacks"], vera["median_callback_s"],
            vera["talk_s"]) == (1, 1, 1800.0, 90.0)
    # the managers' own misses and the queue miss add up to the office's: 2 + 1 + 0 + q1 = 4
    assert anna["missed"] + boris["missed"] + vera["missed"] + 1 == o["missed"]
    assert anna["talk_s"] + boris["talk_s"] + vera["talk_s"] == o["talk_s"]

    sales, support = k["teams"]["sales"], k["teams"]["support"]
    # sales: every inbound call rang a member (6), q1 once; t1's two legs are both theirs
    assert (sales["calls_in"], sales["missed"], sales["calls_out"], sales["callbacks"]) == (6, 4, 2, 1)
    assert (sales["conversations"], sales["talk_s"]) == (4, 860.0)    # q2 200, t1 420, m1cb 60, o1 180
    assert (support["calls_in"], support["missed"], support["callbacks"],
            support["talk_s"]) == (1, 1, 1, 90.0)

    nov = q.kpis("2026-11", now=LATER)
    # e1's callback is Anna's, in November, when she made it: 50 min, not reached
    a11 = nov["managers"]["101"]
    assert (a11["calls_out"], a11["outbound_reached"], a11["callbacks"],
            a11["callbacks_reached"]) == (1, 0, 1, 0)
    assert a11["median_callback_s"] == 3000.0
    assert (nov["office"]["calls_in"], nov["office"]["missed"]) == (1, 0)
    assert nov["office"]["revenue"] == {"RUB": 700.0}
    # ISO week 44 (26 October - 1 November) holds e1 and its callback across the month's end
    w44 = q.kpis("2026-W44", now=LATER)["office"]
    assert (w44["calls_in"], w44["missed"], w44["missed_called_back_slow"], w44["callbacks"]) == (1, 1, 1, 1)
    # the missed-calls list says who called back
    back = {m["group"]: m["callback"] for m in q.missed("2026-10", now=LATER)}
    assert (back["m1"]["by"], back["q1"]["by"], back["e1"]["by"]) == ("102", "103", "101")
    assert back["e1"]["reached"] is False and back["m2"]["status"] == "never"


def test_a_running_period_is_compared_to_date(q):
    # 1 October 09:00 and 2 October 15:00; 'now' is 2 November 12:00: November to date
    # (1 day and 12 h) against 1 October and 2 October until 12:00, which holds one call
    q.add_cdr([cdr("a", at(10, 1, 9), "79160000011", "103", answer=at(10, 1, 9, 0, 5), billsec=60),
               cdr("b", at(10, 2, 15), "79160000012", "103", answer=at(10, 2, 15, 0, 5), billsec=60),
               cdr("c", at(10, 20, 9), "79160000013", "103", answer=at(10, 20, 9, 0, 5), billsec=60),
               cdr("n", at(11, 2, 10), "79160000014", "103", answer=at(11, 2, 10, 0, 5), billsec=60)],
              "pbx")
    now = at(11, 2, 12)
    cmp = q.compare("2026-11", now=now)
    assert cmp["to_date"] is True
    assert cmp["office"]["current"]["calls_in"] == 1
    assert cmp["office"]["vs_previous"]["calls_in"] == {"delta": 0, "relative": 0.0}   # 1 vs 1
    # the whole of October had 3: that is what a finished November is compared with
    later = q.compare("2026-11", now=LATER)
    assert "to_date" not in later and later["office"]["vs_previous"]["calls_in"]["delta"] == -2


def test_plans_progress_forecast_and_who_is_behind(q):
    from appliance.kpi.plans import PlanError

    q.settings.kpi.teams = {"sales": ["101", "102"]}
    rows = []
    for day in range(2, 8):                       # 2-7 November: 10 calls a day to 101
        for i in range(10):
            t = at(11, day, 9 + i)
            if i < 8:
                rows.append(cdr(f"{day}-{i}", t, f"7916200{day:02d}{i:02d}", "101", answer=t + 5, billsec=60))
            else:
                rows.append(cdr(f"{day}-{i}", t, f"7916200{day:02d}{i:02d}", "101"))
    q.add_cdr(rows, "pbx")
    q.db.calls.add(result("won1", at(11, 3, 9, 0, 6), "101", "79162000300"))
    q.post_outcome("won1", {"result": "won", "amount": 5000}, "crm")           # RUB
    q.db.calls.add(result("won2", at(11, 3, 10, 0, 6), "101", "79162000301"))
    q.post_outcome("won2", {"result": "won", "amount": 900, "currency": "EUR"}, "crm")
    for plan in ({"scope": "manager", "who": "101", "kind": "month", "metric": "calls", "target": 300},
                 {"scope": "manager", "who": "101", "kind": "month", "metric": "answer_rate", "target": 0.75},
                 {"scope": "manager", "who": "101", "kind": "month", "metric": "revenue", "target": 10000},
                 {"scope": "team", "who": "sales", "kind": "month", "metric": "calls", "target": 150},
                 {"scope": "manager", "who": "101", "kind": "week", "metric": "calls", "target": 50}):
        q.save_plan(plan, "boss")
    q.save_plan({"scope": "manager", "who": "101", "kind": "month", "metric": "calls", "target": 300}, "boss")
    assert len(q.plan_list()) == 5                                   # the same plan replaced
    base = {"scope": "manager", "who": "101", "kind": "month", "metric": "calls", "target": 1}
    for bad, msg in [({"scope": "team", "who": "nobody"}, "team"),
                     ({"metric": "answer_rate", "target": 90}, "share"),
                     ({"kind": "year"}, "kind"), ({"target": True}, "target"),
                     ({"who": "a/b"}, "who"), ({"who": "<script>"}, "who"), ({"who": "x\ny"}, "who")]:
        with pytest.raises(PlanError, match=msg):
            q.save_plan({**base, **bad}, "boss")
    now = at(11, 10, 12)             # 9.5 of November's 30 days gone: 0.3167 of the month
    got = {p["id"]: p for p in q.plans(now)}
    calls = got["manager:101:month:calls"]
    # 60 calls so far; at that pace 60 / (9.5 / 30) = 189.47 by the end: short of 300
    assert (calls["value"], calls["forecast"], calls["status"]) == (60, 189.47, "behind")
    assert calls["share"] == 0.2 and calls["elapsed"] == round(9.5 / 30, 4)
    rate = got["manager:101:month:answer_rate"]
    assert (rate["value"], rate["status"]) == (0.8, "on_track")      # 48 of 60 answered
    revenue = got["manager:101:month:revenue"]
    # only roubles count toward a plan in kpi.currency: 5000 / 0.3167 = 15789.47 >= 10000
    assert (revenue["value"], revenue["forecast"], revenue["status"]) == (5000.0, 15789.47, "on_track")
    team = got["team:sales:month:calls"]
    assert (team["value"], team["status"]) == (60, "on_track")        # 189.47 >= 150
    week = got["manager:101:week:calls"]
    # the week of 9 November: 1.5 of 7 days gone (over a fifth), no call yet
    assert (week["value"], week["forecast"], week["status"]) == (0, 0.0, "behind")
    assert [p["status"] for p in q.plans(now)][:2] == ["behind", "behind"]   # behind first
    # on Monday morning a week's plan is too young to judge
    monday = {p["id"]: p for p in q.plans(at(11, 9, 12))}
    assert monday["manager:101:week:calls"]["status"] == "early"
    behind = [a for a in q.alerts(now=now) if a["kind"] == "plan_behind"]
    assert sorted(a["plan"] for a in behind) == ["manager:101:month:calls", "manager:101:week:calls"]
    q.delete_plan("manager:101:week:calls", "boss")
    with pytest.raises(NotFound):
        q.delete_plan("manager:101:week:calls", "boss")
    assert [e["action"] for e in q.db.audit.recent(2)] == ["plan deleted", "plan saved"]


def test_calls_list_sorts_by_each_figure_with_the_unknown_last(q):
    # (uid, duration, agent talk share, interruptions by the agent, dead air, score)
    rows = [("a", 61.0, 0.7, 3, 0.02, 70), ("b", 300.0, 0.4, 0, 0.20, None),
            ("c", 15.0, 0.55, 5, 0.10, 95)]
    q.db.calls.add_many([result(u, at(11, 3, 10 + i), "101", score=s, duration=d, talk_share=t,
                                interruptions=n, dead_air=a)
                         for i, (u, d, t, n, a, s) in enumerate(rows)])

    def order(sort, way="desc"):
        return [c["uid"] for c in q.calls("2026-11", sort=sort, order=way)["calls"]]

    assert order("date") == ["c", "b", "a"] and order("date", "asc") == ["a", "b", "c"]
    assert order("duration") == ["b", "a", "c"] and order("duration", "asc") == ["c", "a", "b"]
    assert order("talk_share") == ["a", "c", "b"]
    assert order("interruptions") == ["c", "a", "b"]
    assert order("dead_air", "asc") == ["a", "c", "b"]
    # b has no score: last whichever way
    assert order("score") == ["c", "a", "b"] and order("score", "asc") == ["a", "c", "b"]
