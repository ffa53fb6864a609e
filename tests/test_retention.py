"""Retention: recordings by age and by the free-space watermark (oldest first, never one
being written), call data kept longer, the store reconciled with the disk, disk alerts; a
disk that fills during a call stops the recording and keeps the analysis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from appliance.bus import Bus
from waiting import Heard
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
    bus = Bus()
    events = Heard(bus, "disk.")
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
    assert events.now() == [("disk.pruned", {"files": 2, "bytes": 20 * MB, "reasons": {"age": 2}})]

    retention.disk = SmallDisk(capacity=48 * MB)               # 40 MB used: 16.7 % free
    report = retention.run(NOW)
    assert report.by_reason == {"disk": 1}                     # d10, the oldest: 37.5 % free
    assert db.calls.get("d10")["audio_reason"] == "disk"
    assert db.calls.get("d5").get("audio") is None
    assert list(calls.rglob("live.flac"))                      # being recorded: never deleted
    assert [t for t, _ in events.now()] == ["disk.pruned", "disk.pruned"]

    retention.settings.retention.min_free_percent = 0         # only the floor is left
    retention.disk = SmallDisk(capacity=30 * MB + 16 * MB)     # just under 16 MB free
    retention.run(NOW)
    assert [t for t, _ in events.now()][-1] == "disk.full"
    assert "refused" in events[-1][1]["message"]
    retention.disk = SmallDisk(capacity=10**9)
    retention.run(NOW)
    assert [t for t, _ in events.now()][-1] == "disk.ok"
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
    s.paths.data_dir, s.recording.format = Path(sys.argv[1]), "flac"
    pcm = np.load(sys.argv[2])
    # no file may grow beyond 260 kB: the recording (64 kB/s) hits it after about 4 s
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (260_000, 260_000))
    live = LiveCall(s, CallMeta(source="sip", call_id="full"), None, "full")
    live.recorder.sync_s = 0.0          # every frame durable as written: no wait for the interval

    def feed(a, b):
        for i in range(a, b, 320):
            live.push("agent", pcm[i:i + 320].tobytes())
            live.push("client", np.zeros(320, np.int16).tobytes())
    first = 16000 * 3
    feed(0, first)
    while live.recorder.synced_s < 3.0:               # written and synced ...
        time.sleep(0.02)
    feed(first, len(pcm) - 320)                       # ... and the disk fills now
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


def _said(calls, uid, days_ago, words):
    """A call with a transcript whose tag quotes what was said."""
    day = _call(calls, uid, days_ago, size=1000)
    path = day / f"{uid}.json"
    res = json.loads(path.read_text())
    res["transcript"] = [{"party": "client", "start": 1.0, "end": 3.0, "text": words}]
    res["tags"] = [{"tag": "complaints", "party": "client", "at": 1.0, "text": words.split()[0]}]
    res["asr"] = {"status": "ok"}
    path.write_text(json.dumps(res))
    return path


def test_transcripts_leave_before_the_call_data_and_only_once(settings, tmp_path):
    settings.retention.transcript_days = 30
    settings.retention.audio_days = 0
    calls = settings.paths.calls
    old = _said(calls, "old", 40, "жалоба на доставку")
    new = _said(calls, "new", 3, "жалоба на оплату")
    quiet = _call(calls, "quiet", 50, size=1000) / "quiet.json"       # nothing was said
    db = Database(tmp_path)
    Ingester(db.calls, calls, search=db.search).scan()
    assert db.search.search("жалоба") == {"old", "new"}
    retention = Retention(settings, db, disk=SmallDisk(10**12))
    report = retention.run(NOW)
    assert report.transcripts_removed == 1 and report.calls_forgotten == 0
    gone = json.loads(old.read_text())
    assert gone["transcript"] == [] and "text" not in gone["tags"][0]
    assert gone["tags"][0]["tag"] == "complaints" and gone["asr"]["status"] == "deleted"
    assert "доставку" not in old.read_text()
    assert json.loads(new.read_text())["transcript"][0]["text"] == "жалоба на оплату"
    assert db.search.search("жалоба") == {"new"}
    assert db.calls.get("old")["asr"] == "deleted" and db.calls.get("old")["tags"] == {"complaints": 1}
    assert db.calls.get("quiet")["asr"] != "deleted" and db.calls.get("quiet")["words_removed_at"]
    before = (old.stat().st_mtime_ns, quiet.stat().st_mtime_ns)
    assert retention.run(NOW).transcripts_removed == 0                 # a second pass: nothing
    assert (old.stat().st_mtime_ns, quiet.stat().st_mtime_ns) == before
    db.close()
    db = Database(tmp_path)                                           # durable
    assert db.calls.get("old")["asr"] == "deleted" and db.search.search("жалоба") == {"new"}
    db.close()


def test_a_transcript_that_cannot_be_rewritten_is_tried_again(settings, tmp_path):
    settings.retention.transcript_days = 30
    calls = settings.paths.calls
    old = _said(calls, "old", 40, "жалоба")
    db = Database(tmp_path)
    Ingester(db.calls, calls, search=db.search).scan()
    retention = Retention(settings, db, disk=SmallDisk(10**12))
    old.parent.chmod(0o500)                   # the folder refuses the rewrite
    try:
        if os.access(old.parent, os.W_OK):    # root ignores modes: make the file a folder's twin
            old.parent.chmod(0o700)
            old.write_text("{not json")
        assert retention.run(NOW).transcripts_removed == 0
        assert db.calls.get("old")["asr"] == "ok" and db.search.search("жалоба") == {"old"}
    finally:
        old.parent.chmod(0o700)
    old.unlink()
    _said(calls, "old", 40, "жалоба")
    assert retention.run(NOW).transcripts_removed == 1
    assert db.search.search("жалоба") == set()
    db.close()


def test_audit_entries_leave_by_whole_months_after_audit_days(settings, tmp_path):
    settings.paths.calls.mkdir(parents=True)
    db = Database(tmp_path)
    db.audit.record("anna", "listen", "u1")
    month = time.strftime("%Y-%m")
    old = db.audit.partitions.root / "2001-01"
    old.mkdir()
    assert db.audit.partitions.months() == ["2001-01", month]
    settings.retention.audit_days = 30
    Retention(settings, db, disk=SmallDisk(10**12)).run()
    assert db.audit.partitions.months() == [month]
    assert db.audit.recent()[0]["target"] == "u1"
    db.close()
