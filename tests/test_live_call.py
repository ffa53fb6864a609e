"""Live calls: frames pushed from a capture thread give the same analysis as the file, and the
recording written while the call streams survives a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from appliance.media.live import LiveCall
from appliance.media.recorder import repair_wav
from appliance.media.session import CallMeta
from appliance.sources.files import analyse_files, open_call_files
from conftest import to_pcm, write_wav

FRAME = 320


def _feed(live: LiveCall, agent: np.ndarray, client: np.ndarray | None) -> None:
    for i in range(0, len(agent), FRAME):
        live.push("agent", agent[i:i + FRAME].tobytes())
        if client is not None:
            live.push("client", client[i:i + FRAME].tobytes())
    live.end("test over")


def test_live_call_matches_file_analysis_and_records_exact_audio(real_call, settings, tmp_path):
    audio, _ = real_call
    pcm = to_pcm(audio)
    settings.recording.format = "flac"
    live = LiveCall(settings, CallMeta(source="sip", call_id="t1"), None, "t1")
    feeder = threading.Thread(target=_feed, args=(live, pcm[:, 0].copy(), pcm[:, 1].copy()))
    feeder.start()
    feeder.join()
    assert live.wait(60)
    file_result = analyse_files([write_wav(tmp_path / "c.wav", pcm)], settings)
    assert live.result["segments"] == file_result["segments"]
    assert live.result["interruptions"] == file_result["interruptions"]
    rec, rate = sf.read(str(live.wav_path), dtype="int16")
    assert live.wav_path.suffix == ".flac" and rate == 16000
    assert np.array_equal(rec, pcm)
    assert live.result["call"]["extra"]["capture"]["padded_frames"] == {"agent": 0, "client": 0}
    assert live.meta_path.exists() and '"state": "done"' in live.meta_path.read_text()


def test_single_stream_call_records_silence_for_the_other_party(speech, settings):
    settings.recording.format = "wav"
    live = LiveCall(settings, CallMeta(source="sip", call_id="t2"), None, "t2", parties=("client",))
    client = to_pcm(speech)
    for i in range(0, len(client), FRAME):
        live.push("client", client[i:i + FRAME].tobytes())
    live.end("bye")
    assert live.wait(30)
    rec, _ = sf.read(str(live.wav_path), dtype="int16")
    assert np.array_equal(rec[:, 1], client) and not rec[:, 0].any()
    assert not [s for s in live.result["segments"] if s["party"] == "agent"]
    assert live.result["call"]["extra"]["end_reason"] == "bye"


WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from pathlib import Path
    from appliance.media.recorder import StereoRecorder
    rec = StereoRecorder(Path(sys.argv[1]), sync_s=0.5)
    block = (np.arange(320) % 200).astype(np.int16)
    n = 0
    while True:
        rec.write(block, -block)
        n += 320
        print(n, flush=True)
        time.sleep(0.02)   # real time: one 20 ms frame per 20 ms
""")


def test_recording_survives_sigkill_losing_at_most_one_sync_interval(tmp_path):
    rng = np.random.default_rng(5)
    for attempt in range(5):
        path = tmp_path / f"r{attempt}.wav"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
        time.sleep(1.5 + rng.uniform(0, 1.5))
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0].split()
        written = int(out[-1]) if out else 0
        # readable as it is, by the same file source the inbox uses
        call = open_call_files([path], _settings(tmp_path))
        readable = call.agent.frames
        assert readable >= written - int(0.5 * 16000) - 2 * 320, (readable, written)
        # and the header can be made whole again (user-space buffers are lost with the process)
        repaired = repair_wav(path) * 16000
        assert readable <= repaired and repaired >= written - int(0.5 * 16000)
        data, _ = sf.read(str(path), dtype="int16")
        expected = np.tile((np.arange(320) % 200).astype(np.int16), len(data) // 320)
        assert len(data) > 0 and np.array_equal(data[:, 0], expected)


def _settings(tmp_path):
    from appliance.config import Settings

    s = Settings()
    s.paths.data_dir = tmp_path
    return s


def test_a_recorded_call_ends_exactly_once_whoever_ends_it(settings):
    """BYE, RTP timeout and shutdown racing each other: one end, one call JSON."""
    import threading

    from appliance.sources.sip.plan import CallPlan
    from appliance.sources.sip.recorded import Dialog, RecordedCall
    plan = CallPlan(audio_count=2, parties={0: "client", 1: "agent"}, source="siprec")
    rec = RecordedCall(settings, plan, Dialog("cid@pbx", "tag1"), None)
    pcm = np.zeros(320, np.int16).tobytes()
    for _ in range(50):
        rec.sink(0, "client")(pcm)
        rec.sink(1, "agent")(pcm)
    won: list[bool] = []
    start = threading.Barrier(8)

    def end(reason: str) -> None:
        start.wait()
        won.append(rec.finish(reason))
    threads = [threading.Thread(target=end, args=(f"reason {i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 7 + [True]
    assert rec.live.wait(30)
    results = [p for p in settings.paths.calls.glob("*/*.json") if not p.name.endswith(".meta.json")]
    assert len(results) == 1
    result = json.loads(results[0].read_text())
    assert result["call"]["extra"]["end_reason"] == rec.end_reason
    assert result["call"]["extra"]["dialog"]["call_id"] == "cid@pbx"
    assert json.loads(rec.live.meta_path.read_text())["state"] == "done"


def test_the_capture_thread_never_waits_for_a_metadata_sync(settings, monkeypatch):
    """Durable metadata writes (an fsync can take seconds on a busy disk) happen on the
    call's own thread: the thread that answers calls and taps media only queues them."""
    from appliance.system import atomic
    from waiting import wait_for

    synced_on: list[int] = []
    real_fsync = atomic._os_fsync

    def fsync(fd: int) -> None:
        synced_on.append(threading.get_ident())
        real_fsync(fd)
    monkeypatch.setattr(atomic, "_os_fsync", fsync)
    settings.recording.format = "wav"
    here = threading.get_ident()
    live = LiveCall(settings, CallMeta(source="sip", call_id="m1"), None, "m1")
    live.meta.extra["dialog"] = {"local_tag": "box-tag"}        # the ACK came in
    live.meta_changed()
    live.push("agent", np.zeros(FRAME, np.int16).tobytes())

    def meta() -> dict:
        try:
            return json.loads(live.meta_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
    assert wait_for(lambda: meta().get("call", {}).get("extra", {}).get("dialog"), 30)
    assert meta()["state"] == "recording"
    assert here not in synced_on and synced_on
    live.end("test over")
    assert live.wait(60)
    assert meta()["state"] == "done" and meta()["call"]["extra"]["dialog"]["local_tag"] == "box-tag"
    assert here not in synced_on


def test_a_failed_metadata_write_does_not_stop_the_recording(settings, monkeypatch, caplog):
    from appliance.system import atomic

    real_write = atomic._os_write

    def write(fd: int, data) -> int:      # the disk is full while the call records
        if b'"state": "recording"' in bytes(data[:200]):
            raise OSError(28, "No space left on device")
        return real_write(fd, data)
    monkeypatch.setattr(atomic, "_os_write", write)
    settings.recording.format = "wav"
    live = LiveCall(settings, CallMeta(source="sip", call_id="m2"), None, "m2")
    pcm = np.full(FRAME * 50, 1000, np.int16)
    for i in range(0, len(pcm), FRAME):
        live.push("agent", pcm[i:i + FRAME].tobytes())
        live.push("client", pcm[i:i + FRAME].tobytes())
    live.end("test over")
    assert live.wait(60)
    assert "call metadata not written" in caplog.text
    assert live.recorder.duration_s == 1.0
    assert json.loads(live.meta_path.read_text())["state"] == "done"


def test_metadata_not_written_is_retried_while_the_call_records(settings, monkeypatch, caplog):
    """Until the metadata is on disk a crash could not be recovered: a failed write is tried
    again (a second later) while the call goes on, not only at its end."""
    from appliance.system import atomic
    from waiting import wait_for

    real_write = atomic._os_write
    failures = [1]

    def write(fd: int, data) -> int:      # the first attempt hits a full disk
        if failures[0] and b'"state": "recording"' in bytes(data[:200]):
            failures[0] -= 1
            raise OSError(28, "No space left on device")
        return real_write(fd, data)
    monkeypatch.setattr(atomic, "_os_write", write)
    caplog.set_level("INFO", logger="appliance.media.live")
    settings.recording.format = "wav"
    live = LiveCall(settings, CallMeta(source="sip", call_id="m3"), None, "m3")
    frame = np.zeros(FRAME, np.int16).tobytes()

    def streaming_and_written() -> bool:
        live.push("agent", frame)
        live.push("client", frame)
        return live.meta_path.exists()
    assert wait_for(streaming_and_written, 30, step=0.02)
    assert json.loads(live.meta_path.read_text())["state"] == "recording"
    assert "call metadata not written" in caplog.text and "call metadata written" in caplog.text
    live.end("test over")
    assert live.wait(60)
    assert json.loads(live.meta_path.read_text())["state"] == "done"
