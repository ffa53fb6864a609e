"""Call records: one table per month, an index by uid, reconciliation with the call files."""

from __future__ import annotations

import json
import time

from appliance.sources.inbox import InboxWatcher
from appliance.store.calls import CallStore
from appliance.store.ingest import Ingester
from conftest import to_pcm, write_wav


def _result(uid: str, started: float, agent: str = "101", score: int | None = 80) -> dict:
    return {"schema": "call-analysis/1",
            "call": {"source": "sip", "call_id": uid, "started_at": started, "direction": "inbound",
                     "agent": agent, "client": "79161234567", "notes": [], "extra": {"uid": uid}},
            "duration_s": 61.0, "parties": {"agent": {"talk_share": 0.6, "interruptions_made": 2},
                                            "client": {"interruptions_made": 1}},
            "totals": {"dead_air_share": 0.05},
            "tags": [{"tag": "greeting"}, {"tag": "profanity"}, {"tag": "greeting"}],
            "score": {"total": score}, "asr": {"status": "ok"}}


def test_calls_are_partitioned_by_month_and_survive_a_reopen(tmp_path):
    store = CallStore(tmp_path, months_in_memory=1)
    jan = time.mktime((2026, 1, 15, 10, 0, 0, 0, 0, -1))
    feb = time.mktime((2026, 2, 3, 10, 0, 0, 0, 0, -1))
    for i in range(30):
        store.add(_result(f"a{i}", jan + i))
        store.add(_result(f"b{i}", feb + i, agent="102"))
    assert store.months() == ["2026-01", "2026-02"]
    assert len(store.month("2026-01")) == 30 and len(store.partitions._open) == 1   # one month loaded
    rec = store.get("a3")
    assert rec["agent"] == "101" and rec["tags"] == {"greeting": 2, "profanity": 1}
    assert rec["interruptions_by_agent"] == 2 and rec["month"] == "2026-01"
    store.add(_result("a3", feb, score=40))          # corrected: moves to February
    store.close()
    store = CallStore(tmp_path)
    assert len(store) == 60
    assert store.get("a3")["score"] == 40 and store.get("a3")["month"] == "2026-02"
    assert len(store.month("2026-01")) == 29 and len(store.month("2026-02")) == 31
    assert not store.problems


def test_ingester_indexes_inbox_results_once(settings, real_call, tmp_path):
    audio, _ = real_call
    settings.inbox.settle_s = 0
    watcher = InboxWatcher(settings)
    write_wav(settings.paths.inbox / "call-0001.wav", to_pcm(audio[: 16000 * 5]))
    watcher.poll_once(now=0.0)
    [written] = watcher.poll_once(now=10.0)
    uid = json.loads(written.read_text())["call"]["extra"]["uid"]
    store = CallStore(settings.paths.data_dir)
    ingester = Ingester(store, settings.paths.calls)
    assert ingester.scan() == 1 and ingester.scan() == 0
    rec = store.get(uid)
    assert rec["source"] == "file"
    assert rec["result_path"] == f"{written.parent.name}/{uid}.json"
    # a call file whose record was lost (a crash between the two) is found again at start
    live = settings.paths.calls / "2026-11-25"
    live.mkdir()
    (live / "20261125-101010-abcdef.json").write_text(json.dumps(_result("20261125-101010-abcdef",
                                                                          time.time())))
    (live / "20261125-101010-abcdef.meta.json").write_text("{}")
    (live / ".x.json.tmp").write_text("{")
    store.close()
    store = CallStore(settings.paths.data_dir)
    assert Ingester(store, settings.paths.calls).scan() == 1
    assert "20261125-101010-abcdef" in store and len(store) == 2


def test_periodic_scan_reads_only_the_recent_day_folders(tmp_path):
    calls = tmp_path / "calls"
    for day in ("2026-11-01", "2026-11-24", "2026-11-25"):
        (calls / day).mkdir(parents=True)
        uid = f"{day}-x"
        (calls / day / f"{uid}.json").write_text(json.dumps(_result(uid, time.time())))
    ingester = Ingester(CallStore(tmp_path), calls)
    assert ingester.scan(recent_only=True) == 2
    assert "2026-11-01-x" not in ingester.store
    assert ingester.scan() == 1                      # the start-up reconciliation finds it


def test_records_of_an_older_schema_are_upgraded_once_at_load(tmp_path):
    import pytest

    from appliance.store.table import DurableTable

    store = CallStore(tmp_path)
    store.add(_result("m1", time.mktime((2026, 3, 10, 9, 0, 0, 0, 0, -1))))
    store.close()
    old = DurableTable(tmp_path / "store" / "calls" / "2026-03")        # no kind: as stored
    doc_id, rec = next((d.doc_id, dict(d)) for d in old.table.all())
    for key in ("client_digits", "agent_digits"):
        del rec[key]
    old.put(doc_id, {**rec, "schema": 1, "client": "+7 (916) 123-45-67"})
    old.close()
    store = CallStore(tmp_path)
    upgraded = store.get("m1")
    assert upgraded["schema"] == 2 and upgraded["client_digits"] == "79161234567"
    table = tmp_path / "store" / "calls" / "2026-03"
    assert (table / "snapshot.json").exists()
    assert not (table / "journal.log").exists()          # in the snapshot now
    store.close()
    newer = DurableTable(table)
    newer.put(doc_id, {**upgraded, "schema": 99})
    newer.close()
    with pytest.raises(ValueError, match="newer than this appliance"):
        CallStore(tmp_path).get("m1")


def test_the_uid_index_snapshot_round_trips_in_both_layouts(tmp_path):
    import json as _json

    store = CallStore(tmp_path)
    jan = time.mktime((2026, 1, 15, 10, 0, 0, 0, 0, -1))
    store.add_many([_result(f"u{i}", jan + i * 86400 * 3) for i in range(40)])   # 5 months
    store.index._compact()                       # columns on disk, empty journal
    store.close()
    snap = _json.loads((tmp_path / "store" / "index" / "snapshot.json").read_text())
    assert set(snap) == {"months", "ids", "uids", "m"} and len(snap["uids"]) == 40
    store = CallStore(tmp_path)
    assert len(store) == 40 and store.get("u39")["uid"] == "u39"
    assert store.index.where["u0"][0] == "2026-01"
    store.close()
    # an index written as one document per call (before the columns) still loads
    old = {"docs": {str(i): {"uid": u, "month": store.index.where[u][0]}
                    for i, u in store.index.by_id.items()}}
    (tmp_path / "store" / "index" / "snapshot.json").write_text(_json.dumps(old))
    store = CallStore(tmp_path)
    assert len(store) == 40 and store.get("u7")["uid"] == "u7"
    store.close()
