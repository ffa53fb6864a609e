"""`appliance demo`: scripts, the voices, and the whole demo against a real `appliance run`
on embedded defaults (relative data directory, SIP front with capture workers, local broker,
speech recognition): calls over SIPREC, PBX records over the API, alerts over MQTT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from appliance.simulate.dialogue import YIELD_S, ScriptError, Turn, assemble, load_scripts
from appliance.simulate.voice import render, trim
from waiting import free_port, wait_for

RATE = 16000
BUILT_IN = Path(__file__).resolve().parents[1] / "appliance" / "simulate" / "demo_calls.toml"


def _tone(seconds: float, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_built_in_scripts_load_and_name_their_expectations():
    scripts = load_scripts(BUILT_IN)
    assert [s.id for s in scripts] == ["polite", "interruptions", "complaint"]
    assert all(s.expect for s in scripts)
    pushy = scripts[1]
    assert pushy.direction == "outbound" and pushy.caller == pushy.agent
    assert sum(t.interrupt is not None and t.who == "agent" for t in pushy.turns) >= 3


@pytest.mark.parametrize("body, error", [
    ("[[calls]]\nid='x'\ntitle='x'\ndirection='sideways'\nagent='1'\nclient='2'\n"
     "turns=[{who='agent', say='a'}, {who='client', say='b'}]", "direction"),
    ("[[calls]]\nid='x'\ntitle='x'\ndirection='inbound'\nagent='1'\nclient='2'\n"
     "turns=[{who='agent', say='a'}, {who='boss', say='b'}]", "turns[1]"),
    ("[[calls]]\nid='x'\ntitle='x'\ndirection='inbound'\nagent='1'\nclient='2'\n"
     "turns=[{who='agent', say='a'}, {who='client', say='b', interrupt=1.5}]", "fraction"),
    ("[[calls]]\nid='x'\ntitle='x'\ndirection='inbound'\nagent='1'\nclient='2'\n"
     "turns=[{who='agent', say='a', shout=true}, {who='client', say='b'}]", "unknown keys"),
    ("[[calls]]\nid='x'\ntitle='x'\ndirection='inbound'\nagent='1'\n"
     "turns=[{who='agent', say='a'}, {who='client', say='b'}]", "client"),
    ("calls = 3", "no [[calls]]"),
    ("[[calls]\n", "demo.toml"),
])
def test_bad_scripts_are_refused_with_the_place(tmp_path, body, error):
    path = tmp_path / "demo.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ScriptError, match=error.replace("[", r"\[").replace("]", r"\]")):
        load_scripts(path)


def test_assemble_places_replies_interruptions_and_backchannels():
    turns = [Turn("agent", "a"), Turn("client", "b", after=1.0), Turn("agent", "c", interrupt=0.5),
             Turn("client", "d", over=True), Turn("client", "e", after=5.0)]
    lines = [_tone(2.0), _tone(4.0), _tone(3.0), _tone(0.3), _tone(1.0)]
    r = assemble(turns, lines, lead_s=0.5)
    agent, client = r.speech["agent"], r.speech["client"]
    assert agent[0] == pytest.approx((0.5, 2.5))
    assert client[0][0] == pytest.approx(3.5)                  # 1 s after the agent's line
    cut_in = 3.5 + 0.5 * 4.0
    assert r.interruptions == [("agent", pytest.approx(cut_in))]
    assert client[0][1] == pytest.approx(cut_in + YIELD_S)      # the client gave up
    backchannel = client[1]
    assert cut_in + YIELD_S < backchannel[0] < cut_in + 3.0     # said over the agent's line
    audio_client = np.abs(r.stereo[:, 1])
    quiet = audio_client[int((cut_in + YIELD_S + 0.05) * RATE):int((backchannel[0] - 0.05) * RATE)]
    assert quiet.size > RATE // 4 and quiet.max() < 1e-3
    assert client[2][0] == pytest.approx(cut_in + 3.0 + 5.0)    # then dead air, then a turn
    assert r.duration == pytest.approx(cut_in + 3.0 + 5.0 + 1.0 + 0.5, abs=0.01)
    assert np.max(np.abs(r.stereo)) <= 0.7 + 1e-6


def test_trim_cuts_silence_but_keeps_a_margin():
    x = np.concatenate([np.zeros(RATE), _tone(1.0), np.zeros(RATE)]).astype(np.float32)
    y = trim(x, margin_s=0.04)
    assert len(y) == pytest.approx(RATE + 2 * 0.04 * RATE, abs=20)
    assert trim(np.zeros(100, np.float32)).size == 0


def test_voice_lines_are_real_speech_whisper_understands(tmp_path):
    from appliance.asr.model import find_model
    from appliance.asr.recognizer import WhisperRecognizer

    lines = render([("Здравствуйте, компания Ромашка, меня зовут Андрей.", 1.0),
                    ("Это просто безобразие, верните деньги.", 1.15)], tmp_path)
    assert len(list(tmp_path.glob("*.wav"))) == 2
    first_mtime = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.wav")}
    again = render([("Здравствуйте, компания Ромашка, меня зовут Андрей.", 1.0)], tmp_path)
    assert np.array_equal(again[0], lines[0])                        # from the cache
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.wav")} == first_mtime
    rec = WhisperRecognizer(find_model(), "ru", "int8", threads=2)
    texts = [rec.transcribe(x).lower() for x in lines]
    assert "ромашка" in texts[0] and "андрей" in texts[0]
    assert "безобразие" in texts[1] and "верните деньги" in texts[1]


def test_demo_without_a_running_appliance_says_how_to_start_it(tmp_path):
    env = dict(os.environ, APPLIANCE_PATHS__DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-m", "appliance.cli", "demo"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "not running" in out.stderr and "appliance run" in out.stderr


@pytest.mark.slow
def test_demo_fills_the_appliance_with_real_results(tmp_path):
    env = dict(os.environ, APPLIANCE_SIP__PORT=str(free_port()), APPLIANCE_SIP__RTP_PORT=str(free_port()),
               APPLIANCE_WEB__PORT=str(free_port()), APPLIANCE_MQTT__EMBEDDED_PORT=str(free_port()),
               APPLIANCE_MQTT__BOX_ID="demo-box",
               APPLIANCE_MQTT__KPI_INTERVAL_S="3600")    # missed-call alerts come with the records
    for key in ("APPLIANCE_PATHS__DATA_DIR", "APPLIANCE_MQTT__HOST", "APPLIANCE_CONFIG"):
        env.pop(key, None)            # embedded defaults: ./data, the local broker
    daemon = subprocess.Popen([sys.executable, "-m", "appliance.cli", "run"], cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        health: dict = {}

        def up() -> bool:
            status = subprocess.run([sys.executable, "-m", "appliance.cli", "status", "--json"],
                                    cwd=tmp_path, env=env, capture_output=True, text=True)
            health.update(json.loads(status.stdout))
            return health["running"] and health["checks"]["broker"]["ok"]
        assert wait_for(up, 90, step=1.0), health
        demo = subprocess.run([sys.executable, "-m", "appliance.cli", "demo", "--json",
                               "--pbx-port", str(free_port()), "--timeout", "420"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=90)
    assert demo.returncode == 0, demo.stderr[-3000:] + demo.stdout[-3000:]
    report = json.loads(demo.stdout)
    assert report["ok"] and not report["problems"]
    calls = {c["id"]: c for c in report["calls"]}
    assert set(calls) == {"polite", "interruptions", "complaint"}
    polite, pushy, angry = calls["polite"], calls["interruptions"], calls["complaint"]
    assert polite["score"] >= 80 and sum(polite["interruptions_made"].values()) == 0
    assert {"agent:greeting", "agent:farewell"} <= set(polite["tags"])
    assert pushy["interruptions_made"]["agent"] >= 2 and pushy["direction"] == "outbound"
    assert pushy["score"] < polite["score"]
    assert {"client:complaints", "client:profanity"} <= set(angry["tags"])
    assert any("безобразие" in line for line in angry["transcript"])
    assert all(c["pbx_record"] for c in calls.values())     # joined to the PBX's records
    kinds = {a["kind"] for a in report["alerts"]}
    assert {"profanity", "complaint", "problem_call", "missed_not_called_back"} <= kinds
    # the angry client makes a problem call, whatever the agent's score
    assert {"complaint", "profanity"} <= set(angry["problems"])
    assert all(a["box"] == "demo-box" for a in report["alerts"])
    never = [m for m in report["missed"] if m["callback"]["status"] == "never"]
    fast = [m for m in report["missed"] if m["callback"]["status"] == "called_back_fast"]
    assert [m["client"] for m in never] == ["+7 985 222-33-44"] and len(fast) == 1
    assert report["kpis"]["office"]["recorded"] == 3
    assert set(report["kpis"]["managers"]) >= {"101", "102"}
    # the recordings, the PBX's records of them, and the set-up link for the panel
    data = tmp_path / "data"
    assert len(list((data / "calls").rglob("*.flac"))) == 3
    assert (data / "secrets" / "setup-token").exists()
    assert "first run: create the admin account" in log and "kamailio.pid" not in log
    assert daemon.returncode == 0, log[-2000:]


def test_check_names_what_the_analysis_missed():
    from appliance.simulate.report import check

    script = load_scripts(BUILT_IN)[2]            # the complaint: client tags, an interruption
    found = {"timeline": {"tags": [{"party": "client", "tag": "complaints"},
                                   {"party": "agent", "tag": "greeting"},
                                   {"party": "agent", "tag": "stop_words"}]},
             "parties": {"agent": {"interruptions_made": 0}, "client": {"interruptions_made": 1}},
             "score": {"total": 90}, "call": {"problems": ["complaint"]}}
    assert check(script, found) == ["no 'profanity' tag for the client",
                                    "not a problem call for 'profanity'"]
    found["call"]["problems"] = ["complaint", "profanity"]
    found["parties"]["client"]["interruptions_made"] = 0
    found["timeline"]["tags"].append({"party": "client", "tag": "profanity"})
    assert check(script, found) == ["client interrupted 0 times < 1"]
