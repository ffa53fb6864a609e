"""Hostile and broken SIP input against the running daemon: a proper SIP error or a degraded
but recorded call, never a crash."""

from __future__ import annotations

import os
import socket

import pytest

from siprig import HOST, Box, RawUA, free_port, invite, metadata, sdp, wait_for
from test_sip_plan import BOMB, XXE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    b = Box(tmp_path_factory.mktemp("sip-bad"), free_port(), 44000, max_calls=3,
            extra="rtp_timeout_s = 20")
    b.start()
    yield b
    rc = b.stop()
    log = b.log()
    assert rc == 0, log[-3000:]
    assert "Assertion" not in log and "Traceback" not in log, log[-3000:]


@pytest.fixture()
def ua():
    u = RawUA()
    yield u
    u.close()


def _recorded(box: Box, ua: RawUA, text: str, call_id: str) -> dict:
    resp = ua.call(text, box.addr)
    assert resp is not None and resp.status == 200, resp
    bye = ua.bye(box.addr)
    assert bye is not None and bye.status == 200
    result = box.result_for(call_id, timeout=30)
    assert result is not None, box.log()[-2000:]
    return result


def test_garbage_udp_is_ignored(box, ua):
    rng = os.urandom
    for n in range(300):
        ua.send(rng(1 + n * 7 % 1400), box.addr)
    ua.send(b"INVITE\r\n\r\n", box.addr)
    ua.send(b"\x00" * 64 + b"SIP/2.0 200 OK\r\n\r\n", box.addr)
    assert box.alive()


def test_huge_headers_are_refused_not_fatal(box, ua):
    text, _ = invite(box.uri, sdp(2), metadata("rfc7865-metadata.xml"),
                     headers={"X-Padding": "a" * 60000})
    try:
        ua.send(text, box.addr)
        resp = ua.final(box.addr, 3)
    except OSError:            # larger than a datagram can be: refused by the kernel already
        resp = None
    assert resp is None or resp.status in (400, 513), resp   # 400: no end of headers seen
    assert box.alive()


def test_invite_larger_than_the_stack_receives_gets_513(box, ua):
    meta = metadata("rfc7865-metadata.xml").replace("</recording>", "".join(
        f'<participant participant_id="x{i}"><nameID aor="sip:p{i}@example.com"/></participant>'
        for i in range(60)) + "</recording>")
    text, _ = invite(box.uri, sdp(2), meta)
    assert len(text) > 4000
    resp = ua.call(text, box.addr)
    assert resp is not None and resp.status == 513, resp
    assert box.alive()


def test_malformed_request_line_and_missing_headers(box, ua):
    ua.send("INVITE not-a-uri SIP/2.0\r\nContent-Length: 0\r\n\r\n", box.addr)
    text, _ = invite(box.uri, sdp(1), None, siprec=False)
    ua.send(text.replace("Call-ID:", "X-Removed:"), box.addr)
    ua.final(box.addr, 2)
    assert box.alive()


def test_malformed_sdp_gets_an_error(box, ua):
    text, _ = invite(box.uri, "v=0\r\nm=audio nonsense\r\n", None, siprec=False)
    resp = ua.call(text, box.addr)
    assert resp is not None and resp.status in (400, 488), resp
    assert box.alive()


def test_multipart_without_boundary_gets_400(box, ua):
    text, _ = invite(box.uri, sdp(2), metadata("rfc7865-metadata.xml"))
    text = text.replace('multipart/mixed;boundary="OSS-unique-boundary-42"', "multipart/mixed")
    resp = ua.call(text, box.addr)
    assert resp is not None and resp.status in (400, 488), resp
    assert box.alive()


@pytest.mark.parametrize("name,xml", [("xxe", XXE), ("entity-bomb", BOMB)])
def test_hostile_metadata_gives_a_degraded_recorded_call(box, ua, name, xml):
    text, call_id = invite(box.uri, sdp(2), xml)
    result = _recorded(box, ua, text, call_id)
    notes = " ".join(result["call"]["notes"])
    assert "metadata ignored" in notes and "refused" in notes
    assert "root:" not in str(result)            # /etc/passwd never read
    assert result["call"]["source"] == "siprec"


def test_missing_labels_give_a_recorded_call_in_stream_order(box, ua):
    text, call_id = invite(box.uri, sdp(2, labels=[None, None]), metadata("rfc7865-metadata.xml"))
    result = _recorded(box, ua, text, call_id)
    assert any("no label" in n for n in result["call"]["notes"])


def test_ten_audio_lines_are_answered_up_to_the_limit(box, ua):
    text, call_id = invite(box.uri, sdp(10), metadata("rfc7865-metadata.xml"))
    resp = ua.call(text, box.addr)
    assert resp is not None and resp.status == 200
    answer = resp.text.split("\r\n\r\n", 1)[1]
    ports = [int(line.split()[1]) for line in answer.splitlines() if line.startswith("m=audio")]
    assert len(ports) == 10 and sum(p != 0 for p in ports) == 3     # the rest refused (port 0)
    assert "a=recvonly" in answer
    ua.bye(box.addr)
    result = box.result_for(call_id, 30)
    assert result is not None and any("10 audio streams" in n for n in result["call"]["notes"])


def test_reinvite_with_new_metadata_updates_the_call(box, ua):
    text, call_id = invite(box.uri, sdp(2), metadata("rfc7865-metadata.xml"),
                           headers={"Supported": "timer"})
    resp = ua.call(text, box.addr)
    assert resp is not None and resp.status == 200
    assert resp.headers.get("session-expires", "").startswith("600")     # session timer on
    transfer = metadata("rfc7865-metadata.xml").replace("sip:bob@example.com", "sip:carol@example.com")
    b = "re-invite-boundary"
    body = (f"--{b}\r\nContent-Type: application/sdp\r\n\r\n{sdp(2)}\r\n--{b}\r\n"
            f"Content-Type: application/rs-metadata+xml\r\n\r\n{transfer}\r\n--{b}--\r\n")
    re = ua.reinvite(body, f"multipart/mixed;boundary={b}", box.addr)
    assert re is not None and re.status == 200, re
    ua.bye(box.addr)
    result = box.result_for(call_id, 30)
    assert result is not None
    extra = result["call"]["extra"]
    assert extra["metadata_updates"] == 1
    assert "sip:carol@example.com" in [p["aor"] for p in extra["siprec"]["participants"]]


def test_calls_beyond_the_limit_get_busy(box):
    uas = [RawUA() for _ in range(4)]
    try:
        codes = []
        for u in uas:
            text, _ = invite(box.uri, sdp(2), metadata("rfc7865-metadata.xml"))
            r = u.call(text, box.addr)
            codes.append(r.status if r else None)
        assert codes[:3] == [200, 200, 200] and codes[3] == 486, codes
        for u in uas[:3]:
            u.bye(box.addr)
    finally:
        for u in uas:
            u.close()
    assert wait_for(lambda: not box.state().get("active_calls"), 20)


def test_tcp_garbage_and_abrupt_close(box):
    for payload in (os.urandom(5000), b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\nv=0"):
        with socket.create_connection((HOST, box.sip_port), timeout=3) as s:
            s.sendall(payload)
    assert box.alive()


def test_disk_below_the_floor_refuses_new_calls_with_503(tmp_path):
    # a floor above the free space this disk has: the box must not start recording
    full = Box(tmp_path / "full", free_port(), 46000, max_calls=1,
               env={"APPLIANCE_RETENTION__STOP_RECORDING_FREE_MB": "1000000"})
    full.start()
    ua = RawUA()
    try:
        text, _ = invite(full.uri, sdp(2), metadata("rfc7865-metadata.xml"))
        resp = ua.call(text, full.addr)
        assert resp is not None and resp.status == 503, resp
        assert "disk full" in resp.reason
        assert not list((full.data / "calls").rglob("*.wav"))
        assert full.alive()
    finally:
        ua.close()
        assert full.stop() == 0
    assert "disk.full" in full.log() or "disk state" in full.log()


def test_registration_state_tells_why_it_fails(tmp_path):
    """A registrar that refuses the connection: the state file says so (status, reason,
    failures counting up), not 'not registered yet'."""
    dead = free_port(socket.SOCK_STREAM)
    b = Box(tmp_path / "box", free_port(), 44600, max_calls=2, extra=f"""
[[sip.accounts]]
registrar = "{HOST}:{dead}"
user = "2000"
transport = "tcp"
retry_s = 2
""")
    b.start()
    try:
        def failing() -> list[dict]:
            regs = b.state()["registrations"]
            return regs if regs and regs[0]["failures"] >= 2 else []
        assert wait_for(failing, 60), b.state()
        reg = failing()[0]
        assert not reg["registered"] and reg["status"] >= 400
        assert reg["reason"] and reg["reason"] != "not registered yet"
        assert reg["last_attempt_at"] >= reg["changed_at"] > 0
    finally:
        assert b.stop() == 0
