"""The store's durability: acknowledged writes survive SIGKILL at any moment; corrupt files
are set aside and the rest loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from appliance.store.table import DurableTable

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from appliance.store.table import DurableTable
    table = DurableTable(Path(sys.argv[1]), compact_after=40)   # compaction happens often
    i = int(sys.argv[2])
    while True:
        table.put(i, {"uid": f"call-{i}", "agent": "101", "text": "x" * (i % 300)})
        if i % 7 == 0:
            table.put(i - 3, {"uid": f"call-{i - 3}", "agent": "102", "rev": 2})
        print(i, flush=True)          # acknowledged: durable before this line
        i += 1
""")


def _expected(acked: list[int]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for i in acked:
        out[i] = {"uid": f"call-{i}", "agent": "101", "text": "x" * (i % 300)}
        if i % 7 == 0:
            out[i - 3] = {"uid": f"call-{i - 3}", "agent": "102", "rev": 2}
    return out


def test_fifty_sigkills_lose_no_acknowledged_write(tmp_path):
    rng = np.random.default_rng(11)
    folder = tmp_path / "calls"
    acked: list[int] = []
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    for _ in range(50):
        start = (acked[-1] + 1) if acked else 10
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(start)],
                                stdout=subprocess.PIPE, text=True, env=env)
        first = proc.stdout.readline()          # running and writing
        assert first.strip(), "writer did not start"
        time.sleep(float(rng.uniform(0.0, 0.25)))
        proc.send_signal(signal.SIGKILL)
        rest = proc.communicate()[0]
        acked += [int(x) for x in (first + rest).split()]
        table = DurableTable(folder, compact_after=40)
        # the write in flight when killed (never acknowledged) may or may not have landed
        want, maybe = _expected(acked), _expected(acked + [acked[-1] + 1])
        got = {d.doc_id: dict(d) for d in table.table.all()}
        missing = [i for i in want if got.get(i) not in (want[i], maybe[i])]
        assert not missing, f"acknowledged writes lost: {missing[:10]}"
        assert not table.problems, table.problems
        table.close()
    assert len(acked) > 200


def test_a_truncated_snapshot_is_rebuilt_from_the_previous_one_and_the_journals(tmp_path):
    t = DurableTable(tmp_path / "t", compact_after=40)
    for i in range(100):
        t.put(i, {"n": i, "text": "x" * 50})     # compactions at 40 and 80, 20 in the journal
    t.put(5, {"n": 500})
    t.delete(7)
    t.close()
    snapshot = tmp_path / "t" / "snapshot.json"
    snapshot.write_bytes(snapshot.read_bytes()[:1000])          # cut short by a disk fault
    t = DurableTable(tmp_path / "t", compact_after=40)
    want = {i: {"n": i, "text": "x" * 50} for i in range(100) if i != 7} | {5: {"n": 500}}
    assert {d.doc_id: dict(d) for d in t.table.all()} == want
    assert "corrupt" in t.problems[0] and "nothing lost" in t.problems[0] and not t.lost
    assert list((tmp_path / "t").glob("snapshot.corrupt-*.json"))
    t.close()
    # rebuilt durably: a reload finds a good snapshot, and a later loss is rebuilt again
    t = DurableTable(tmp_path / "t", compact_after=40)
    assert len(t) == 99 and not t.problems
    t.put(200, {"n": 200})
    t.close()
    snapshot.write_text('{"docs": {"0": {"n"')
    t = DurableTable(tmp_path / "t", compact_after=40)
    assert len(t) == 100 and not t.lost
    t.close()


def test_a_corrupt_snapshot_without_a_previous_one_loads_the_journal_and_says_what_is_lost(tmp_path):
    t = DurableTable(tmp_path / "t", compact_after=3)
    for i in range(8):
        t.put(i, {"n": i})          # snapshots after 3 and 6: 3 in the previous journal, 2 now
    t.close()
    (tmp_path / "t" / "snapshot.json").write_text('{"docs": {"0": {"n"')
    (tmp_path / "t" / "snapshot.prev.json").write_text('{"do')
    t = DurableTable(tmp_path / "t", compact_after=3)
    assert sorted(d["n"] for d in t.table.all()) == [3, 4, 5, 6, 7]
    assert "corrupt" in t.problems[0] and "set aside" in t.problems[0]
    assert t.lost == t.problems
    assert len(list((tmp_path / "t").glob("snapshot*.corrupt-*.json"))) == 2
    t.close()


def test_corrupt_journal_line_is_skipped_and_reported(tmp_path):
    t = DurableTable(tmp_path / "t")
    for i in range(3):
        t.put(i, {"n": i})
    t.close()
    path = tmp_path / "t" / "journal.log"
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"n":1', b'"n":7')          # bit rot: CRC no longer matches
    path.write_bytes(b"\n".join(lines))
    t = DurableTable(tmp_path / "t")
    assert sorted(d["n"] for d in t.table.all()) == [0, 2]
    assert "corrupt line" in t.problems[0]


def test_torn_tail_is_cut_and_later_writes_are_kept(tmp_path):
    t = DurableTable(tmp_path / "t")
    t.put(1, {"n": 1})
    t.close()
    with open(tmp_path / "t" / "journal.log", "ab") as fh:
        fh.write(b'0badc0de {"op":"put","id":2,"doc":{"n"')     # a write cut mid-line
    t = DurableTable(tmp_path / "t")
    assert t.journal.torn_bytes > 0 and len(t) == 1
    t.put(3, {"n": 3})
    t.close()
    t = DurableTable(tmp_path / "t")
    assert sorted(d["n"] for d in t.table.all()) == [1, 3] and not t.problems
    assert json.loads((tmp_path / "t" / "journal.log").read_text().split(" ", 1)[1].split("\n")[0])


def test_durable_map_replaces_compacts_and_reloads(tmp_path):
    from appliance.store.table import DurableMap

    m = DurableMap(tmp_path / "m", compact_after=4)
    for i in range(10):
        m.put(i % 6, {"v": i})           # ids 0-3 written twice: the later value wins
    m.delete(5)
    m.close()
    assert (tmp_path / "m" / "snapshot.json").exists()
    m = DurableMap(tmp_path / "m", compact_after=4)
    assert m.docs == {0: {"v": 6}, 1: {"v": 7}, 2: {"v": 8}, 3: {"v": 9}, 4: {"v": 4}}
    assert not m.problems


def _stored_calls(data_dir):
    from appliance.store.database import Database
    from storedata import at, result

    db = Database(data_dir)
    uids = [f"c{i}" for i in range(30)]
    for i, uid in enumerate(uids):
        db.calls.add(result(uid, at(9 + i % 2, 1 + i, 10)))      # September and October
    db.close()
    return uids


def _all_reachable(data_dir, uids):
    from appliance.config import load_settings
    from appliance.query import Queries
    from appliance.store.database import Database

    db = Database(data_dir)
    settings = load_settings(environ={})
    settings.paths.data_dir = data_dir
    q = Queries(db, settings)
    for uid in uids:
        assert q.call(uid)["uid"] == uid
    q.post_outcome(uids[-1], {"result": "won", "amount": 10}, "crm")     # 404 before
    return db


def test_a_damaged_uid_index_is_rebuilt_from_the_month_tables(tmp_path):
    import shutil

    from storedata import corrupt_line

    uids = _stored_calls(tmp_path)
    for n in range(0, 30, 3):
        corrupt_line(tmp_path / "store" / "index" / "journal.log", n)
    db = _all_reachable(tmp_path, uids)
    assert not db.lost, db.lost
    assert any("uid index rebuilt" in p for p in db.problems)
    assert all("nothing lost" in p for p in db.problems if "lost" in p), db.problems
    assert not db.damage.damaged()          # repaired: noted, not a health failure
    db.close()
    shutil.rmtree(tmp_path / "store" / "index")                  # gone altogether
    _all_reachable(tmp_path, uids).close()
    index = tmp_path / "store" / "index"                          # a snapshot, no previous one
    db = _all_reachable(tmp_path, uids)
    db.calls.index._compact()
    db.close()
    (index / "snapshot.prev.json").unlink(missing_ok=True)
    (index / "snapshot.json").write_text('{"where": [["c1"')
    db = _all_reachable(tmp_path, uids)
    assert not db.lost and not db.damage.damaged(), db.problems
    assert any("corrupt" in p for p in db.problems)
    assert all("nothing lost" in p for p in db.problems if "lost" in p), db.problems
    db.close()


def test_a_call_missing_from_the_index_is_added_when_its_month_loads(tmp_path):
    from appliance.store.calls import CallStore

    uids = _stored_calls(tmp_path)
    store = CallStore(tmp_path)
    where = store.index.where[uids[0]]
    store.index.delete(where[1])             # as a write cut between the two files left it
    store.close()
    store = CallStore(tmp_path)
    assert store.get(uids[0]) is None                 # its month not loaded yet
    store.calls(where[0])                             # a listing loads the month
    assert store.get(uids[0])["uid"] == uids[0]
    assert any("missing; added" in p for p in store.problems)
    store.close()


def test_lost_documents_stay_reported_across_restarts_until_acknowledged(tmp_path):
    from appliance.store.database import Database
    from storedata import corrupt_line

    _stored_calls(tmp_path)
    corrupt_line(tmp_path / "store" / "calls" / "2026-10" / "journal.log", 2)
    db = Database(tmp_path)
    db.calls.calls("2026-10")                      # the month loads: one record is lost
    damaged = db.damage.damaged()
    assert len(damaged) == 1 and "corrupt line" in damaged[0]["problem"]
    db.close()
    for _ in range(2):                             # not forgotten by restarts
        db = Database(tmp_path)
        assert [e["problem"] for e in db.damage.damaged()] == [damaged[0]["problem"]]
        db.close()
    db = Database(tmp_path)
    assert db.damage.acknowledge("admin") == 1 and not db.damage.damaged()
    db.close()
    db = Database(tmp_path)
    assert not db.damage.damaged() and db.damage.entries[0]["acknowledged"]["by"] == "admin"
    db.close()


def test_damage_in_a_month_nobody_reads_is_found_by_the_check_after_start(tmp_path):
    """Months load when a query needs them: the check after start reads the others once,
    so lost records in an old month fail the health check without anyone opening it."""
    from appliance.store.database import Database
    from storedata import corrupt_line

    _stored_calls(tmp_path)
    corrupt_line(tmp_path / "store" / "calls" / "2026-09" / "journal.log", 1)
    db = Database(tmp_path)
    told = []
    db.on_damage = lambda: told.append(1)
    db.calls.calls("2026-10")                       # a month in use stays in memory
    held = dict(db.calls.partitions._open)
    assert not db.damage.damaged()                  # September not read yet
    assert db.verify() >= 1
    damaged = db.damage.damaged()
    assert len(damaged) == 1 and "2026-09" in damaged[0]["problem"], damaged
    assert told == [1]
    assert dict(db.calls.partitions._open) == held  # nothing more kept in memory
    assert db.verify() >= 1 and told == [1]         # known damage is not noted again
    db.close()


def test_the_daemon_state_says_new_damage_without_waiting_for_its_next_write(tmp_path):
    """``appliance status`` reads run/daemon.json: damage found after start (an old month
    read by the check) is written there at once, not at the next periodic write."""
    import threading

    from appliance.app import LocalData
    from appliance.bus import Bus
    from appliance.config import load_settings
    from storedata import corrupt_line
    from waiting import wait_for

    _stored_calls(tmp_path)
    corrupt_line(tmp_path / "store" / "calls" / "2026-09" / "journal.log", 1)
    settings = load_settings(environ={"APPLIANCE_PATHS__DATA_DIR": str(tmp_path),
                                      "APPLIANCE_MQTT__EMBEDDED": "false",
                                      "APPLIANCE_WEB__ENABLED": "false"})
    local = LocalData(settings, Bus())
    state = tmp_path / "run" / "daemon.json"
    stop = threading.Event()
    writer = threading.Thread(target=local.report_state, args=(stop, 3600.0), daemon=True)
    writer.start()
    try:
        assert wait_for(state.exists, 10)
        assert json.loads(state.read_text())["store"]["damaged"] == 0
        local.db.verify()
        assert wait_for(lambda: json.loads(state.read_text())["store"]["damaged"] == 1, 10)
        assert not local.health()["checks"]["store"]["ok"]
    finally:
        stop.set()
        writer.join(5)
        local.close()
    assert not writer.is_alive()


def test_the_check_reads_a_month_without_holding_up_the_others(tmp_path):
    """While the check after start reads an old month, queries of other months go on, and
    a query of that very month waits for it instead of loading a second copy."""
    import threading

    from appliance.store.monthly import Monthly

    for month in ("2026-08", "2026-09", "2026-10"):
        t = DurableTable(tmp_path / month)
        t.put(1, {"month": month})
        t.close()
    reading, release = threading.Event(), threading.Event()
    loads: list[str] = []

    def factory(folder):
        loads.append(folder.name)
        if folder.name == "2026-09" and not release.is_set():
            reading.set()
            release.wait(10)                # a slow disk under the check
        return DurableTable(folder)

    months = Monthly(tmp_path, factory, in_memory=1)
    months("2026-10")
    check = threading.Thread(target=months.verify)
    check.start()
    assert reading.wait(10)
    assert months("2026-08").table.all()[0]["month"] == "2026-08"     # not held up
    same = threading.Thread(target=months, args=("2026-09",))
    same.start()
    same.join(0.5)
    assert same.is_alive()                  # waits for the check's read of that month
    release.set()
    check.join(10)
    same.join(10)
    assert not check.is_alive() and not same.is_alive()
    assert loads.count("2026-09") == 2      # the check's copy, closed, then the query's own
    months.close()


def test_the_check_names_damaged_months_only_and_changes_nothing(tmp_path):
    """The child's check: a corrupt snapshot (current or previous) or a corrupt journal line
    is damage; a last line cut by a crash is not; nothing on disk is changed."""
    from appliance.store.check import damaged_months
    from appliance.store.database import damaged_months_in_child
    from storedata import corrupt_line

    root = tmp_path / "calls"
    for month in ("2026-01", "2026-02", "2026-03", "2026-04", "2026-05"):
        t = DurableTable(root / month, compact_after=3)
        for i in range(5):                  # a snapshot, a previous one and a journal
            t.put(i, {"n": i})
        t.close()
    (root / "2026-02" / "snapshot.json").write_text('{"docs": {"0"')
    (root / "2026-03" / "snapshot.prev.json").write_text("{")
    corrupt_line(root / "2026-04" / "journal.log", 0)
    with open(root / "2026-05" / "journal.log", "ab") as fh:
        fh.write(b'0badc0de {"op": "put", "id"')   # torn by a crash
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    expected = [(str(root), m) for m in ("2026-02", "2026-03", "2026-04")]
    assert damaged_months([root, tmp_path / "none"]) == expected
    assert damaged_months_in_child([str(root)]) == expected
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_a_clean_store_is_checked_without_loading_a_month_in_the_daemon(tmp_path):
    from appliance.store.database import Database

    _stored_calls(tmp_path)
    db = Database(tmp_path)
    loaded = []
    factory = db.calls.partitions.factory
    db.calls.partitions.factory = lambda folder: loaded.append(folder.name) or factory(folder)
    assert db.verify() == 0 and loaded == [] and not db.problems
    db.close()
