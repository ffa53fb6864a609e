"""A live call cut by a crash is repaired and analysed at the next start."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

from appliance.sources.recovery import recover_unfinished, unfinished_calls
from conftest import to_pcm


CRASHING_CALL = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import numpy as np
    from appliance.config import Settings
    from appliance.media.live import LiveCall
    from appliance.media.session import CallMeta
    s = Settings()
    s.paths.data_dir, s.recording.format = Path(sys.argv[1]), "flac"
    pcm = np.load(sys.argv[2])
    meta = CallMeta(source="siprec", call_id="u1", agent="101", client="79161234567",
                    direction="inbound", extra={"sip_call_id": "abc@pbx"})
    live = LiveCall(s, meta, None, "u1")
    live.recorder.sync_s = 0.0          # every frame durable as written: no wait for the interval
    for i in range(0, len(pcm), 320):
        live.push("agent", pcm[i:i + 320, 0].tobytes())
        live.push("client", pcm[i:i + 320, 1].tobytes())
    while live.recorder.synced_s < len(pcm) / 16000 - 0.5:
        time.sleep(0.02)
    os._exit(9)                                   # the process dies mid-call
""")


def test_unfinished_recording_is_recovered_with_its_metadata(real_call, settings, tmp_path):
    audio, _ = real_call
    pcm = to_pcm(audio)[: 16000 * 10]
    settings.recording.format = "flac"
    np.save(tmp_path / "pcm.npy", pcm)
    crash = subprocess.run([sys.executable, "-c", CRASHING_CALL, str(settings.paths.data_dir),
                            str(tmp_path / "pcm.npy")], capture_output=True, text=True, timeout=120)
    assert crash.returncode == 9, crash.stderr
    metas = unfinished_calls(settings.paths.calls)
    assert [m.name for m in metas] == ["u1.meta.json"]
    assert json.loads(metas[0].read_text())["state"] == "recording"
    written = recover_unfinished(settings)
    assert [w.name for w in written] == ["u1.json"]
    result = json.loads(written[0].read_text())
    call = result["call"]
    assert (call["source"], call["agent"], call["client"]) == ("siprec", "101", "79161234567")
    assert call["extra"]["sip_call_id"] == "abc@pbx"
    assert call["extra"]["end_reason"] == "recovered after an appliance crash"
    assert 9.5 <= result["duration_s"] <= 10.02            # at most the last sync lost
    assert call["extra"]["recording"].endswith(".flac")
    assert unfinished_calls(settings.paths.calls) == []
