"""MQTT against a real mosquitto broker: summaries and alerts, the last will, nothing lost
or doubled across a broker outage or an appliance restart, TLS, a wrong password, and a
central subscriber adding up two boxes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

import pytest

from appliance.bus import Bus
from appliance.config import load_settings
from appliance.kpi.periods import current
from appliance.mqtt.client import Publisher
from appliance.mqtt.feeds import Feeds
from appliance.mqtt.fleet import Fleet
from appliance.mqtt.outbox import Outbox
from appliance.query import Queries
from appliance.store.database import Database
from mqttrig import HOST, Mosquitto, Subscriber, free_tcp_port, make_certs
from waiting import wait_for
from storedata import result

pytestmark = pytest.mark.slow


@dataclass
class Box:
    settings: object
    db: Database
    outbox: Outbox
    publisher: Publisher
    feeds: Feeds
    bus: Bus

    def close(self) -> None:
        self.publisher.stop(timeout=2)
        self.db.close()


def make_box(tmp_path, port, name="box1", start=True, **mqtt) -> Box:
    settings = load_settings(environ={})
    settings.paths.data_dir = tmp_path / name
    settings.mqtt.host = HOST
    settings.mqtt.port = port
    settings.mqtt.box_id = name
    settings.mqtt.reconnect_max_s = 1
    if mqtt:
        settings.mqtt = type(settings.mqtt)(**{**settings.mqtt.model_dump(), **mqtt})
    db = Database(settings.paths.data_dir)
    outbox = Outbox(db.outbox, settings.mqtt.outbox_max_messages, settings.mqtt.outbox_max_age_h)
    publisher = Publisher(settings.mqtt, outbox)
    bus = Bus()
    feeds = Feeds(settings, outbox, Queries(db, settings), bus, lambda: {"active_calls": 0})
    if start:
        publisher.start()
    return Box(settings, db, outbox, publisher, feeds, bus)


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def _problem_call(uid="p1"):
    r = result(uid, time.time() - 120, tags=(), holds=(12.5,))
    r["tags"] = [{"tag": "profanity", "party": "client", "alert": True},
                 {"tag": "greeting", "party": "agent", "alert": False}]
    r["score"] = {"total": 35}
    r["transcript"] = [{"party": "client", "start": 1.0, "text": "secret words"}]
    return r


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_call_summary_and_alerts_arrive_without_transcript(tmp_path, broker, protocol):
    sub = Subscriber(broker.port, "appliance/box1/#")
    box = make_box(tmp_path, broker.port, protocol=protocol)
    try:
        assert box.publisher.connected.wait(10)
        box.bus.publish("call.stored", result=_problem_call())
        calls = sub.wait(1, topic="appliance/box1/calls")
        alerts = sub.wait(3, topic="appliance/box1/alerts")
        summary = json.loads(calls[0].payload)
        assert summary["v"] == 1 and summary["uid"] == "p1" and summary["box"] == "box1"
        assert summary["tags"] == {"profanity": 1, "greeting": 1} and summary["score"] == 35
        assert (summary["hold_s"], summary["holds"]) == (12.5, 1)
        assert "transcript" not in summary and b"secret" not in calls[0].payload
        kinds = sorted(json.loads(m.payload)["kind"] for m in alerts)
        assert kinds == ["low_score", "problem_call", "profanity"]     # the client swore
        problem = next(json.loads(m.payload) for m in alerts if b"problem_call" in m.payload)
        assert problem["reasons"] == ["profanity"] and problem["severity"] == "critical"
        assert problem["uid"] == "p1"
        assert all(m.qos == 1 for m in alerts)
        assert sub.wait(1, topic="appliance/box1/availability")[0].payload == b"online"
        # availability is retained: a subscriber that comes later is told at once
        late = Subscriber(broker.port, "appliance/box1/availability")
        avail = late.wait(1)
        late.close()
        assert avail[0].payload == b"online" and avail[0].retain
        assert wait_for(lambda: len(box.outbox) == 0, 5)  # acknowledged, then forgotten
    finally:
        box.close()
        sub.close()


def test_transcripts_only_when_enabled_and_status_kpis_are_retained(tmp_path, broker):
    box = make_box(tmp_path, broker.port, transcripts=True)
    try:
        box.db.calls.add(result("k1", time.time() - 60, "101"))
        box.bus.publish("call.stored", result=_problem_call("p2"))
        assert box.bus.drain(10)                              # its summary is in the outbox
        box.feeds.publish_status()
        box.feeds.publish_kpis()
        assert wait_for(lambda: len(box.outbox) == 0, 10)     # at the broker, retained
        late = Subscriber(broker.port, ["appliance/box1/status", "appliance/box1/kpi/#"])
        retained = late.wait(3, timeout=10)
        topics = {m.topic for m in retained}
        assert {"appliance/box1/status", "appliance/box1/kpi/manager/101",
                "appliance/box1/kpi/office"} <= topics
        office = next(json.loads(m.payload) for m in retained if m.topic.endswith("office"))
        assert office["this_month"]["recorded"] >= 1 and all(m.retain for m in retained)
        late.close()
        sub = Subscriber(broker.port, "appliance/box1/calls")
        box.bus.publish("call.stored", result=_problem_call("p3"))
        assert json.loads(sub.wait(1)[0].payload)["transcript"][0]["text"] == "secret words"
        sub.close()
    finally:
        box.close()


PUBLISHER = textwrap.dedent("""
    import sys, time, threading
    from pathlib import Path
    from appliance.config import load_settings
    from appliance.mqtt.client import Publisher
    from appliance.mqtt.outbox import Outbox
    from appliance.store.database import Database
    s = load_settings(environ={})
    s.mqtt.host, s.mqtt.port, s.mqtt.box_id, s.mqtt.keepalive_s = "127.0.0.1", int(sys.argv[1]), "doomed", 5
    db = Database(Path(sys.argv[2]))
    p = Publisher(s.mqtt, Outbox(db.outbox, 1000, 1))
    p.start()
    p.connected.wait(10)
    print("up", flush=True)
    time.sleep(600)
""")


def test_last_will_says_offline_when_the_box_is_killed(tmp_path, broker):
    sub = Subscriber(broker.port, "appliance/doomed/availability")
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(broker.port), str(tmp_path / "d")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        assert sub.wait(1)[0].payload == b"online"
        os.kill(proc.pid, signal.SIGKILL)
        got = sub.wait(2, timeout=20)                    # keep-alive 5 s: the broker notices
        assert [m.payload for m in got] == [b"online", b"offline"]
    finally:
        proc.kill()
        proc.wait()
        sub.close()


def test_broker_outage_of_a_minute_loses_nothing_and_doubles_nothing(tmp_path):
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    broker.start()
    sub = Subscriber(broker.port, "appliance/box1/alerts", session="central")
    box = make_box(tmp_path, broker.port)
    try:
        assert box.publisher.connected.wait(10)
        box.feeds.raise_alert("disk_low", "before the outage")
        assert len(sub.wait(1)) == 1
        broker.stop()
        for i in range(200):                              # raised while the broker is away
            box.feeds.raise_alert("registration_lost", f"alert {i}", n=i)
        assert len(box.outbox) >= 200                     # on disk, waiting
        # the box keeps trying while the broker is away: wait for two failed attempts
        # rather than a fixed time
        assert wait_for(lambda: box.publisher.failed_attempts >= 2, 30)
        restarted_at = time.time()
        broker.start()                                    # same port, sessions restored
        got = sub.wait(201, timeout=60)
        payloads = [json.loads(m.payload) for m in got]
        assert [p["n"] for p in payloads[1:]] == list(range(200))          # in order
        assert len({p["id"] for p in payloads}) == len(payloads) == 201    # each once
        assert payloads[5]["ts"] < payloads[5 + 1]["ts"] < restarted_at     # when raised
        # nothing comes twice: a marker sent last arrives after any duplicate would have
        box.feeds.raise_alert("disk_low", "marker")
        assert wait_for(lambda: any(p["message"] == "marker" for p in sub.payloads()), 20)
        assert [p["message"] for p in sub.payloads()[201:]] == ["marker"]
    finally:
        box.close()
        sub.close()
        broker.stop()


def test_a_restart_with_messages_waiting_delivers_them(tmp_path, broker):
    dead_port = free_tcp_port()                            # nothing listens here
    box = make_box(tmp_path, dead_port)
    for i in range(20):
        box.feeds.raise_alert("disk_low", f"queued {i}", n=i)
    assert len(box.outbox) == 20                          # kept at once, before any send
    box.close()
    sub = Subscriber(broker.port, "appliance/box1/alerts")
    box = make_box(tmp_path, broker.port)                  # the same data dir, a real broker
    try:
        got = sub.wait(20)
        assert [json.loads(m.payload)["n"] for m in got] == list(range(20))
    finally:
        box.close()
        sub.close()


def test_tls_with_client_certificates(tmp_path):
    certs = make_certs(tmp_path / "pki")
    broker = Mosquitto(tmp_path / "broker", tls=certs)
    broker.start()
    sub = Subscriber(broker.port, "appliance/box1/alerts", ca=str(certs["ca"]),
                     cert=str(certs["client_cert"]), key=str(certs["client_key"]))
    box = make_box(tmp_path, broker.port, tls=True, ca_file=certs["ca"],
                   cert_file=certs["client_cert"], key_file=certs["client_key"])
    try:
        assert box.publisher.connected.wait(10)
        box.feeds.raise_alert("disk_low", "over TLS")
        assert json.loads(sub.wait(1)[0].payload)["message"] == "over TLS"
    finally:
        box.close()
        sub.close()
        broker.stop()


def test_a_wrong_password_is_a_clear_error_retried_with_backoff(tmp_path, caplog):
    broker = Mosquitto(tmp_path / "broker", users={"box": "right"})
    broker.start()
    caplog.set_level(logging.ERROR, logger="appliance.mqtt.client")
    box = make_box(tmp_path, broker.port, username="box", password="wrong")
    try:
        assert wait_for(lambda: len([r for r in caplog.records
                                     if r.getMessage() == "mqtt connection refused"]) >= 2, 15)
        refused = [r for r in caplog.records if r.getMessage() == "mqtt connection refused"]
        assert len(refused) >= 2                                # tried again
        assert "password" in refused[0].reason.lower() or "authori" in refused[0].reason.lower()
        assert "mqtt.username" in refused[0].hint
        assert not box.publisher.connected.is_set()
        box.feeds.raise_alert("disk_low", "kept while refused")
        assert len(box.outbox) == 1
    finally:
        box.close()
        broker.stop()


def test_an_unreachable_broker_is_said_once_not_at_every_retry(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="appliance.mqtt.client")
    box = make_box(tmp_path, free_tcp_port())            # nothing listens there
    try:
        assert wait_for(lambda: box.publisher.failed_attempts >= 3, 30)
        said = [r for r in caplog.records if r.getMessage() == "mqtt broker unreachable"]
        assert len(said) == 1 and said[0].attempts == 1, [r.getMessage() for r in caplog.records]
        assert said[0].broker.endswith(f":{box.settings.mqtt.port}") and "outbox" in said[0].hint
        assert box.publisher.last_error == "broker unreachable"
    finally:
        box.close()


def test_a_full_outbox_drops_the_oldest_and_says_so_in_one_summary(tmp_path, caplog):
    box = make_box(tmp_path, free_tcp_port(), start=False, outbox_max_messages=100)

    def queued():
        docs = [json.loads(d["payload"]) for _, d in box.outbox.pending(limit=1000)]
        notes = [d for d in docs if d.get("kind") == "outbox_dropped"]
        return [d["n"] for d in docs if d.get("kind") not in (None, "outbox_dropped")], notes

    for i in range(150):
        box.feeds.raise_alert("disk_low", f"m{i}", n=i)
    kept, notes = queued()
    assert kept == list(range(50, 150))            # the bound holds real messages only
    assert len(notes) == 1 and notes[0]["dropped"] == 50 and notes[0]["kinds"] == {"disk_low": 50}
    assert notes[0]["severity"] == "critical" and "50" in notes[0]["message"]
    full = [r for r in caplog.records if r.getMessage().startswith("mqtt outbox full")]
    assert len(full) == 1, [r.__dict__.get("dropped") for r in full]     # not one per message
    box.outbox.ack([])                     # the broker is back: the rest is said before it drains
    full = [r for r in caplog.records if r.getMessage().startswith("mqtt outbox full")]
    assert len(full) == 2 and sum(r.dropped for r in full) == 50, [r.dropped for r in full]
    box.db.close()
    box = make_box(tmp_path, free_tcp_port(), start=False, outbox_max_messages=100)
    for i in range(150, 160):                      # after a restart: the same summary grows
        box.feeds.raise_alert("complaint", f"m{i}", n=i)
    kept, notes = queued()
    assert kept == list(range(60, 160)) and len(notes) == 1
    assert notes[0]["dropped"] == 60 and notes[0]["kinds"] == {"disk_low": 60}
    box.outbox.ack([s for s, d in box.outbox.pending(limit=1000)
                    if json.loads(d["payload"])["kind"] == "outbox_dropped"])     # delivered
    box.feeds.raise_alert("complaint", "m160", n=160)
    kept, notes = queued()
    assert kept == list(range(61, 161))
    assert len(notes) == 1 and notes[0]["dropped"] == 1      # only what went since
    box.feeds.publish_status()
    box.feeds.publish_status()                       # a retained status supersedes the older
    status = [d for _, d in box.outbox.pending(limit=1000) if d["topic"].endswith("/status")]
    assert len(status) == 1
    kept, notes = queued()                           # and states never push an alert out
    assert kept == list(range(61, 161)) and notes[0]["dropped"] == 1
    box.db.close()


def test_lost_store_data_raises_one_critical_alert_across_restarts(tmp_path, broker):
    from storedata import corrupt_line

    data = tmp_path / "box1"
    db = Database(data)
    for i in range(5):
        db.calls.add(result(f"c{i}", time.time() - 600 + i))
    db.close()
    month = time.strftime("%Y-%m")
    corrupt_line(data / "store" / "calls" / month / "journal.log", 2)
    sub = Subscriber(broker.port, "appliance/box1/alerts")
    box = make_box(tmp_path, broker.port)
    try:
        box.feeds.queries.calls(month)                  # the month loads: one record is lost
        box.feeds.publish_status()
        box.feeds.publish_status()
        got = sub.wait(1)
        alert = json.loads(got[0].payload)
        assert alert["kind"] == "store_damaged" and alert["severity"] == "critical"
        assert "corrupt line" in alert["message"] and month in alert["problem"]
    finally:
        box.close()
    box = make_box(tmp_path, broker.port)              # restarted: not raised again
    try:
        box.feeds.publish_status()
        assert not [d for _, d in box.outbox.pending() if d["topic"].endswith("/alerts")]
        assert box.db.damage.damaged()                  # still a health failure
    finally:
        box.close()
    assert len(sub.wait(2, timeout=2)) == 1
    sub.close()


def test_fleet_adds_up_two_boxes(tmp_path, broker):
    fleet = Fleet(HOST, broker.port)
    fleet.start()
    boxes = [make_box(tmp_path, broker.port, name=n) for n in ("north", "south")]
    try:
        now = time.time() - 30
        boxes[0].db.calls.add(result("n1", now, "101"))
        boxes[0].db.calls.add(result("n2", now, "102"))
        boxes[1].db.calls.add(result("s1", now, "101"))
        for b in boxes:
            b.feeds.publish_kpis()
        assert wait_for(lambda: fleet.summary()["fleet"]["recorded"] >= 3, 10)
        s = fleet.summary()
        assert s["boxes"] == ["north", "south"] and s["online"] == ["north", "south"]
        assert s["fleet"]["recorded"] == 3
        assert s["managers"]["101"]["recorded"] == 2 and s["managers"]["101"]["boxes"] == ["north", "south"]
        assert s["managers"]["102"]["recorded"] == 1
    finally:
        for b in boxes:
            b.close()
        fleet.stop()


def test_home_assistant_discovery_describes_the_sensors(tmp_path, broker):
    box = make_box(tmp_path, broker.port, ha_discovery=True)
    try:
        box.feeds.publish_discovery()
        box.feeds.publish_status()
        assert wait_for(lambda: len(box.outbox) == 0, 10)     # at the broker, retained
        sub = Subscriber(broker.port, "homeassistant/#")
        configs = {m.topic: json.loads(m.payload) for m in sub.wait(5, timeout=10)}
        sub.close()
        disk = configs["homeassistant/sensor/appliance_box1/disk_free/config"]
        assert disk["state_topic"] == "appliance/box1/status"
        assert disk["unit_of_measurement"] == "%" and "free_percent" in disk["value_template"]
        assert disk["availability_topic"] == "appliance/box1/availability"
        reg = configs["homeassistant/binary_sensor/appliance_box1/registered/config"]
        assert reg["device_class"] == "connectivity"
        assert len({c["unique_id"] for c in configs.values()}) == len(configs) == 5
    finally:
        box.close()


def test_a_plan_falling_behind_is_alerted_once_a_period(tmp_path, broker):
    sub = Subscriber(broker.port, "appliance/box1/alerts")
    box = make_box(tmp_path, broker.port)
    try:
        q = box.feeds.queries
        q.save_plan({"scope": "manager", "who": "101", "kind": "week", "metric": "calls",
                     "target": 500}, "boss")
        q.save_plan({"scope": "manager", "who": "102", "kind": "week", "metric": "answer_rate",
                     "target": 0.5}, "boss")
        week_start = current("week", time.time()).start
        # inside this week also in its first minute (an hour back may be last Sunday)
        box.db.calls.add(result("k1", week_start + (time.time() - week_start) / 2, "101"))
        week = q.plans()[0]
        if week["elapsed"] < 0.2:              # Monday morning: nobody is behind yet
            now = time.time() + (0.25 - week["elapsed"]) * 7 * 86400
        else:
            now = time.time()
        assert box.feeds.publish_plans(now) == 1        # 101: 1 call, far from 500; 102: no figure
        assert box.feeds.publish_plans(now) == 0        # not again this week
        got = json.loads(sub.wait(1)[0].payload)
        assert got["kind"] == "plan_behind" and got["plan"] == "manager:101:week:calls"
        assert got["agent"] == "101" and got["target"] == 500 and got["value"] == 1
    finally:
        box.close()
        sub.close()
