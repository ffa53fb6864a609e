"""`appliance run` with no broker configured starts its own mosquitto on 127.0.0.1: the MQTT
path works out of the box (availability and status arrive), the health check sees it
connected, and the broker goes when the appliance stops. A taken port leaves the appliance
running without MQTT and says why."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from mqttrig import Subscriber
from waiting import free_port, wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    return free_port(socket.SOCK_STREAM)


def _run(tmp_path, mqtt_port: int) -> tuple[subprocess.Popen, dict]:
    env = dict(os.environ, APPLIANCE_PATHS__DATA_DIR=str(tmp_path / "data"),
               APPLIANCE_ASR__ENABLED="false", APPLIANCE_SIP__ENABLED="false",
               APPLIANCE_WEB__PORT=str(_free_port()), APPLIANCE_MQTT__EMBEDDED_PORT=str(mqtt_port),
               APPLIANCE_MQTT__BOX_ID="box1", APPLIANCE_MQTT__STATUS_INTERVAL_S="1")
    env.pop("APPLIANCE_MQTT__HOST", None)
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, env


def _status(env: dict, until=lambda h: h["running"] and h["checks"]["broker"]["ok"]) -> dict:
    """The daemon's health, once ``until`` holds (or after 30 s)."""
    health: dict = {}

    def read() -> bool:
        out = subprocess.run([sys.executable, "-m", "appliance.cli", "status", "--json"], env=env,
                             capture_output=True, text=True, timeout=60)
        health.clear()
        health.update(json.loads(out.stdout))
        return until(health)
    wait_for(read, 30, step=0.5)
    return health


def test_appliance_on_defaults_publishes_to_its_own_broker(tmp_path):
    port = _free_port()
    proc, env = _run(tmp_path, port)
    try:
        health = _status(env)
        assert health["checks"]["broker"]["ok"], health
        assert f"127.0.0.1:{port}" in health["checks"]["broker"]["detail"]
        sub = Subscriber(port, ["appliance/box1/availability", "appliance/box1/status"])
        got = {m.topic: m.payload for m in sub.wait(2, timeout=20)}
        assert got["appliance/box1/availability"] == b"online"
        assert "disk" in json.loads(got["appliance/box1/status"])
        sub.client.loop_stop()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "embedded mqtt broker" in err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()    # gone with it


def test_a_taken_port_leaves_mqtt_off_and_says_why(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc, env = _run(tmp_path, taken.getsockname()[1])
        try:
            health = _status(env, until=lambda h: h["running"])
            assert health["running"] and health["checks"]["broker"]["detail"] == "MQTT off"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "embedded mqtt broker not started" in err and "mqtt.embedded_port" in err


def test_the_broker_does_not_outlive_a_killed_appliance(tmp_path):
    port = _free_port()
    proc, env = _run(tmp_path, port)
    try:
        assert _status(env)["checks"]["broker"]["ok"]
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    def closed() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except OSError:
            return True
    assert wait_for(closed, 20)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
