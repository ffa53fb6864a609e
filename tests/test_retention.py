"""Retention: recordings by age and by the free-space watermark (oldest first, never one
being written), call data kept longer, the store reconciled with the disk, disk alerts; a
disk that fills during a call stops the recording and keeps the analysis."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from appliance.bus import Bus
from appliance.store.database import Database
from appliance.store.ingest import Ingester
from appliance.store.retention import Retention
from appliance.system.disk import DiskState, RecordingGuard, disk_state
from conftest import to_pcm
from storedata import result

DAY = 86400
NOW = time.mktime((2026, 11, 20, 12, 0, 0, 0, 0, -1))


MB = 2**20


def _call(calls, uid, days_ago, size=10 * MB, state="done"):
    started = NOW - days_ago * DAY
    day = calls / time.strftime("%Y-%m-%d", time.localtime(started))
    day.mkdir(parents=True, exist_ok=True)
    with open(day / f"{uid}.flac", "wb") as fh:
        fh.truncate(size)                           # sparse: sized, not written
    (day / f"{uid}.meta.json").write_text(json.dumps({"uid": uid, "state": state}))
    if state == "done":
        res = result(uid, started)
        res["call"]["extra"]["recording"] = f"{uid}.flac"
        (day / f"{uid}.json").write_text(json.dumps(res))
    return day


class SmallDisk:
    """A disk of ``capacity`` bytes holding the files under the calls folder."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity

    def __call__(self, path):
        used = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return DiskState(self.capacity - used, self.capacity)


def _setup(settings, tmp_path, capacity):
    settings.paths.data_dir = tmp_path
    settings.retention.audio_days = 30
    settings.retention.metadata_days = 60
    settings.retention.min_free_percent = 20
    settings.retention.stop_recording_free_mb = 16
    calls = settings.paths.calls
    for uid, days in [("old70", 70), ("old40", 40), ("d10", 10), ("d5", 5), ("d1", 1)]:
        _call(calls, uid, days)
    _call(calls, "live", 0, state="recording")
    db = Database(tmp_path)
    assert Ingester(db.calls, calls).scan() == 5
    events = []
    bus = Bus()
    bus.subscribe("disk.", lambda e: events.append((e.topic, e.data)))
    return db, Retention(settings, db, bus, disk=SmallDisk(capacity)), events


def test_age_watermark_and_call_data_retention(settings, tmp_path):
    # 60 MB of recordings on a 100 MB disk: after the age rule 40 MB remain (60 % free); a
    # 20 % watermark needs no more. Then a 48 MB disk: the oldest go until 20 % is free.
    db, retention, events = _setup(settings, tmp_path, capacity=100 * MB)
    report = retention.run(NOW)
    calls = settings.paths.calls
    assert report.by_reason == {"age": 2}                     # old70 and old40
    assert report.calls_forgotten == 1 and "old70" not in db.calls
    assert not list(calls.rglob("old70*"))                    # its JSON and folder too
    assert db.calls.get("old40")["audio"] == "deleted" and db.calls.get("old40")["recording"] is None
    assert (calls / time.strftime("%Y-%m-%d", time.localtime(NOW - 40 * DAY)) / "old40.json").exists()
    assert db.calls.get("d10").get("audio") is None
    assert events == [("disk.pruned", {"files": 2, "bytes": 20 * MB, "reasons": {"age": 2}})]

    retention.disk = SmallDisk(capacity=48 * MB)               # 40 MB used: 16.7 % free
    report = retention.run(NOW)
    assert report.by_reason == {"disk": 1}                     # d10, the oldest: 37.5 % free
    assert db.calls.get("d10")["audio_reason"] == "disk"
    assert db.calls.get("d5").get("audio") is None
    assert list(calls.rglob("live.flac"))                      # being recorded: never deleted
    assert [t for t, _ in events] == ["disk.pruned", "disk.pruned"]

    retention.settings.retention.min_free_percent = 0         # only the floor is left
    retention.disk = SmallDisk(capacity=30 * MB + 16 * MB)     # just under 16 MB free
    retention.run(NOW)
    assert [t for t, _ in events][-1] == "disk.full"
    assert "refused" in events[-1][1]["message"]
    retention.disk = SmallDisk(capacity=10**9)
    retention.run(NOW)
    assert [t for t, _ in events][-1] == "disk.ok"
    db.close()
    db = Database(tmp_path)                                   # all of it durable
    assert db.calls.get("d10")["audio"] == "deleted" and "old70" not in db.calls
    assert len(db.calls) == 4
    db.close()


def test_reconcile_marks_recordings_gone_from_the_disk(settings, tmp_path):
    db, retention, _ = _setup(settings, tmp_path, capacity=10**9)
    next(settings.paths.calls.rglob("d5.flac")).unlink()
    assert retention.reconcile() == 1
    assert db.calls.get("d5")["audio"] == "missing"
    assert retention.reconcile() == 0
    db.close()


def test_recording_guard_reads_the_real_disk(tmp_path):
    free = disk_state(tmp_path).free_mb
    assert RecordingGuard(tmp_path, floor_mb=16).allowed() == (free >= 16)
    assert RecordingGuard(tmp_path, floor_mb=free + 10_000).allowed() is False


FILLING_DISK = textwrap.dedent("""
    import json, resource, signal, sys, time
    from pathlib import Path
    import numpy as np
    from appliance.config import Settings
    from appliance.media.live import LiveCall
    from appliance.media.session import CallMeta
    s = Settings()
    s.paths.data_dir, s.recording.format, s.recording.sync_s = Path(sys.argv[1]), "flac", 0.2
    pcm = np.load(sys.argv[2])
    # no file may grow beyond 260 kB: the recording (64 kB/s) hits it after about 4 s
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (260_000, 260_000))
    live = LiveCall(s, CallMeta(source="sip", call_id="full"), None, "full")

    def feed(a, b):
        for i in range(a, b, 320):
            live.push("agent", pcm[i:i + 320].tobytes())
            live.push("client", np.zeros(320, np.int16).tobytes())
    first = 16000 * 3
    feed(0, first)
    while live.recorder.data_bytes < first * 4:       # written ...
        time.sleep(0.02)
    time.sleep(0.3)
    feed(first, first + 320)                          # ... and synced by a write after sync_s
    while live.recorder.synced_s < 3.0:
        time.sleep(0.02)
    feed(first + 320, len(pcm) - 320)                 # the disk fills during this part
    live.end("bye")
    assert live.wait(60)
    print(json.dumps({"result": live.result, "wav": str(live.wav_path), "meta": str(live.meta_path)}))
""")


def test_disk_filling_during_a_call_stops_the_recording_and_keeps_the_analysis(speech, settings,
                                                                                tmp_path):
    pcm = to_pcm(speech)
    np.save(tmp_path / "pcm.npy", pcm)
    run = subprocess.run([sys.executable, "-c", FILLING_DISK, str(settings.paths.data_dir),
                          str(tmp_path / "pcm.npy")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    live_wav, live_meta = Path(out["wav"]), Path(out["meta"])
    res = out["result"]
    assert res["duration_s"] > len(pcm) / 16000 - 1          # analysed to the end
    assert any("recording stopped" in n and "File too large" in n for n in res["call"]["notes"])
    kept, rate = sf.read(str(live_wav), dtype="int16")
    assert 0.5 < len(kept) / rate < len(pcm) / 16000 - 1      # the part before the disk filled
    assert json.loads(live_meta.read_text())["state"] == "done"
