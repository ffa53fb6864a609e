"""End to end on loopback: kamailio as the PBX, the appliance daemon registered on it, a second
pjsua2 endpoint as a two-stream SIPREC client, sipp as a plain G.711 caller."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from appliance.config import Settings
from appliance.sources.files import analyse_files
from conftest import to_pcm, write_wav
from mqttrig import Mosquitto, Subscriber
from siprig import HOST, Box, Kamailio, free_port, start_src, wait_for
from appliance.simulate import sippcall
from appliance.simulate.audiocheck import decode_pcap_alaw, windowed_correlation

pytestmark = pytest.mark.slow

USER = "2000"

# A complete call JSON waits for its transcript from the box's recognizer, which runs at low
# priority: on a machine busy with other work that takes as long as the backlog before it.
TRANSCRIBED_S = 600


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    work = tmp_path_factory.mktemp("sip-e2e")
    pbx = Kamailio(work / "pbx", free_port())
    pbx.start()
    # max_calls 8: two capture processes behind the kamailio front, as a real box runs
    box = Box(work / "box", free_port(), 42000, asr=True, max_calls=8, extra=f"""
rtp_timeout_s = 4
[[sip.accounts]]
registrar = "{HOST}:{pbx.port}"
user = "{USER}"
expiry_s = 30
retry_s = 3
""")
    broker = Mosquitto(work / "broker")           # the daemon publishes to a real broker
    broker.start()
    box.mqtt = Subscriber(broker.port, "appliance/e2e/#")
    box.env = {"APPLIANCE_MQTT__HOST": "127.0.0.1", "APPLIANCE_MQTT__PORT": str(broker.port),
               "APPLIANCE_MQTT__BOX_ID": "e2e", "APPLIANCE_MQTT__STATUS_INTERVAL_S": "1"}
    box.start()
    yield pbx, box
    rc = box.stop()
    pbx.stop()
    box.mqtt.close()
    broker.stop()
    log = box.log()
    assert rc == 0, log[-3000:]
    assert "Assertion" not in log and "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def call_audio(real_call, tmp_path_factory):
    """A real-speech two-party call: one WAV per party, and the same call as a stereo file."""
    audio, truth = real_call
    pcm = to_pcm(audio)
    d = tmp_path_factory.mktemp("call-audio")
    return {"agent": write_wav(d / "agent.wav", pcm[:, 0]),
            "client": write_wav(d / "client.wav", pcm[:, 1]),
            "stereo": write_wav(d / "stereo.wav", pcm), "pcm": pcm}


def test_box_registers_on_the_pbx(rig):
    pbx, box = rig
    assert wait_for(lambda: pbx.registered(USER), 15), box.log()[-2000:]
    regs = box.state()["registrations"]
    assert regs and regs[0]["registered"] and regs[0]["status"] == 200


def _src(target, wavs, *args):
    return start_src(target, wavs, free_port(), 33000, *args)


def test_siprec_session_through_the_pbx_is_recorded_per_party_and_analysed(rig, call_audio):
    pbx, box = rig
    assert wait_for(lambda: pbx.registered(USER), 15)
    before = len(box.results())
    # stream 1 = the caller (client, a mobile number), stream 2 = the callee (extension 101)
    src = _src(f"sip:{USER}@{HOST}:{pbx.port}", [call_audio["client"], call_audio["agent"]])
    out = src.communicate(timeout=120)[0]
    assert src.returncode == 0, out[-2000:]
    assert wait_for(lambda: len(box.results()) > before, TRANSCRIBED_S), box.log()[-3000:]
    result = box.results()[-1]
    call = result["call"]
    assert call["source"] == "siprec" and call["agent"] == "101" and call["client"] == "79161234567"
    assert call["extra"]["roles"] == "extension pattern"
    rec, rate = sf.read(str(box.data / "calls" / _day(call) / call["extra"]["recording"]),
                        dtype="float32")
    src_pcm = call_audio["pcm"].astype(np.float32) / 32768
    for ch, party in enumerate(("agent", "client")):
        own = windowed_correlation(rec[:, ch], src_pcm[:, ch])
        other = windowed_correlation(rec[:, ch], src_pcm[:, 1 - ch])
        assert own >= 0.95, (party, own)
        assert other < 0.5, (party, other)
    # the same audio as a file gives the same conversation analysis, within codec tolerance
    settings = Settings()
    settings.asr.enabled = False
    as_file = analyse_files([call_audio["stereo"]], settings)
    for party in ("agent", "client"):
        live, ref = result["parties"][party], as_file["parties"][party]
        assert abs(live["talk_s"] - ref["talk_s"]) <= max(0.8, 0.06 * ref["talk_s"]), (party, live, ref)
        assert abs(live["turns"] - ref["turns"]) <= 1
    assert abs(len(result["interruptions"]) - len(as_file["interruptions"])) <= 1
    assert abs(result["duration_s"] - as_file["duration_s"]) <= 2.0
    # recognised live, on the box
    assert result["asr"]["status"] == "ok"
    words = " ".join(seg["text"] for seg in result["transcript"])
    assert len(words.split()) >= 10, result["transcript"]
    capture = call["extra"]["capture"]
    # both streams arrive on one media clock: at most the last frame of one is missing
    assert max(capture["padded_frames"].values()) <= 2, capture
    assert abs(capture["frames"]["agent"] - capture["frames"]["client"]) <= 2, capture


def _api(box, method, path, token, body=None):
    req = urllib.request.Request(f"http://{HOST}:{box.web_port}/api/v1{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def test_the_daemon_serves_recorded_calls_and_pbx_records_on_its_http_api(rig):
    pbx, box = rig
    token = subprocess.run([sys.executable, "-m", "appliance.cli", "-c", str(box.workdir / "box.toml"),
                            "token", "create", "e2e", "--role", "admin"],
                           capture_output=True, text=True, check=True).stdout.strip()
    with pytest.raises(urllib.error.HTTPError) as refused:
        _api(box, "GET", "/clients", "apl_wrong")
    assert refused.value.code == 401
    month = time.strftime("%Y-%m")
    results = [r for r in box.results() if r["call"]["started_at"] >= time.time() - 86400 * 25
               and time.strftime("%Y-%m", time.localtime(r["call"]["started_at"])) == month]
    # the ingester indexes new call files every 2 s
    assert wait_for(lambda: _api(box, "GET", f"/calls?period={month}&limit=500", token)[1]["total"]
                    == len(results), 10)
    now = time.time()
    # an hour ago, or half way since midnight when the day is younger: the query below asks for today
    missed_at = now - min(3600.0, (now - time.mktime(time.localtime(now)[:3] + (0, 0, 0, 0, 0, -1))) / 2)
    records = [{"id": "e2e-missed", "start": missed_at, "from": "79035550001", "to": "101"}]
    for r in results:
        call = r["call"]
        if call["extra"].get("sip_call_id") and call["client"]:
            records.append({"id": f"e2e-{call['extra']['uid']}", "call_id": call["extra"]["sip_call_id"],
                            "start": call["started_at"] - 3, "answer": call["started_at"],
                            "end": call["started_at"] + r["duration_s"],
                            "from": call["client"], "to": call["agent"] or "101"})
    status, out = _api(box, "POST", "/cdr", token, records)
    assert status == 200 and out["accepted"] == len(records), out
    status, missed = _api(box, "GET", f"/missed?period={time.strftime('%Y-%m-%d')}", token)
    assert any(m["client"] == "79035550001" and m["callback"]["status"] == "pending"
               for m in missed["missed"]), missed
    for rec in records[1:]:
        uid = rec["id"].removeprefix("e2e-")
        assert _api(box, "GET", f"/calls/{uid}", token)[1]["pbx"]["group"] == rec["id"]


def test_the_daemon_publishes_call_summaries_and_status_over_mqtt(rig):
    pbx, box = rig
    uids = {r["call"]["extra"]["uid"] for r in box.results()}
    assert wait_for(lambda: uids <= {p["uid"] for p in box.mqtt.payloads("appliance/e2e/calls")}, 20)
    assert box.mqtt.wait(1, topic="appliance/e2e/availability")[0].payload == b"online"
    assert wait_for(lambda: any(p["registered"] for p in box.mqtt.payloads("appliance/e2e/status")), 20)
    status = box.mqtt.payloads("appliance/e2e/status")[-1]
    assert status["v"] == 1 and status["registrations"][0]["registered"] is True
    assert "free_percent" in status["disk"]


def _day(call):
    return time.strftime("%Y-%m-%d", time.localtime(call["started_at"]))


def test_sipp_plain_g711_call_is_recorded(rig, tmp_path):
    pbx, box = rig
    pcap = Path("/usr/share/sip-tester/g711a.pcap")
    before = len(box.results())
    port = sippcall.PortBlocks(52000).take()      # SIP, then RTP, RTCP, video: all free
    proc = sippcall.start(tmp_path, "uac", (HOST, box.sip_port), "recorder", pcap, 8.0, bye=True,
                          sip_port=port, media_port=port + 2,
                          call_id=f"e2e-sipp-{time.time_ns()}")
    rc = proc.wait(90)
    done = sippcall.outcome(tmp_path, "uac", rc)
    assert done.answered and done.completed, done.log
    assert wait_for(lambda: len(box.results()) > before, TRANSCRIBED_S)
    result = box.results()[-1]
    call = result["call"]
    assert call["source"] == "sip" and call["extra"]["roles"].startswith("single stream")
    rec, _ = sf.read(str(box.data / "calls" / _day(call) / call["extra"]["recording"]),
                     dtype="float32")
    played = decode_pcap_alaw(pcap)
    party = 1 if call["client"] else 0
    assert windowed_correlation(rec[:, party], played, rate_in=8000) >= 0.95
    assert not np.any(rec[:, 1 - party])


def test_caller_killed_without_bye_is_finalized_after_rtp_timeout(rig, call_audio):
    pbx, box = rig
    before = len(box.results())
    src = _src(box.uri, [call_audio["client"], call_audio["agent"]], "--no-bye")
    assert wait_for(lambda: box.longest_call_s() >= 3, 30), box.log()[-2000:]
    src.send_signal(signal.SIGKILL)
    src.wait()
    assert wait_for(lambda: len(box.results()) > before, TRANSCRIBED_S), box.log()[-3000:]
    result = box.results()[-1]
    # ended by the box's RTP timeout (4 s here), not by a BYE nor the session timer
    assert result["call"]["extra"]["end_reason"] == "rtp timeout"
    assert result["duration_s"] >= 3
    # the state file is a periodic snapshot: it may lag the result by a tick
    assert wait_for(lambda: not box.state()["active_calls"], 10), box.state()


def test_box_registers_again_after_the_pbx_restarts(rig):
    pbx, box = rig
    assert wait_for(lambda: pbx.registered(USER), 15)
    pbx.stop()
    pbx.start()                          # location table lost
    assert not pbx.registered(USER)
    # expiry 30 s, retry 3 s: registered again well before the old registration would expire
    assert wait_for(lambda: pbx.registered(USER), 30, step=0.5), box.log()[-2000:]
    assert box.alive()


@pytest.fixture(scope="session", autouse=True)
def _tools():
    for tool in ("kamailio", "sipp"):
        assert shutil.which(tool), f"{tool} missing: `make test` installs it (tests/install-system-deps.sh)"


def test_call_cut_by_an_appliance_crash_is_recovered_at_restart(rig, call_audio):
    pbx, box = rig
    before = len(box.results())
    src = _src(box.uri, [call_audio["client"], call_audio["agent"]], "--no-bye")
    assert wait_for(lambda: box.longest_call_s() >= 6, 30)
    streamed = box.longest_call_s()             # what the box had said it recorded
    box.crash()                                 # power cut: daemon, front and workers at once
    src.kill()
    src.wait()
    box.start()
    assert wait_for(lambda: len(box.results()) > before, TRANSCRIBED_S), box.log()[-3000:]
    result = box.results()[-1]
    assert result["call"]["extra"]["end_reason"] == "recovered after an appliance crash"
    assert result["call"]["source"] == "siprec" and result["call"]["agent"] == "101"
    assert result["duration_s"] >= streamed - 1.5, (streamed, result["duration_s"])  # ~1 s lost
    assert any("cut by a crash" in n for n in result["call"]["notes"])


def test_calls_beyond_one_process_are_spread_over_capture_workers(rig, call_audio):
    pbx, box = rig
    before = len(box.results())
    # the calling side has the same 4-calls-per-process limit: two callers, three calls each
    srcs = [_src(box.uri, [call_audio["client"], call_audio["agent"]], "--calls", "3",
                 "--duration", "4") for _ in range(2)]
    for src in srcs:
        out = src.communicate(timeout=90)[0]
        # what the caller reports, not its exit code: pjsip 2.15.1 in the caller can abort
        # in its own teardown (pj_ioqueue_sendto assertion) after the calls are done
        assert "connected 3/3" in out and "hung up at" in out, out[-1500:]
        assert src.returncode in (0, -signal.SIGABRT), out[-1500:]
    assert wait_for(lambda: len(box.results()) >= before + 6, TRANSCRIBED_S), box.log()[-3000:]
    recent = box.results()[-6:]
    assert {r["call"]["source"] for r in recent} == {"siprec"}
    # six calls at once, four per process: both capture workers took some
    processes = {json.loads((box.data / "calls" / _day(r["call"]) /
                             f"{r['call']['extra']['uid']}.meta.json").read_text())["process"]
                 for r in recent}
    assert processes == {"0", "1"}, processes


def test_workers_stop_when_the_daemon_dies(rig):
    pbx, box = rig

    def running(pattern: str) -> bool:
        return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0

    workers, front = f"{box.workdir}/box.toml run --sip-worker", str(box.data / "run" / "front")
    assert running(workers) and running(front)
    box.proc.kill()                      # the daemon alone; its children must not linger
    box.proc.wait()
    assert wait_for(lambda: not running(workers), 20)
    assert wait_for(lambda: not running(front), 20)
    box.start()
    assert box.alive()


def test_a_dead_capture_worker_is_restarted_and_its_call_recovered(rig, call_audio):
    pbx, box = rig
    known = {r["call"]["extra"]["uid"] for r in box.written()}

    def recovered(results: list[dict]) -> list[dict]:
        return [r for r in results if r["call"]["extra"]["uid"] not in known
                and r["call"]["extra"].get("end_reason") == "recovered after an appliance crash"]
    src = _src(box.uri, [call_audio["client"], call_audio["agent"]], "--no-bye")

    def streamed_s() -> float:
        calls = box.state().get("active_calls", [])
        return max((max(c["frames"].values(), default=0) * 0.02 for c in calls), default=0.0)
    assert wait_for(lambda: streamed_s() >= 4, 30)
    worker = next(p for p in (box.data / "run").glob("sip-*.json")
                  if json.loads(p.read_text())["active_calls"])
    index = worker.stem.split("-")[1]
    pid = subprocess.run(["pgrep", "-f", f"{box.workdir}/box.toml run --sip-worker {index} "],
                         capture_output=True, text=True).stdout.split()
    assert pid
    os.kill(int(pid[0]), signal.SIGKILL)
    # the daemon ends the dead worker's dialog: the caller gets a BYE, not silence
    out = src.communicate(timeout=60)[0]
    assert "hung up by the far end" in out, out[-2000:]
    assert wait_for(lambda: "orphaned call hung up" in box.log(), 30)   # logs are written apart
    assert wait_for(lambda: recovered(box.written()), 60), box.log()[-3000:]
    assert wait_for(lambda: recovered(box.results()), TRANSCRIBED_S), box.log()[-3000:]
    result = recovered(box.results())[0]
    assert result["duration_s"] >= 3
    assert wait_for(lambda: box.log().count("capture worker died; restarting") >= 1, 5)
    assert wait_for(box.alive, 30)


def test_the_front_refuses_an_invite_too_large_for_the_workers_over_udp_and_tcp(rig):
    """What a worker's stack cannot take gets 513 with the limit from the front, whatever the
    transport and size (kamailio reads up to 64 kB over TCP)."""
    import socket

    from appliance.simulate.rawsip import RawUA, invite, sdp
    from appliance.sources.sip.front import MAX_INVITE_BYTES
    _, box = rig
    meta = (Path(__file__).parent / "data" / "sip" / "rfc7865-metadata.xml").read_text()
    for size in (MAX_INVITE_BYTES + 100, 20000, 40000):
        padded = meta.replace("</recording>", f"<!-- {'x' * size} --></recording>")
        ua = RawUA()
        text, _ = invite(box.uri, sdp(2), padded)
        resp = ua.call(text, box.addr, timeout=5)
        ua.close()
        assert resp is not None and resp.status == 513 and str(MAX_INVITE_BYTES) in resp.reason
        text, _ = invite(box.uri, sdp(2), padded)
        with socket.create_connection(box.addr, timeout=10) as s:
            s.sendall(text.replace("SIP/2.0/UDP", "SIP/2.0/TCP")
                      .replace(":5099", f":{s.getsockname()[1]}").encode())
            data = b""
            while b"SIP/2.0 513" not in data:
                chunk = s.recv(65535)
                assert chunk, data
                data += chunk
    assert box.alive()
