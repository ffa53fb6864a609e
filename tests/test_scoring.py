"""Checklist evaluation on hand-made call results."""

import pytest

from appliance.analysis.scoring import ChecklistError, load_checklist, parse_checklist, score_call


def call(tags=(), agent_share=0.5, agent_interruptions=0, dead_air=0.02, asr="ok", holds=()):
    return {
        "asr": {"status": asr},
        "tags": [{"tag": t, "party": p, "at": at, "text": t} for t, p, at in tags],
        "parties": {"agent": {"talk_share": agent_share, "interruptions_made": agent_interruptions}},
        "totals": {"dead_air_share": dead_air, "holds": len(holds),
                   "longest_hold_s": max(holds, default=0.0)},
    }


def items(score):
    return {i["id"]: i["passed"] for i in score["items"]}


def test_a_model_call_scores_100():
    checklist = load_checklist()
    good = call([("greeting", "agent", 1.0), ("introduction", "agent", 2.0),
                 ("farewell", "agent", 80.0)])
    s = score_call(good, checklist)
    assert s["total"] == 100 and all(items(s).values())


def test_each_rule_can_fail():
    s = score_call(call([("greeting", "agent", 20.0), ("profanity", "agent", 5.0),
                         ("stop_words", "agent", 3.0), ("stop_words", "agent", 9.0)],
                        agent_share=0.8, agent_interruptions=3, dead_air=0.2,
                        holds=(20.0, 75.0, 10.0)), load_checklist())
    got = items(s)
    assert got == {"greeting": False, "introduction": False, "no_profanity": False,
                   "stop_words": False, "interruptions": False, "talk_share": False,
                   "dead_air": False, "longest_hold": False, "holds": False, "farewell": False}
    assert s["total"] == 0
    evidence = {i["id"]: i["evidence"] for i in s["items"]}
    assert "20.0 s" in evidence["greeting"] and "2 found" in evidence["stop_words"]
    assert evidence["longest_hold"] == "totals.longest_hold_s = 75"


def test_two_short_holds_pass_the_hold_rules():
    got = items(score_call(call(holds=(30.0, 45.0)), load_checklist()))
    assert got["longest_hold"] is True and got["holds"] is True


def test_weights():
    c = parse_checklist("checklist = 't'\n"
                        "[[items]]\nid = 'a'\nrule = 'metric_max'\nmetric = 'totals.dead_air_share'\n"
                        "max = 0.1\nweight = 3\n"
                        "[[items]]\nid = 'b'\nrule = 'tag_present'\ntag = 'farewell'\nweight = 1\n",
                        "t.toml")
    assert score_call(call(), c)["total"] == 75


def test_client_profanity_does_not_cost_the_agent():
    s = score_call(call([("profanity", "client", 4.0)]), load_checklist())
    assert items(s)["no_profanity"] is True


def test_without_transcript_only_metrics_count():
    s = score_call(call(asr="unavailable"), load_checklist())
    got = items(s)
    assert got["greeting"] is None and got["farewell"] is None
    assert got["talk_share"] is True
    assert s["total"] == 100          # over the evaluated items only


@pytest.mark.parametrize("text, message", [
    ("checklist = 'x'", "at least one"),
    ("checklist = 'x'\n[[items]]\nid = 'a'\nrule = 'vibes'\nweight = 1", "rule must be"),
    ("checklist = 'x'\n[[items]]\nid = 'a'\nrule = 'tag_present'\nweight = 1", "needs tag"),
    ("checklist = 'x'\n[[items]]\nid = 'a'\nrule = 'tag_present'\ntag = 't'\nweight = 0",
     "weight"),
])
def test_bad_checklists_are_named(text, message):
    with pytest.raises(ChecklistError, match=message):
        parse_checklist(text, "c.toml")


def test_evidence_is_kept_as_data_for_the_panel_to_word():
    s = score_call(call([("greeting", "agent", 20.0), ("stop_words", "agent", 3.0),
                         ("stop_words", "agent", 9.0)], agent_interruptions=3), load_checklist())
    detail = {i["id"]: i["detail"] for i in s["items"]}
    assert detail["interruptions"] == {"rule": "metric_max", "value": 3, "max": 2,
                                       "metric": "parties.agent.interruptions_made"}
    assert detail["talk_share"]["min"] == 0.3 and detail["talk_share"]["max"] == 0.65
    assert detail["greeting"] == {"rule": "tag_within", "tag": "greeting", "party": "agent",
                                  "count": 1, "text": "greeting", "at": 20.0, "within_s": 15}
    assert detail["stop_words"]["count"] == 2 and detail["stop_words"]["max"] == 1
    assert detail["introduction"]["count"] == 0
    unscored = score_call(call(asr="failed"), load_checklist())
    assert {i["id"]: i["detail"] for i in unscored["items"]}["greeting"] == {"missing": "transcript"}


def test_a_furious_client_makes_a_problem_call_whatever_the_agents_score():
    from appliance.analysis.problems import problem_alert, problem_reasons
    from appliance.store.records import call_record

    furious = call([("greeting", "agent", 1.0), ("introduction", "agent", 2.0),
                    ("farewell", "agent", 80.0), ("complaints", "client", 10.0),
                    ("profanity", "client", 12.0)])
    furious["call"] = {"call_id": "f1", "started_at": 1.0}
    assert score_call(furious, load_checklist())["total"] == 100      # the agent did well
    assert problem_reasons(furious) == ["complaint", "profanity"]
    record = call_record(furious)
    assert record["problems"] == ["complaint", "profanity"]
    assert problem_alert(record) == {"kind": "problem_call", "severity": "critical",
                                     "reasons": ["complaint", "profanity"]}
    # the agent's own swearing is the checklist's business, not the client's signal
    assert problem_reasons(call([("profanity", "agent", 5.0)])) == []


def test_objections_left_unanswered_long_overlaps_and_holds():
    from appliance.analysis.problems import problem_alert, problem_reasons

    def with_(tags=(), segments=(), overlaps=(), **extra):
        r = call(tags)
        r.update(segments=[{"party": p, "start": a, "end": b} for p, a, b in segments],
                 overlaps=[{"start": a, "end": b} for a, b in overlaps], **extra)
        return r

    objection = [("objections", "client", 10.0)]
    # the agent says 1.5 s in the 20 s after the objection: let pass; 4 s: answered
    assert problem_reasons(with_(objection, [("agent", 0, 5), ("agent", 28.5, 40)])) == [
        "unanswered_objection"]
    assert problem_reasons(with_(objection, [("agent", 0, 5), ("agent", 12, 16)])) == []
    # one overlap of 3 s, or 12 s in all, is talking over each other; backchannels are not
    assert problem_reasons(with_(overlaps=[(5, 8)])) == ["long_overlap"]
    assert problem_reasons(with_(overlaps=[(i * 10, i * 10 + 2) for i in range(6)])) == ["long_overlap"]
    assert problem_reasons(with_(overlaps=[(5, 5.6), (9, 9.4)])) == []
    # a hold of 2 minutes or more, from the hold list or the total
    assert problem_reasons(with_(holds=[{"start": 30, "end": 160}])) == ["long_hold"]
    assert problem_reasons(with_(holds=[{"start": 30, "end": 60}])) == []
    assert problem_reasons(with_(totals={"dead_air_share": 0.0, "hold_s": 150})) == ["long_hold"]
    # a record stored before reasons were kept: its client tags stand for them
    assert problem_alert({"tags": {"complaints": 1}})["reasons"] == ["complaint"]
    assert problem_alert({"tags": {"greeting": 1}}) is None
