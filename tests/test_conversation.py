"""The conversation state machine on synthetic timelines (segments in 20 ms frames)."""

import pytest

from appliance.analysis.call_metrics import conversation_metrics
from appliance.config import ConversationSettings

CONV = ConversationSettings()   # backchannel 0.75 s, overlap 0.2 s, turn pause 1 s, dead air 3 s


def s(a: float, b: float) -> tuple[int, int]:
    return int(round(a * 50)), int(round(b * 50))


def analyse(agent, client, duration):
    return conversation_metrics([s(*x) for x in agent], [s(*x) for x in client],
                                int(duration * 50), CONV)


def test_interruption_vs_backchannel():
    # agent talks 0-10 s; client says "ага" (0.4 s) at 3 s, then cuts in at 7 s for 3 s
    r = analyse([(0, 10)], [(3, 3.4), (7, 10)], 12)
    assert r["interruptions"] == [{"by": "client", "of": "agent", "at": 7.0}]
    assert r["parties"]["client"]["interruptions_made"] == 1
    assert r["parties"]["client"]["backchannels"] == 1
    assert r["parties"]["agent"]["interruptions_made"] == 0
    assert {"start": 3.0, "end": 3.4} in r["overlaps"] and {"start": 7.0, "end": 10.0} in r["overlaps"]


def test_backchannel_then_real_cut_in_is_an_interruption():
    # client: "ага" at 3.0-3.4, then 0.6 s later cuts in for real over the agent
    r = analyse([(0, 10)], [(3, 3.4), (4.0, 7)], 10)
    assert r["interruptions"] == [{"by": "client", "of": "agent", "at": 4.0}]
    assert r["parties"]["client"]["backchannels"] == 1


def test_backchannels_do_not_hold_the_floor():
    # agent's "угу" at 2.0 during the client's turn; the client's reply to a later agent
    # question is not "interrupting" that backchannel
    r = analyse([(2.0, 2.3), (6, 9)], [(0, 5.5), (8.5, 12)], 12)
    assert [(i["by"], i["at"]) for i in r["interruptions"]] == [("client", 8.5)]


def test_a_cut_in_that_opens_with_a_short_word_and_a_breath_is_an_interruption():
    # agent talks 0-10 s; the client: "Нет," (0.5 s), a 0.26 s breath, then goes on over
    # the agent, who stops 0.9 s after the cut-in: the detector's two segments are one phrase
    r = analyse([(0, 8.4)], [(7.5, 8.0), (8.26, 12)], 12)
    assert r["interruptions"] == [{"by": "client", "of": "agent", "at": 7.5}]
    assert r["parties"]["client"]["backchannels"] == 0
    # "ага", then a longer pause, then "ага" again: two backchannels, no cut-in
    r = analyse([(0, 10)], [(3, 3.4), (4.0, 4.4)], 10)
    assert r["interruptions"] == [] and r["parties"]["client"]["backchannels"] == 2


def test_backchannel_of_0_7_s_is_not_an_interruption():
    r = analyse([(0, 10)], [(4, 4.7)], 10)
    assert r["interruptions"] == [] and r["parties"]["client"]["backchannels"] == 1


def test_backchannel_threshold_is_configurable():
    conv = ConversationSettings(backchannel_max_s=0.3, overlap_min_s=0.1)
    r = conversation_metrics([s(0, 10)], [s(3, 3.4)], 600, conv)
    assert [i["by"] for i in r["interruptions"]] == ["client"]


def test_interrupted_party_stopping_at_once_is_still_interrupted():
    # client cuts in at 5 s; the agent gives up 0.3 s later
    r = analyse([(0, 5.3)], [(5, 9)], 10)
    assert r["interruptions"] == [{"by": "client", "of": "agent", "at": 5.0}]


def test_reply_after_a_gap_or_tiny_overlap_is_not_an_interruption():
    r = analyse([(0, 4)], [(4.5, 8)], 9)            # normal reply
    assert r["interruptions"] == [] and r["overlaps"] == []
    r = analyse([(0, 4)], [(3.9, 8)], 9)            # starts 0.1 s early: latching
    assert r["interruptions"] == []


def test_cut_in_during_a_phrase_pause_counts_and_resuming_does_not():
    # agent pauses 0.5 s between phrases (3-3.5); client starts at 3.2 and talks on;
    # the agent resumes at 3.5 over the client for a second and then stops
    r = analyse([(0, 3), (3.5, 4.5)], [(3.2, 8)], 9)
    assert r["interruptions"] == [{"by": "client", "of": "agent", "at": 3.2}]


def test_simultaneous_start_is_not_an_interruption():
    r = analyse([(1, 5)], [(1.1, 4)], 6)
    assert r["interruptions"] == []


def test_dead_air_inside_and_at_the_edges():
    r = analyse([(4, 6)], [(10, 12)], 20)
    assert r["silences"] == [
        {"start": 0.0, "end": 4.0, "position": "lead"},
        {"start": 6.0, "end": 10.0, "position": "inner"},
        {"start": 12.0, "end": 20.0, "position": "tail"},
    ]
    assert r["totals"]["dead_air_s"] == 4.0
    assert r["totals"]["dead_air_share"] == pytest.approx(0.2)


def test_short_gaps_are_not_dead_air():
    r = analyse([(0, 5), (12, 14)], [(6, 11)], 14)
    assert r["silences"] == []
    assert r["totals"]["dead_air_s"] == 0


def test_both_parties_silent():
    r = analyse([], [], 30)
    assert r["silences"] == [{"start": 0.0, "end": 30.0, "position": "whole"}]
    assert r["parties"]["agent"]["talk_share"] == 0.0 and r["totals"]["turns"] == 0
    assert r["segments"] == [] and r["interruptions"] == []


def test_one_party_absent():
    r = analyse([(1, 5), (6, 9)], [], 10)
    assert r["parties"]["agent"]["talk_share"] == 1.0
    assert r["parties"]["client"]["talk_s"] == 0.0
    assert r["parties"]["agent"]["turns"] == 1
    assert r["parties"]["agent"]["longest_monologue_s"] == 8.0
    assert r["parties"]["agent"]["reply_latency_s"] is None


def test_talk_share_turns_monologue_and_reply_latency():
    agent = [(0, 10), (11.5, 13)]                  # one turn 0-13 (1.5 s pause... new turn)
    client = [(13.5, 16), (18, 19)]
    r = analyse(agent, client, 20)
    a, c = r["parties"]["agent"], r["parties"]["client"]
    assert a["talk_s"] == 11.5 and c["talk_s"] == 3.5
    assert a["talk_share"] == pytest.approx(11.5 / 15, abs=1e-4)
    assert a["turns"] == 1 and c["turns"] == 1    # pauses under dead_air keep the turn
    assert a["longest_monologue_s"] == 13.0
    assert c["reply_latency_s"] == 0.5
    assert r["totals"]["turns"] == 2


def test_long_pause_ends_a_monologue():
    r = analyse([(0, 5), (9, 12)], [], 12)
    assert r["parties"]["agent"]["turns"] == 2
    assert r["parties"]["agent"]["longest_monologue_s"] == 5.0


def test_segments_are_listed_in_time_order_with_parties():
    r = analyse([(0, 2), (5, 6)], [(2.5, 4)], 7)
    assert [(x["party"], x["start"]) for x in r["segments"]] == [
        ("agent", 0.0), ("client", 2.5), ("agent", 5.0)]


def hold(a: float, b: float, party: str = "agent") -> dict:
    return {"party": party, "start": a, "end": b, "duration_s": round(b - a, 2), "by": ["music"]}


def test_a_hold_is_not_dead_air_nor_a_break_in_the_turn_nor_reply_latency():
    # agent: "one moment" 0-4 s, 20 s of hold music (4.5-24.5), back at 25 s; the client
    # answers 1 s after the agent's next turn
    agent, client = [(0, 4), (25, 30)], [(31, 35)]
    without = analyse(agent, client, 36)
    assert without["totals"]["dead_air_s"] == pytest.approx(21.0)
    assert without["totals"]["hold_s"] == 0.0
    r = conversation_metrics([s(*x) for x in agent], [s(*x) for x in client], 36 * 50, CONV,
                             [hold(4.5, 24.5)])
    assert r["totals"]["dead_air_s"] == 0.0
    assert r["totals"]["hold_s"] == pytest.approx(20.0)
    assert r["holds"] == [hold(4.5, 24.5)]
    # the agent's turn goes on across the hold: one agent turn, then the client's
    assert r["parties"]["agent"]["turns"] == 1 and without["parties"]["agent"]["turns"] == 2
    assert r["totals"]["talk_s"] == without["totals"]["talk_s"] == pytest.approx(13.0)
    assert r["parties"]["client"]["reply_latency_s"] == pytest.approx(1.0)


def test_reply_latency_does_not_count_the_hold():
    # the client asks (0-3), the agent puts them on hold (3.2-13.2) and answers at 13.8
    r = conversation_metrics([s(13.8, 18)], [s(0, 3)], 20 * 50, CONV, [hold(3.2, 13.2)])
    assert r["parties"]["agent"]["reply_latency_s"] == pytest.approx(0.8)
    assert r["totals"]["dead_air_s"] == 0.0
