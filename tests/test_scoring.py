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
