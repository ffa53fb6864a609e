"""Call-level events and holds from the detector's raw tones, key presses and music."""

import pytest

from appliance.analysis.events import call_events
from appliance.config import ConversationSettings

CONV = ConversationSettings()


def f(t: float) -> int:
    return int(round(t * 50))


def tone(a: float, b: float, f1: float, f2: float = 0.0) -> tuple:
    return ("tone", f(a), f(b), f1, f2, -20.0)


def cadence(start: float, on: float, off: float, count: int, f1: float, f2: float = 0.0):
    return [tone(start + k * (on + off), start + k * (on + off) + on, f1, f2) for k in range(count)]


def kinds(events):
    return [(e["kind"], e["party"], e["start"], e["end"]) for e in events]


def test_call_progress_tones_are_named_by_pitch_and_cadence():
    raw = {"client": cadence(0.5, 1.0, 4.0, 3, 425) + cadence(16.0, 0.5, 0.5, 6, 426)
           + [tone(30, 35, 350, 440)]}
    events, holds = call_events(raw, {}, CONV)
    assert kinds(events) == [("ringback", "client", 0.5, 11.5), ("busy", "client", 16.0, 21.5),
                             ("dial", "client", 30.0, 35.0)]
    assert events[0]["bursts"] == 3 and events[0]["hz"] == [425]
    assert events[2]["hz"] == [350, 440]
    assert holds == []


def test_sit_fax_and_lone_blips():
    sit = [tone(1.0, 1.33, 950), tone(1.33, 1.66, 1400), tone(1.66, 2.0, 1800)]
    sit2 = [tone(3.0, 3.33, 950), tone(3.33, 3.66, 1400), tone(3.66, 4.0, 1800)]
    raw = {"client": sit + sit2 + cadence(10, 0.5, 3.0, 3, 1100),
           "agent": [tone(5.0, 5.3, 600), tone(20, 23, 2100)]}
    events, _ = call_events(raw, {}, CONV)
    assert kinds(events) == [("sit", "client", 1.0, 4.0), ("fax", "client", 10.0, 17.5),
                             ("fax", "agent", 20.0, 23.0)]


def test_dtmf_digits_only_when_allowed():
    keys = [("dtmf", f(10 + 0.3 * i), f(10 + 0.3 * i + 0.1), k) for i, k in enumerate("4276")]
    keys += [("dtmf", f(30), f(30.1), "#")]
    events, _ = call_events({"client": keys}, {}, CONV)
    assert [(e["kind"], e["keys"], e["start"]) for e in events] == [("dtmf", 4, 10.0),
                                                                     ("dtmf", 1, 30.0)]
    assert all("digits" not in e for e in events)
    events, _ = call_events({"client": keys}, {}, ConversationSettings(dtmf_digits=True))
    assert [e["digits"] for e in events] == ["4276", "#"]


def test_music_is_a_hold_joined_across_short_gaps_without_speech():
    raw = {"agent": [("music", f(10), f(20)), ("music", f(22), f(30)),
                     ("music", f(45), f(48)), tone(12, 12.8, 523)]}
    speech = {"agent": [(f(0), f(9)), (f(31), f(40))], "client": []}
    events, holds = call_events(raw, speech, CONV)
    # the tone inside the music is a note; 3 s of music alone is not a hold
    assert kinds(events) == [("music", "agent", 10.0, 30.0), ("music", "agent", 45.0, 48.0)]
    assert holds == [{"party": "agent", "start": 10.0, "end": 30.0, "duration_s": 20.0,
                      "by": ["music"]}]
    # the agent speaking between two stretches of music: two holds
    speech["agent"].append((f(20.5), f(21.8)))
    _, holds = call_events(raw, speech, CONV)
    assert [(h["start"], h["end"]) for h in holds] == [(10.0, 20.0), (22.0, 30.0)]


def test_a_long_tone_between_speech_is_a_hold_and_sip_holds_merge():
    raw = {"agent": cadence(10, 0.5, 1.5, 10, 1400)}
    speech = {"agent": [(f(0), f(9))], "client": [(f(31), f(35))]}
    events, holds = call_events(raw, speech, CONV, sip_holds=[("agent", f(9.5), f(29.0))])
    assert kinds(events) == [("tone", "agent", 10.0, 28.5)]
    assert holds == [{"party": "agent", "start": 9.5, "end": 29.0, "duration_s": 19.5,
                      "by": ["sip", "tone"]}]
    # the same tone before anyone spoke (a ringback) is no hold
    _, holds = call_events(raw, {"client": [(f(31), f(35))]}, CONV)
    assert holds == []


@pytest.mark.parametrize("raw", [{}, {"agent": [], "client": []}])
def test_nothing_gives_nothing(raw):
    assert call_events(raw, {}, CONV) == ([], [])
