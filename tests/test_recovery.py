"""A live call cut by a crash is repaired and analysed at the next start."""

from __future__ import annotations

import json

import numpy as np

from appliance.bus import Bus
from appliance.media.live import LiveCall
from appliance.media.recovery import recover_unfinished, unfinished_calls
from appliance.media.session import CallMeta
from conftest import to_pcm


def test_unfinished_recording_is_recovered_with_its_metadata(real_call, settings):
    audio, _ = real_call
    pcm = to_pcm(audio)[: 16000 * 10]
    settings.recording.format = "flac"
    meta = CallMeta(source="siprec", call_id="u1", agent="101", client="79161234567",
                    direction="inbound", extra={"sip_call_id": "abc@pbx"})
    live = LiveCall(settings, meta, None, "u1")
    for i in range(0, len(pcm), 320):
        live.push("agent", pcm[i:i + 320, 0].tobytes())
        live.push("client", pcm[i:i + 320, 1].tobytes())
    # the process dies: no end(), the worker's last writes and the header update never happen
    live._q.put(None)
    live.wait(30)
    meta_doc = json.loads(live.meta_path.read_text())
    meta_doc["state"] = "recording"
    live.meta_path.write_text(json.dumps(meta_doc))
    live.result_path.unlink()
    with open(live.wav_path if live.wav_path.suffix == ".wav" else live.wav_path.with_suffix(".wav"),
              "wb") as fh:
        fh.write(b"RIFF\0\0\0\0WAVEfmt " + bytes(36))      # a header that was never finished
        fh.write(np.ascontiguousarray(pcm).tobytes())
    live.wav_path.with_suffix(".flac").unlink(missing_ok=True)

    assert unfinished_calls(settings.paths.calls) == [live.meta_path]
    written = recover_unfinished(settings)
    assert written == [live.result_path]
    result = json.loads(live.result_path.read_text())
    call = result["call"]
    assert (call["source"], call["agent"], call["client"]) == ("siprec", "101", "79161234567")
    assert call["extra"]["sip_call_id"] == "abc@pbx"
    assert call["extra"]["end_reason"] == "recovered after an appliance crash"
    assert abs(result["duration_s"] - 10.0) < 0.05
    assert call["extra"]["recording"].endswith(".flac")
    assert unfinished_calls(settings.paths.calls) == []


def test_bus_delivers_by_prefix_and_survives_a_failing_handler():
    bus, seen = Bus(), []
    bus.subscribe("call.", lambda e: seen.append(e.topic))
    bus.subscribe("", lambda e: 1 / 0)
    bus.publish("call.ended", uid="x")
    bus.publish("sip.registration", registered=True)
    assert seen == ["call.ended"]
