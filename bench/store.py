"""The store at 100k calls (and their PBX records, with missed calls): insert rate, the calls
list of one manager and month, the monthly KPIs (computed afresh, not from the cache),
memory. Compared in the same run with tinydb's own JSON storage (the default way to use
tinydb), on fewer calls since each of its writes rewrites the whole file.

    python bench/store.py [--calls 100000]

Prints Markdown; saves bench/out/store.md.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import publish  # noqa: E402

from appliance.config import load_settings  # noqa: E402
from appliance.query import Queries  # noqa: E402
from appliance.store.database import Database  # noqa: E402
from appliance.store.records import call_record  # noqa: E402

AGENTS = [str(100 + i) for i in range(40)]

STORE_ONLY = """
import sys
from pathlib import Path
from appliance.config import load_settings
from appliance.query import Queries
from appliance.store.database import Database
db = Database(Path(sys.argv[1]))
q = Queries(db, load_settings(environ={}))
for month in db.calls.months()[-3:]:
    q.kpis(month)
    q.calls(month, agent="101")
for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
        print(round(int(line.split()[1]) / 1024))
"""


def fake_results(n: int, rng: np.random.Generator) -> list[dict]:
    start = time.mktime((2025, 12, 1, 0, 0, 0, 0, 0, -1))
    out = []
    for i in range(n):
        ts = start + float(rng.uniform(0, 365 * 86400))
        out.append({"call": {"source": "sip", "call_id": f"c{i}", "started_at": ts,
                             "direction": "inbound" if rng.random() < 0.6 else "outbound",
                             "agent": AGENTS[int(rng.integers(len(AGENTS)))],
                             "client": f"7916{int(rng.integers(10**7)):07d}", "notes": [],
                             "extra": {"uid": f"c{i}", "sip_call_id": f"{i}@pbx"}},
                    "duration_s": float(rng.uniform(10, 600)),
                    "parties": {"agent": {"talk_share": float(rng.uniform(0.2, 0.8)),
                                          "interruptions_made": int(rng.integers(4))},
                                "client": {"interruptions_made": int(rng.integers(3))}},
                    "totals": {"dead_air_share": float(rng.uniform(0, 0.2))},
                    "tags": [{"tag": "greeting"}] * int(rng.integers(2)),
                    "score": {"total": int(rng.integers(40, 100))}, "asr": {"status": "ok"}})
    return out


def fake_cdr(results: list[dict], rng: np.random.Generator) -> list[dict]:
    """A PBX record per recorded call (same Call-ID) and one missed call for every five."""
    rows = []
    for r in results:
        c = r["call"]
        t = c["started_at"]
        inbound = c["direction"] == "inbound"
        src, dst = (c["client"], c["agent"]) if inbound else (c["agent"], c["client"])
        rows.append({"id": c["call_id"], "call_id": c["extra"]["sip_call_id"], "start": t - 5,
                     "answer": t, "end": t + r["duration_s"], "from": src, "to": dst,
                     "billsec": r["duration_s"], "disposition": "ANSWERED"})
        if rng.random() < 0.2:
            rows.append({"id": "m" + c["call_id"], "start": t - 3600, "end": t - 3570,
                         "from": c["client"], "to": c["agent"], "disposition": "NO ANSWER"})
    return rows


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--tinydb-calls", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    results = fake_results(args.calls, rng)
    work = Path(tempfile.mkdtemp(prefix="store-bench-"))
    rows = []
    try:
        settings = load_settings(environ={})
        db = Database(work / "a")
        store = db.calls
        t0 = time.perf_counter()
        for k in range(0, len(results), 1000):          # an import: batches of 1000
            store.add_many(results[k:k + 1000])
        bulk = len(results) / (time.perf_counter() - t0)
        q = Queries(db, settings)
        pbx = fake_cdr(results, rng)
        t0 = time.perf_counter()
        for k in range(0, len(pbx), 1000):
            q.add_cdr(pbx[k:k + 1000], "bench")
        cdr_rate = len(pbx) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        live = fake_results(200, np.random.default_rng(9))
        latest = max(r["call"]["started_at"] for r in results)
        for k, r in enumerate(live):             # live: calls ending now, one durable write each
            r["call"]["extra"]["uid"] = r["call"]["call_id"] = "live-" + r["call"]["call_id"]
            r["call"]["started_at"] = latest + k
            store.add(r)
        single = len(live) / (time.perf_counter() - t0)
        db.close()
        base = rss_mb()
        db = Database(work / "a")                        # a restart: index only
        store = db.calls
        q = Queries(db, settings)
        months = store.months()
        cold = []
        for month in months:                     # first touch of each month: loaded from disk
            t0 = time.perf_counter()
            store.calls(month, agent=AGENTS[0])
            cold.append(time.perf_counter() - t0)
        recent = months[-3:]                     # the panel's usual view: recent months
        first = []
        for month in recent:                     # nothing computed yet: every day of the month
            t0 = time.perf_counter()
            q.kpis(month)
            first.append(time.perf_counter() - t0)
        lists, kpis = [], []
        extra = fake_results(90, np.random.default_rng(11))
        for i in range(90):
            month, agent = recent[i % len(recent)], AGENTS[i % len(AGENTS)]
            t0 = time.perf_counter()
            store.calls(month, agent=agent)
            lists.append(time.perf_counter() - t0)
            r = extra[i]                         # a call ends (now: the newest day), then a query
            r["call"]["extra"]["uid"] = r["call"]["call_id"] = f"new-{i}"
            r["call"]["started_at"] = latest + 100 + i
            store.add(r)
            t0 = time.perf_counter()
            q.kpis(month)
            kpis.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        q.kpis(recent[-1])
        cached = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append(("appliance store (snapshot + journal, months on demand)",
                     f"{bulk:,.0f}/s batched, {single:,.0f}/s one by one; "
                     f"PBX records {cdr_rate:,.0f}/s",
                     f"{p95(lists) * 1000:.1f} ms (a month not in memory: "
                     f"{np.median(cold) * 1000:.0f} ms to load, once)",
                     f"{p95(kpis) * 1000:.1f} ms after a new call in the month; "
                     f"{cached * 1000:.2f} ms unchanged; first query of a month "
                     f"{np.median(first) * 1000:.0f} ms (once)",
                     f"{rss_mb() - base:.0f} MB over the index "
                     f"({rss_mb():.0f} MB process, peak {peak:.0f} MB incl. generating the data)"))
        db.close()
        # the store alone, as the daemon holds it: a fresh process opens it, loads the three
        # most recent months and computes their KPIs
        probe = subprocess.run([sys.executable, "-c", STORE_ONLY, str(work / "a")],
                               capture_output=True, text=True, check=True)
        rows[-1] = rows[-1][:4] + (f"{probe.stdout.strip()} MB peak RSS for a process holding "
                                   f"the index and 3 months ({args.calls:,} calls stored)",)

        from tinydb import Query, TinyDB
        db = TinyDB(work / "plain.json")
        n = args.tinydb_calls
        t0 = time.perf_counter()
        for r in results[:n]:
            db.insert(call_record(r))
        plain_insert = n / (time.perf_counter() - t0)
        month = call_record(results[0])["month"]
        times = []
        for i in range(20):
            t0 = time.perf_counter()
            db.search((Query().month == month) & (Query().agent == AGENTS[i % len(AGENTS)]))
            times.append(time.perf_counter() - t0)
        rows.append((f"tinydb JSONStorage ({n:,} calls only)", f"{plain_insert:,.0f}/s",
                     f"{p95(times) * 1000:.1f} ms at {n:,} calls", "-", "-"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [f"## Store at {args.calls:,} calls (`bench/store.py`)", "",
             "| store | insert | calls list, one manager and month (p95) | monthly KPIs (p95) | memory |",
             "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"{len(AGENTS)} managers, calls spread over 12 months "
              f"(~{args.calls // 12:,} a month), a PBX record for each and "
              "a missed call for one in five; the monthly KPIs join both (per manager, team and "
              f"office, with callbacks); `python bench/store.py --calls {args.calls}`."]
    publish("store", "\n".join(lines))
    _ = statistics


if __name__ == "__main__":
    main()
