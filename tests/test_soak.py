"""An office's day, compressed: hundreds of calls of every kind through reused call slots,
with the box's threads, open files and memory watched (bench/soak.py runs the long one)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from appliance.simulate.calls import build_call
from appliance.simulate.pcap import wav_to_pcap
from appliance.simulate.soak import Soak, SoakPlan
from conftest import to_pcm, write_wav
from siprig import Box, free_port


@pytest.mark.slow
def test_300_calls_of_every_kind_are_all_recorded_and_nothing_leaks(corpus, tmp_path):
    calls = []
    for k in range(4):
        audio, _ = build_call(corpus, np.random.default_rng(700 + k), turns=4)
        pcm = to_pcm(audio)
        calls.append((write_wav(tmp_path / f"agent{k}.wav", pcm[:, 0]),
                      write_wav(tmp_path / f"client{k}.wav", pcm[:, 1])))
    pcap = wav_to_pcap(calls[0][1], tmp_path / "speech.pcap")
    # two capture processes behind the SIP front, recognition on: the box as shipped, smaller
    box = Box(tmp_path / "box", free_port(), 20000, asr=True, max_calls=8,
              extra="rtp_timeout_s = 3")
    box.start()
    try:
        soak = Soak(box.addr, box.data, box.proc.pid, 8, tmp_path / "soak", calls, pcap,
                    box.results)
        report = soak.run(SoakPlan(calls=300, burst_every=100))
    finally:
        rc = box.stop()
    summary = json.dumps({k: v for k, v in report.as_dict().items() if k != "samples"},
                         indent=1)
    assert report.problems() == [], summary
    counts = report.counts()
    assert counts["offered"] >= 300 and counts["answered"] >= 150, summary
    assert counts["recorded"] == counts["answered"], summary
    assert counts["refused_clean"] >= 1, summary       # the bursts went above capacity
    assert set(counts["by_kind"]) >= {"siprec", "plain", "hold", "sipp", "vanish", "cancel",
                                      "refused", "burst"}, summary
    # a pjsua2 caller's hold (re-INVITE sendonly, then back) is in the call JSON's holds
    assert counts["held"] >= 3 and counts["held_with_sip_hold"] >= 0.9 * counts["held"], summary
    assert rc == 0 and "Traceback" not in box.log(), box.log()[-3000:]


@pytest.mark.slow
def test_a_held_siprec_session_without_rtp_is_not_a_dead_call(corpus, tmp_path):
    """An SRC pauses a held call's streams (a=inactive) and sends no RTP until it resumes.
    A hold longer than the RTP timeout is not a dead call; a hold longer than the hold
    timeout is (a caller gone while on hold)."""
    import threading

    from appliance.simulate.soak import _Callers

    audio, _ = build_call(corpus, np.random.default_rng(71), turns=3)
    pcm = to_pcm(audio)
    wavs = [str(write_wav(tmp_path / "client.wav", pcm[:, 1])),
            str(write_wav(tmp_path / "agent.wav", pcm[:, 0]))]
    box = Box(tmp_path / "box", free_port(), 20000, max_calls=4,
              extra="rtp_timeout_s = 2\nrtp_hold_timeout_s = 8")
    box.start()
    reports: dict[str, dict] = {}
    got = threading.Condition()

    def on_report(r: dict) -> None:
        with got:
            reports[r["id"]] = r
            got.notify_all()
    callers = _Callers(1, tmp_path, on_report, 36000)
    try:
        # held 6 s (over the RTP timeout, under the hold timeout), then back and on to a BYE
        assert callers.place({"id": "short", "target": box.uri, "siprec": True,
                              "duration_s": 9.0, "hold": [1.0, 7.0], "streams": wavs})
        # held past the hold timeout: the box ends it
        assert callers.place({"id": "long", "target": box.uri, "siprec": True,
                              "duration_s": 20.0, "hold": [1.0, 19.0], "streams": wavs})
        with got:
            assert got.wait_for(lambda: len(reports) == 2, 60), reports
        short, long_ = reports["short"], reports["long"]
        assert short["answered"] and short["held"] and not short["remote_bye"], short
        assert long_["answered"] and long_["remote_bye"], long_
        # by the hold timeout (8 s after the hold began at 1 s), not the RTP timeout (2 s)
        assert long_["ended_at"] - long_["started_at"] >= 9.0, long_
        results = {k: box.result_for(r["sip_call_id"]) for k, r in reports.items()}
        assert all(results.values()), reports
        ended = {k: r["call"]["extra"].get("end_reason") for k, r in results.items()}
        assert ended["long"] == "rtp timeout" and ended["short"] != "rtp timeout", ended
        assert results["short"]["holds"], results["short"]
    finally:
        callers.close()
        rc = box.stop()
    assert rc == 0 and "Traceback" not in box.log(), box.log()[-3000:]


@pytest.mark.slow
def test_a_flood_above_capacity_leaves_the_box_recording_the_next_call(corpus, tmp_path):
    """2,000 INVITEs (never ACKed) and 2,000 OPTIONS as fast as loopback takes them: the box
    answers what it can hold, refuses the rest with 486/503, ends the unacknowledged calls
    (their SIP slots are free once the transactions time out), and records the next real
    call with nothing left over."""
    import socket
    import threading
    import time

    from appliance.simulate.procstats import tree_usage
    from appliance.simulate.rawsip import RawUA, invite, parse_response, sdp
    from appliance.simulate.soak import open_recordings
    from siprig import start_src, wait_for

    audio, _ = build_call(corpus, np.random.default_rng(77), turns=3)
    pcm = to_pcm(audio)
    agent, client = (write_wav(tmp_path / "agent.wav", pcm[:, 0]),
                     write_wav(tmp_path / "client.wav", pcm[:, 1]))
    box = Box(tmp_path / "box", free_port(), 20000, max_calls=8, extra="rtp_timeout_s = 3")
    box.start()
    try:
        assert wait_for(lambda: tree_usage(box.proc.pid).processes >= 3, 10)
        before = tree_usage(box.proc.pid)
        ua = RawUA()
        finals: dict[str, int] = {}
        stop = threading.Event()

        def listen() -> None:
            ua.sock.settimeout(0.2)
            while not stop.is_set():
                try:
                    data, _ = ua.sock.recvfrom(65535)
                except socket.timeout:
                    continue
                if data.startswith(b"SIP/2.0"):
                    r = parse_response(data)
                    if r.status >= 200 and r.headers.get("cseq", "").endswith("INVITE"):
                        finals.setdefault(r.headers.get("call-id", ""), r.status)
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        sent = []
        for n in range(2000):
            text, cid = invite(box.uri, sdp(1, port=ua.port + 1), siprec=False)
            ua.send(text.replace(":5099", f":{ua.port}"), box.addr)
            sent.append(cid)
            probe = RawUA.options_text(box.addr, ua.port)
            ua.send(probe, box.addr)
            if n % 100 == 99:
                time.sleep(0.05)          # about 2,000 INVITEs and OPTIONS a second
        # every call the box answered is ended and written (no RTP: the RTP timeout)
        def answered_all_written() -> bool:
            answered = sum(1 for s in list(finals.values()) if s == 200)
            return 0 < answered <= len(box.written()) and not box.state()["active_calls"]
        assert wait_for(answered_all_written, 120), (box.state(), len(finals))
        stop.set()
        listener.join()
        ua.close()
        statuses = set(finals.values())
        assert statuses <= {200, 486, 503}, statuses
        answered = sum(1 for s in finals.values() if s == 200)
        # An answer never acknowledged holds its SIP call slot until the transaction gives up
        # (timer H, 32 s): until then new calls get a clean 486, then they are answered.
        probes: list[int] = []

        def probe_answered() -> bool:
            p = RawUA()
            text, _ = invite(box.uri, sdp(1, port=p.port + 1), siprec=False)
            r = p.call(text, box.addr, timeout=5)
            probes.append(r.status if r else 0)
            if r is not None and r.status == 200:
                p.bye(box.addr)
            p.close()
            return probes[-1] == 200
        assert wait_for(probe_answered, 90, step=2.0), probes
        assert set(probes) <= {200, 486}, probes
        answered += 1
        # the next legitimate call is recorded
        src = start_src(box.uri, [client, agent], free_port(), 30000)
        out = src.communicate(timeout=120)[0]
        assert src.returncode == 0, out[-2000:]
        assert wait_for(lambda: len(box.results()) >= answered + 1, 120), \
            (answered, len(box.results()))
        assert open_recordings(box.data) == []
        assert wait_for(lambda: not box.state()["active_calls"], 30)
        after = tree_usage(box.proc.pid)
        assert after.threads <= before.threads + 8, (before, after)
        assert after.open_files <= before.open_files + 24, (before, after)
    finally:
        rc = box.stop()
    assert rc == 0 and "Traceback" not in box.log(), box.log()[-3000:]
