"""`appliance analyze` and the daemon as a user runs them."""

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import write_wav
from waiting import free_port, wait_for

CLI = [sys.executable, "-m", "appliance.cli"]


def run_cli(*args, env=None, **kw):
    e = dict(os.environ, **(env or {}))
    return subprocess.run(CLI + list(args), capture_output=True, text=True, env=e, timeout=120, **kw)


@pytest.fixture(scope="module")
def call_wav(real_call, tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("cli") / "call.wav", real_call[0] * 0.8)


@pytest.mark.slow
def test_analyze_json_schema(call_wav):
    """The whole pipeline with the real speech model (make test builds it)."""
    out = run_cli("analyze", "--json", str(call_wav))
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["schema"] == "call-analysis/1"
    assert r["asr"]["status"] == "ok", r["asr"]
    assert r["transcript"] and {"party", "start", "end", "text"} <= set(r["transcript"][0])
    assert {t["party"] for t in r["transcript"]} == {"agent", "client"}
    assert isinstance(r["tags"], list)
    assert 0 <= r["score"]["total"] <= 100 and r["score"]["checklist"] == "sales"
    assert r["duration_s"] > 10
    for party in ("agent", "client"):
        p = r["parties"][party]
        for key in ("talk_s", "talk_share", "turns", "longest_monologue_s", "interruptions_made"):
            assert key in p
    assert abs(r["parties"]["agent"]["talk_share"] + r["parties"]["client"]["talk_share"] - 1) < 1e-3
    assert r["segments"] and {"party", "start", "end"} <= set(r["segments"][0])
    for item in r["interruptions"]:
        assert {"by", "at"} <= set(item)
    for item in r["overlaps"] + r["silences"]:
        assert item["start"] < item["end"]


def test_analyze_readable_summary(call_wav):
    out = run_cli("analyze", "--no-asr", str(call_wav))
    assert out.returncode == 0, out.stderr
    assert "agent" in out.stdout and "client" in out.stdout and "dead air" in out.stdout
    assert out.stderr == ""                         # progress logs only with -v
    verbose = run_cli("analyze", "--no-asr", "-v", str(call_wav))
    assert "call analysed" in verbose.stderr


def test_analyze_bad_file_exit_code_and_message(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not audio at all" * 10)
    out = run_cli("analyze", str(bad))
    assert out.returncode == 2
    assert "not a readable WAV or FLAC" in out.stderr and "Traceback" not in out.stderr


def test_invalid_config_is_reported(call_wav, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[conversation]\ndead_air_min_s = -1\n")
    out = run_cli("-c", str(cfg), "analyze", "--no-asr", str(call_wav))
    assert out.returncode == 2
    assert "conversation.dead_air_min_s = -1" in out.stderr and "Traceback" not in out.stderr


def test_run_analyses_recordings_dropped_into_the_inbox(call_wav, tmp_path):
    data = tmp_path / "data"
    env = {"APPLIANCE_PATHS__DATA_DIR": str(data), "APPLIANCE_INBOX__POLL_S": "0.2",
           "APPLIANCE_INBOX__SETTLE_S": "0.3", "APPLIANCE_ASR__ENABLED": "false"}
    proc = subprocess.Popen(CLI + ["run"], env=dict(os.environ, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        inbox = data / "inbox"
        assert wait_for(inbox.is_dir, 30)
        (inbox / "call.wav").write_bytes(call_wav.read_bytes())
        (inbox / "broken.wav").write_bytes(b"garbage" * 100)
        failed = inbox / "failed" / "broken.wav.error.txt"

        def results() -> list:
            return [p for p in (data / "calls").glob("*/*.json") if not p.name.endswith(".meta.json")]
        assert wait_for(lambda: results() and failed.exists(), 30)
        r = json.loads(results()[0].read_text())
        extra = r["call"]["extra"]
        assert r["segments"] and extra["original_name"] == "call.wav"
        assert (results()[0].parent / extra["recording"]).exists()    # beside its call JSON
        assert "not a readable WAV or FLAC" in failed.read_text()
        assert (inbox / "failed" / "broken.wav").exists()      # nothing is deleted
        status = subprocess.run(CLI + ["status", "--json"], env=dict(os.environ, **env),
                                capture_output=True, text=True, timeout=60)
        health = json.loads(status.stdout)
        assert status.returncode == 0 and health["running"] and health["ok"], status.stdout
        assert health["pid"] == proc.pid and "disabled" in health["checks"]["model"]["detail"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "recording analysed" in err and "appliance stopped" in err


def test_a_burst_of_signals_stops_the_daemon_cleanly(tmp_path):
    """Signals arriving while the main thread waits used to be able to deadlock it (the
    handler took the stop event's lock): many in a row must still end in a clean stop."""
    import socket as _socket

    port = free_port(_socket.SOCK_STREAM)
    data = tmp_path / "data"
    env = dict(os.environ, APPLIANCE_PATHS__DATA_DIR=str(data), APPLIANCE_ASR__ENABLED="false",
               APPLIANCE_SIP__ENABLED="false", APPLIANCE_WEB__PORT=str(port),
               APPLIANCE_MQTT__EMBEDDED="false", APPLIANCE_INBOX__ENABLED="false")
    proc = subprocess.Popen(CLI + ["run"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert wait_for((data / "run" / "daemon.json").exists, 60)
    for _ in range(200):
        proc.send_signal(signal.SIGTERM)
        if proc.poll() is not None:
            break
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "appliance stopped" in err


def test_setup_link_makes_the_secrets_once_and_stops_after_set_up(tmp_path):
    from appliance.store.database import Database
    from appliance.web.users import Users

    env = dict(os.environ, APPLIANCE_PATHS__DATA_DIR=str(tmp_path / "data"))
    cmd = [sys.executable, "-m", "appliance.cli", "setup-link", "--base", "https://box.local/"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    link = first.stdout.strip()
    assert link.startswith("https://box.local/setup?token=") and len(link.split("=")[1]) >= 32
    secrets = tmp_path / "data" / "secrets"
    assert oct((secrets / "setup-token").stat().st_mode)[-3:] == "600"
    assert (secrets / "web-secret-key").stat().st_size >= 32
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == link                   # the same link until it is used
    db = Database(tmp_path / "data")
    Users(db.users).create("admin", "correct horse battery", "admin")
    db.close()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "set-up is done" in done.stderr and not done.stdout
