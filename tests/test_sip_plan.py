"""INVITE planning without a SIP stack: SIPREC metadata, stream mapping, roles, bad input."""

from __future__ import annotations

import pytest

from appliance.config import SipSettings
from appliance.sources.sip.screen import source_allowed
from appliance.sources.sip.message import add_labels
from appliance.sources.sip.message import body_parts, parse_message, sdp_media
from appliance.sources.sip.metadata import MetadataError, parse_metadata
from appliance.sources.sip.plan import plan_call, update_from_reinvite
from siprig import invite, metadata, sdp

TARGET = "sip:recorder@127.0.0.1:5080"


def plan(text: str, **settings):
    return plan_call(parse_message(text), SipSettings(**settings))


def test_rfc7865_metadata_maps_labels_to_participants():
    meta = parse_metadata(metadata("rfc7865-metadata.xml"))
    assert meta.layout == "rfc7865"
    assert [p.aor for p in meta.participants] == ["sip:alice@example.com", "sip:bob@example.com"]
    assert meta.participant_for_label("1").name == "Alice"
    assert meta.participant_for_label("2").name == "Bob"
    assert meta.participant_for_label("3") is None


def test_legacy_oracle_layout_is_understood():
    meta = parse_metadata(metadata("legacy-metadata.xml"))
    assert meta.layout == "legacy"
    assert meta.participant_for_label("10").aor == "sip:+79031112233@carrier.example"
    assert meta.participant_for_label("11").name == "Ivanova"


def test_siprec_roles_from_extension_pattern_and_labels():
    text, _ = invite(TARGET, sdp(2, labels=["10", "11"]), metadata("legacy-metadata.xml"))
    p = plan(text)
    assert p.accepted and p.source == "siprec" and p.audio_count == 2
    assert p.parties == {0: "client", 1: "agent"}      # 214 is an extension
    assert (p.agent, p.client) == ("214", "79031112233")
    assert p.labels == {0: "10", 1: "11"}
    assert p.direction == "inbound"                      # the client's stream comes first


def test_labels_in_other_order_follow_metadata_not_position():
    text, _ = invite(TARGET, sdp(2, labels=["11", "10"]), metadata("legacy-metadata.xml"))
    p = plan(text)
    assert p.parties == {0: "agent", 1: "client"}


def test_agents_list_and_agent_header_win_over_pattern():
    text, _ = invite(TARGET, sdp(2, labels=["10", "11"]), metadata("legacy-metadata.xml"))
    assert plan(text, agents=["+79031112233"]).parties == {0: "agent", 1: "client"}
    text, _ = invite(TARGET, sdp(2, labels=["10", "11"]), metadata("legacy-metadata.xml"),
                     headers={"X-Agent": "79031112233"})
    assert plan(text).parties == {0: "agent", 1: "client"}


def test_direction_header_decides_when_no_number_rule_matches():
    text, _ = invite(TARGET, sdp(2), metadata("rfc7865-metadata.xml"),
                     headers={"X-Direction": "outbound"})
    p = plan(text, agent_pattern="")
    assert p.parties == {0: "agent", 1: "client"} and p.extra["roles"] == "direction"
    text, _ = invite(TARGET, sdp(2), metadata("rfc7865-metadata.xml"),
                     headers={"X-Direction": "incoming"})
    assert plan(text, agent_pattern="").parties == {0: "client", 1: "agent"}


def test_third_mixed_stream_is_answered_but_not_recorded():
    text, _ = invite(TARGET, sdp(3, labels=["caller", "callee", "mixed"]),
                     metadata("three-streams-metadata.xml"))
    p = plan(text)
    assert p.audio_count == 3
    assert p.parties == {0: "agent", 1: "client"}
    assert p.extra["ignored_streams"] == [2]


@pytest.mark.parametrize("boundary", ['"quoted boundary"', "plain42", '"x=y;z"'])
def test_multipart_boundaries_quoted_or_not(boundary):
    text, _ = invite(TARGET, sdp(2), metadata("rfc7865-metadata.xml"), boundary=boundary)
    parts = body_parts(parse_message(text))
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
    assert plan(text).parties == {0: "agent", 1: "client"}


XXE = """<?xml version="1.0"?>
<!DOCTYPE recording [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><participant participant_id="a">
<nameID aor="sip:&xxe;@x"/></participant></recording>"""

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>&lol3;</datamode></recording>"""


@pytest.mark.parametrize("xml,why", [(XXE, "refused"), (BOMB, "refused"),
                                     ("<recording><participant", "not well-formed"),
                                     ("<html/>", "expected <recording>")])
def test_hostile_or_broken_metadata_degrades_to_stream_order(xml, why):
    with pytest.raises(MetadataError, match=why):
        parse_metadata(xml)
    text, _ = invite(TARGET, sdp(2), xml)
    p = plan(text)
    assert p.accepted and p.parties == {0: "agent", 1: "client"}
    assert any("metadata ignored" in n for n in p.notes)
    assert "passwd" not in repr(p.extra)


def test_missing_labels_are_taken_in_order_and_noted():
    text, _ = invite(TARGET, sdp(2, labels=[None, None]), metadata("rfc7865-metadata.xml"))
    p = plan(text)
    assert p.accepted and sorted(p.parties) == [0, 1]
    assert any("no label" in n for n in p.notes)


def test_ten_audio_lines_are_capped():
    text, _ = invite(TARGET, sdp(10), metadata("rfc7865-metadata.xml"))
    p = plan(text)
    assert p.accepted and p.audio_count == 3 and len(p.parties) == 2
    assert any("10 audio streams" in n for n in p.notes)


@pytest.mark.parametrize("body,ctype,status", [
    ("v=0\r\nm=audio x RTP/AVP 8\r\n", "application/sdp", 488),     # malformed m= line
    ("v=0\r\nm=video 4000 RTP/AVP 96\r\n", "application/sdp", 488),  # no audio
    ("--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--", "multipart/mixed", 400),  # no boundary
])
def test_unusable_offers_get_a_sip_error(body, ctype, status):
    text, _ = invite(TARGET, "", None, siprec=False)
    head = text.split("\r\n\r\n")[0].replace("Content-Type: application/sdp", f"Content-Type: {ctype}")
    p = plan(f"{head}\r\n\r\n{body}")
    assert p.status == status and not p.accepted


def test_invite_without_sdp_is_a_delayed_offer_call():
    text, _ = invite(TARGET, "", None, siprec=False, from_user="79160000000")
    p = plan(text)
    assert p.accepted and p.audio_count == 1 and p.parties == {0: "client"}
    assert any("delayed offer" in n for n in p.notes)


def test_plain_single_stream_call_records_the_caller():
    text, _ = invite(TARGET, sdp(1, labels=[None], direction="sendrecv"), None, siprec=False,
                     from_user="79160000000")
    p = plan(text)
    assert p.source == "sip" and p.parties == {0: "client"} and p.client == "79160000000"
    text, _ = invite(TARGET, sdp(1, labels=[None], direction="sendrecv"), None, siprec=False,
                     from_user="205")
    assert plan(text).parties == {0: "agent"}


def test_reinvite_metadata_update_merges_participants():
    text, _ = invite(TARGET, sdp(2), metadata("rfc7865-metadata.xml"))
    p = plan(text)
    before = dict(p.parties)
    update = """<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>partial</datamode>
      <participant participant_id="new1"><nameID aor="sip:carol@example.com"/></participant>
      </recording>"""
    re_text, _ = invite(TARGET, sdp(2), update)
    changes = update_from_reinvite(p, parse_message(re_text))
    assert changes and "carol" in changes[0]
    assert p.extra["metadata_updates"] == 1
    assert len(p.extra["siprec"]["participants"]) == 3
    assert p.parties == before          # the recording's channels stay as answered


def test_compact_and_folded_headers():
    msg = parse_message("INVITE sip:a@b SIP/2.0\r\nc: application/sdp\r\nX-Agent: 1\r\n 02\r\n\r\nv=0")
    assert msg.header("content-type") == "application/sdp"
    assert msg.header("x-agent") == "1 02"


def test_sdp_answer_gets_labels_at_the_end_of_each_section():
    answer = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\nc=IN IP4 h\r\n" \
             "a=recvonly\r\nm=audio 4002 RTP/AVP 8\r\nc=IN IP4 h\r\na=recvonly\r\n"
    out = add_labels(answer, {0: "10", 1: "11"})
    media = sdp_media(out)
    assert [(m.label, m.direction) for m in media] == [("10", "recvonly"), ("11", "recvonly")]
    assert out.index("a=label:10") > out.index("c=IN IP4 h")


def test_source_networks():
    import ipaddress

    nets = [ipaddress.ip_network("192.168.0.0/16"), ipaddress.ip_network("::1/128")]
    assert source_allowed("192.168.1.20:5060", nets)
    assert source_allowed("[::1]:5060", nets)
    assert not source_allowed("8.8.8.8:5060", nets)
    assert not source_allowed("garbage", nets)


def _dialog_meta(tmp_path, routes, target):
    import json

    from appliance.sources.sip.recorded import Dialog
    text, _ = invite("sip:recorder@127.0.0.1:5080", sdp(1), siprec=False,
                     headers={"Record-Route": ", ".join(routes)} if routes else None)
    text = text.replace("Contact: <sip:src@127.0.0.1:5099>", f"Contact: <{target}>")
    d = Dialog.of_invite(text).as_dict() | {"local_tag": "boxtag"}
    meta = tmp_path / "u1.meta.json"
    meta.write_text(json.dumps({"state": "recording", "call": {"extra": {"dialog": d}}}))
    return d, meta


def test_an_orphaned_dialog_is_ended_with_a_bye_from_the_box_side(tmp_path):
    import socket
    import threading

    from appliance.sources.sip import orphans
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    port = peer.getsockname()[1]
    d, meta = _dialog_meta(tmp_path, [f"<sip:127.0.0.1:{port};lr>"], "sip:src@10.9.9.9:5099")
    assert orphans.destination(d) == ("127.0.0.1", port)          # the route, not the target
    got = []

    def answer():
        data, addr = peer.recvfrom(65535)
        got.append(data.decode())
        head = data.decode().split("\r\n\r\n")[0].split("\r\n")
        keep = [h for h in head[1:] if h.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
        peer.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\n\r\n").encode(), addr)
    t = threading.Thread(target=answer)
    t.start()
    assert orphans.hang_up([meta], wait_s=3) == {d["call_id"]: 200}
    t.join()
    peer.close()
    bye = got[0]
    assert bye.startswith("BYE sip:src@10.9.9.9:5099 SIP/2.0")          # the caller's Contact
    assert f"Route: <sip:127.0.0.1:{port};lr>" in bye
    assert "From: <sip:recorder@127.0.0.1:5080>;tag=boxtag" in bye     # the box's side
    assert f";tag={d['remote_tag']}" in bye.split("To:")[1].split("\r\n")[0]


def test_incomplete_dialogs_are_left_alone(tmp_path):
    from appliance.sources.sip import orphans
    d, meta = _dialog_meta(tmp_path, [], "sip:src@127.0.0.1:9")
    assert orphans.destination(d) == ("127.0.0.1", 9)
    d["local_tag"] = ""                     # never confirmed: no dialog to end
    assert not orphans.complete(d)
    meta.write_text("{not json")
    assert orphans.hang_up([meta], wait_s=0.1) == {}


def test_registration_keeps_the_registrars_last_answer():
    from appliance.sources.sip.registration import Registration
    reg = Registration("sip:2000@pbx")
    assert reg.record(408, "Request Timeout", False, 0, now=100.0)       # first answer
    assert not reg.record(408, "Request Timeout", False, 0, now=130.0)
    assert (reg.status, reg.failures, reg.changed_at, reg.last_attempt_at) == (408, 2, 100.0, 130.0)
    assert reg.record(200, "OK", True, 30, now=140.0)
    assert reg.registered and reg.failures == 0 and reg.expires_s == 30 and reg.changed_at == 140.0


def test_reinvite_directions_put_streams_on_hold_and_take_them_off():
    from appliance.sources.sip.plan import hold_from_reinvite

    text, _ = invite(TARGET, sdp(2), metadata("rfc7865-metadata.xml"))
    p = plan(text)
    paused, _ = invite(TARGET, sdp(2, direction="inactive"), None, siprec=False)
    assert hold_from_reinvite(p, parse_message(paused)) == {"agent": True, "client": True}
    resumed, _ = invite(TARGET, sdp(2), None, siprec=False)     # SIPREC streams: sendonly
    assert hold_from_reinvite(p, parse_message(resumed)) == {"agent": False, "client": False}
    # a plain call: the caller's sendonly offer is its hold
    call, _ = invite(TARGET, sdp(1, labels=[None], direction="sendrecv"), None, siprec=False,
                     from_user="79160000000")
    q = plan(call)
    held, _ = invite(TARGET, sdp(1, labels=[None], direction="sendonly"), None, siprec=False)
    assert hold_from_reinvite(q, parse_message(held)) == {"client": True}
    back, _ = invite(TARGET, sdp(1, labels=[None], direction="sendrecv"), None, siprec=False)
    assert hold_from_reinvite(q, parse_message(back)) == {"client": False}
    no_sdp, _ = invite(TARGET, "", None, siprec=False)
    assert hold_from_reinvite(q, parse_message(no_sdp)) == {}


def test_a_sip_hold_is_in_the_call_json_from_media_time_to_media_time(tmp_path):
    import threading

    from appliance.config import Settings
    from appliance.sources.sip.recorded import Dialog, RecordedCall

    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    settings.asr.enabled = False
    text, _ = invite(TARGET, sdp(1, labels=[None], direction="sendrecv"), None, siprec=False,
                     from_user="79160000000")
    done = threading.Event()
    results = []

    def on_done(result):
        results.append(result)
        done.set()
    rec = RecordedCall(settings, plan(text), Dialog("c-hold", "t1"), None, on_done=on_done)
    feed = rec.sink(0, "client")
    silence = bytes(640)                      # 20 ms at 16 kHz
    for _ in range(100):
        feed(silence)
    held, _ = invite(TARGET, sdp(1, labels=[None], direction="sendonly"), None, siprec=False)
    rec.reinvite(held)
    for _ in range(250):
        feed(silence)
    back, _ = invite(TARGET, sdp(1, labels=[None], direction="sendrecv"), None, siprec=False)
    rec.reinvite(back)
    for _ in range(50):
        feed(silence)
    rec.finish("bye")
    assert done.wait(30)
    result = results[0]
    assert result["call"]["extra"]["sip_holds"] == [["client", 2.0, 7.0, "sdp"]]
    assert result["holds"] == [{"party": "client", "start": 2.0, "end": 7.0, "duration_s": 5.0,
                                "by": ["sip"]}]
    assert result["totals"]["hold_s"] == 5.0


def test_the_latest_hold_signal_says_whether_rtp_may_stop(tmp_path):
    """A party is on hold by the latest signal about it, SDP or metadata: a hold opened by
    SIPREC metadata and ended by a re-INVITE with an active stream is over (the call's RTP
    timeout is the short one again), and each change restarts the idle clock."""
    from appliance.config import Settings
    from appliance.sources.sip.recorded import Dialog, RecordedCall

    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    settings.asr.enabled = False
    text, _ = invite(TARGET, sdp(1, labels=[None], direction="sendrecv"), None, siprec=False,
                     from_user="79160000000")
    rec = RecordedCall(settings, plan(text), Dialog("c-hold2", "t1"), None)
    try:
        assert not rec.on_hold and rec.hold_changed_at == 0.0
        rec._hold_state({"client": True}, "metadata")
        assert rec.on_hold
        first = rec.hold_changed_at
        assert first > 0.0
        rec._hold_state({"client": True}, "sdp")         # the same state: no change
        assert rec.on_hold and rec.hold_changed_at == first
        back, _ = invite(TARGET, sdp(1, labels=[None], direction="sendrecv"), None, siprec=False)
        rec.reinvite(back)
        assert not rec.on_hold and rec.hold_changed_at >= first
    finally:
        rec.finish("bye")


def test_siprec_metadata_saying_a_participant_stopped_sending_is_their_hold():
    from appliance.sources.sip.plan import hold_from_metadata

    text, _ = invite(TARGET, sdp(2), metadata("rfc7865-metadata.xml"))
    p = plan(text)
    alice, bob = p.parties[0], p.parties[1]         # labels 1 and 2: Alice's and Bob's streams
    assert {alice, bob} == {"agent", "client"}

    def update(sends: bool) -> str:
        assoc = ("<send>i1Pz3to5hGk8fuXl+PbwCw==</send>" if sends else "") + \
            "<recv>UAAMm5GRQKSCMVvLyl4rFw==</recv>"
        xml = ('<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>partial'
               '</datamode><participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==">'
               f'{assoc}</participantstreamassoc></recording>')
        return invite(TARGET, sdp(2), xml)[0]

    assert hold_from_metadata(p, parse_message(update(False))) == {bob: True}
    update_from_reinvite(p, parse_message(update(False)))
    # the stream stays Bob's after the update, so sending again is read as his too
    assert hold_from_metadata(p, parse_message(update(True))) == {bob: False}
    # a full snapshot (a transfer) where both send: nobody on hold
    transfer, _ = invite(TARGET, sdp(2), metadata("rfc7865-metadata.xml").replace(
        "sip:bob@example.com", "sip:carol@example.com"))
    assert hold_from_metadata(p, parse_message(transfer)) == {alice: False, bob: False}
    no_meta, _ = invite(TARGET, sdp(2), None, siprec=False)
    assert hold_from_metadata(p, parse_message(no_meta)) == {}
