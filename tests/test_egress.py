"""What leaves the box: the configured destinations are listed, and nothing else is tried."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import load_settings
from appliance.system.egress import destinations
from conftest import write_wav

HERE = Path(__file__).parent


def _settings(tmp_path: Path, toml: str):
    cfg = tmp_path / "box.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n{toml}')
    return load_settings(cfg, environ={})


def test_destinations_are_what_the_settings_name(tmp_path):
    timesyncd = tmp_path / "timesyncd.conf"
    timesyncd.write_text("[Time]\n#NTP=commented.example\nNTP=ntp1.office.lan 10.0.0.123\n")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search office.lan\nnameserver 10.0.0.53\n")
    settings = _settings(tmp_path, """
[sip]
[[sip.accounts]]
registrar = "pbx.office.lan:5080"
user = "rec1"
transport = "tcp"
[[sip.accounts]]
registrar = "10.0.0.5"
user = "rec2"
[mqtt]
host = "broker.central.lan"
port = 8883
""")
    got = [(d.what, d.host, d.port, d.transport)
           for d in destinations(settings, timesyncd=timesyncd, resolv=resolv)]
    assert got == [("PBX registrar", "pbx.office.lan", 5080, "tcp"),
                   ("PBX registrar", "10.0.0.5", 5060, "udp"),
                   ("MQTT broker", "broker.central.lan", 8883, "tcp"),
                   ("time (NTP)", "ntp1.office.lan", 123, "udp"),
                   ("time (NTP)", "10.0.0.123", 123, "udp"),
                   ("name lookups (DNS)", "10.0.0.53", 53, "udp")]


def test_addresses_only_need_no_dns_and_ipv6_is_bracketed(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.0.0.53\n")
    settings = _settings(tmp_path, '[sip]\n[[sip.accounts]]\nregistrar = "[fd00::5]:5062"\nuser = "r"\n')
    got = destinations(settings, timesyncd=tmp_path / "absent.conf", resolv=resolv)
    assert [(d.what, d.address) for d in got] == [("PBX registrar", "[fd00::5]:5062"),
                                                  ("time (NTP)", "*:123"),
                                                  ("name lookups (DNS)", "10.0.0.53:53")]
    assert "DHCP" in got[1].setting
    timesyncd = tmp_path / "timesyncd.conf"
    timesyncd.write_text("[Time]\nNTP=10.0.0.123\n")
    assert [d.what for d in destinations(settings, timesyncd=timesyncd, resolv=resolv)] == [
        "PBX registrar", "time (NTP)"]                  # addresses only: no lookups


def test_status_lists_the_destinations(tmp_path):
    cfg = tmp_path / "box.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[mqtt]\nhost = "192.0.2.7"\n')
    run = subprocess.run([sys.executable, "-m", "appliance.cli", "-c", str(cfg), "status", "--json"],
                         capture_output=True, text=True, timeout=60)
    out = json.loads(run.stdout)
    assert {"what": "MQTT broker", "host": "192.0.2.7", "port": 1883, "transport": "tcp",
            "setting": "mqtt.host", "address": "192.0.2.7:1883"} in out["egress"]["destinations"]
    text = subprocess.run([sys.executable, "-m", "appliance.cli", "-c", str(cfg), "status"],
                          capture_output=True, text=True, timeout=60).stdout
    assert "connects to (nothing else):" in text and "192.0.2.7:1883/tcp" in text


@pytest.fixture(scope="module")
def call_wav(real_call, tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("egress") / "call.wav", real_call[0] * 0.8)


@pytest.mark.slow
def test_the_running_box_tries_no_other_address(tmp_path, call_wav):
    """The daemon with SIP, MQTT, the inbox and speech recognition on, in a network namespace
    of its own: every packet it sends off the box goes to a listed destination."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("util-linux (unshare) and iproute2 (ip) are needed: apt-get install them")
    data = tmp_path / "data"
    cfg = tmp_path / "box.toml"
    cfg.write_text(f"""
[paths]
data_dir = "{data}"
[inbox]
poll_s = 0.2
settle_s = 0.3
[sip]
max_calls = 4
[[sip.accounts]]
registrar = "192.0.2.10:5060"
user = "recorder"
retry_s = 2
[mqtt]
host = "198.51.100.20"
port = 1883
""")
    out = tmp_path / "probe.json"
    run = subprocess.run(["unshare", "--net", sys.executable, str(HERE / "egress_probe.py"),
                          str(cfg), str(data), str(call_wav), str(out)],
                         capture_output=True, text=True, timeout=900, cwd=HERE.parent)
    assert run.returncode == 0 and out.exists(), run.stderr[-3000:]
    report = json.loads(out.read_text())
    log = (tmp_path / "daemon.log").read_text(errors="replace")[-3000:]
    assert report["ok"] and report["started"] and report["analysed"] and report["retried"], log
    settings = load_settings(cfg, environ={})
    allowed = {(d.transport, d.host, d.port) for d in destinations(settings)}
    tried = {(proto, addr, port) for proto, addr, port, _ in report["seen"]}
    assert ("udp", "192.0.2.10", 5060) in tried and ("tcp", "198.51.100.20", 1883) in tried
    assert tried - allowed == set(), report
    assert report["daemon_exit"] == 0, log
