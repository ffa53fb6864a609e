"""One set of alert rules: the panel's alert list and MQTT raise the same alerts for a call,
with the thresholds in ``[alerts]``."""

from __future__ import annotations

import time

from appliance.analysis.alerts import alerts_for
from appliance.config import env_keys, load_settings
from appliance.mqtt.messages import call_alerts
from appliance.query import Queries
from appliance.store.database import Database
from appliance.store.records import call_record
from storedata import result


def _call(uid, score, tags):
    r = result(uid, time.time() - 60, score=score, tags=())
    r["tags"] = [dict(t) for t in tags]
    return r


SWORE = [{"tag": "profanity", "party": "client", "alert": True},
         {"tag": "profanity", "party": "agent", "alert": True}]
QUIET_DICTIONARY = [{"tag": "complaints", "party": "agent", "alert": False}]   # not to alert


def test_rules_read_the_stored_record():
    kinds = {a["kind"]: a for a in alerts_for(call_record(_call("a", 30, SWORE)), low_score=50)}
    assert set(kinds) == {"profanity", "low_score", "problem_call"}
    assert kinds["profanity"]["count"] == 2 and kinds["profanity"]["parties"] == ["agent", "client"]
    assert kinds["low_score"]["message"] == "checklist score 30 below 50"
    assert kinds["problem_call"]["reasons"] == ["profanity"]
    assert alerts_for(call_record(_call("b", 30, SWORE)), low_score=30)[-1]["kind"] == "problem_call"
    assert alerts_for(call_record(_call("c", 90, QUIET_DICTIONARY)), low_score=50) == []
    # records kept before alert hits were stored: the tag counts stand for them
    old = {"tags": {"complaints": 2}, "score": 90}
    assert [(a["kind"], a.get("count")) for a in alerts_for(old, 50)] == [("complaint", 2),
                                                                         ("problem_call", None)]


def test_the_panel_and_mqtt_raise_the_same_alerts(tmp_path):
    settings = load_settings(environ={})
    settings.alerts.low_score = 60
    db = Database(tmp_path)
    calls = [_call("swore", 30, SWORE), _call("quiet", 55, QUIET_DICTIONARY),
             _call("fine", 90, [])]
    for c in calls:
        db.calls.add(c)
    panel = {(a["uid"], a["kind"]) for a in Queries(db, settings).alerts(days=1)}
    mqtt = {(a["uid"], a["kind"]) for c in calls
            for a in call_alerts("box", c, settings.alerts.low_score)}
    assert mqtt == {("swore", "profanity"), ("swore", "low_score"), ("swore", "problem_call"),
                    ("quiet", "low_score")}
    # the panel shows a problem call's swearing once, as the problem call
    assert panel == mqtt - {("swore", "profanity")}
    db.close()


def test_thresholds_moved_from_mqtt_still_apply(tmp_path):
    cfg = tmp_path / "box.toml"
    cfg.write_text("[mqtt]\nlow_score = 35\nasr_queue_alert = 7\n")
    settings = load_settings(cfg, environ={})
    assert (settings.alerts.low_score, settings.alerts.asr_queue) == (35, 7)
    cfg.write_text("[mqtt]\nlow_score = 35\n[alerts]\nlow_score = 20\n")
    assert load_settings(cfg, environ={}).alerts.low_score == 20          # the new name wins
    assert load_settings(environ={"APPLIANCE_ALERTS__LOW_SCORE": "44"}).alerts.low_score == 44
    # each source renamed before they are merged: the environment wins over the panel's
    # setting whatever the name either uses
    data = tmp_path / "data"
    data.mkdir()
    (data / "panel-settings.json").write_text('{"alerts": {"low_score": 55}}')
    env = {"APPLIANCE_PATHS__DATA_DIR": str(data), "APPLIANCE_MQTT__LOW_SCORE": "30"}
    assert load_settings(environ=env).alerts.low_score == 30
    assert "alerts.low_score" in env_keys(env)


def test_the_panel_api_takes_the_old_name(tmp_path):
    from appliance.system.panel_settings import change

    settings = load_settings(environ={"APPLIANCE_PATHS__DATA_DIR": str(tmp_path)})
    saved, restart = change(settings, {"mqtt": {"low_score": 61}})
    assert saved.alerts.low_score == settings.alerts.low_score == 61 and restart == []
