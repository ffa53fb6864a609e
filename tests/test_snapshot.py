"""State files written off the SIP thread: a stalled disk never stops it, and readers get
the latest state."""

from __future__ import annotations

import json
import threading

from appliance.system import snapshot
from appliance.system.snapshot import SnapshotFile
from waiting import wait_for


def test_a_stalled_disk_never_stops_the_thread_that_changes_the_state(tmp_path, monkeypatch):
    release = threading.Event()
    written: list[dict] = []
    real_write = snapshot.write_json_atomic

    def stalled_write(path, data, **kwargs) -> None:
        written.append(data)
        release.wait()
        real_write(path, data, **kwargs)
    monkeypatch.setattr(snapshot, "write_json_atomic", stalled_write)
    state = SnapshotFile(tmp_path / "run" / "sip-0.json")
    state.put({"n": 0})
    assert wait_for(lambda: written, 30)                 # the writer waits on the disk
    done = threading.Event()

    def sip_thread() -> None:
        for n in range(1, 101):
            state.put({"n": n})
        done.set()
    threading.Thread(target=sip_thread, daemon=True).start()
    assert done.wait(30), "put waited for the stalled disk"
    release.set()
    assert state.flush(30)
    assert json.loads((tmp_path / "run" / "sip-0.json").read_text()) == {"n": 100}
    assert len(written) == 2             # the 99 snapshots replaced meanwhile were skipped
    state.close()


def test_a_failed_write_is_logged_and_the_next_state_still_lands(tmp_path, monkeypatch, caplog):
    real_write = snapshot.write_json_atomic
    failures = [1]

    def full_disk(path, data, **kwargs) -> None:
        if failures[0]:
            failures[0] -= 1
            raise OSError(28, "No space left on device")
        real_write(path, data, **kwargs)
    monkeypatch.setattr(snapshot, "write_json_atomic", full_disk)
    state = SnapshotFile(tmp_path / "sip.json")
    state.put({"n": 1})
    assert state.flush(30)
    assert "state not written" in caplog.text and not (tmp_path / "sip.json").exists()
    state.put({"n": 2})
    state.close()
    assert json.loads((tmp_path / "sip.json").read_text()) == {"n": 2}
