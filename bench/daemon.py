"""The daemon (``appliance run``) holding 100k calls: its memory after start, and the API's
answers to what the panel and machine clients ask, the first time and again. SIP, the inbox
and MQTT are off; the speech model is loaded unless ``--no-asr``.

    python bench/daemon.py [--calls 100000] [--no-asr]

Prints Markdown; saves bench/out/daemon.md (daemon-noasr.md with --no-asr).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import publish  # noqa: E402
from store import fake_cdr, fake_results  # noqa: E402

from appliance.config import load_settings  # noqa: E402
from appliance.query import Queries  # noqa: E402
from appliance.store.database import Database  # noqa: E402
from appliance.web.tokens import TokenFile  # noqa: E402


def build(data: Path, n: int) -> None:
    """A store of ``n`` calls over the 12 months before now, with their PBX records."""
    rng = np.random.default_rng(3)
    results = fake_results(n, rng)
    shift = time.time() - max(r["call"]["started_at"] for r in results) - 3600
    for r in results:
        r["call"]["started_at"] += shift
    db = Database(data)
    for k in range(0, n, 1000):
        db.calls.add_many(results[k:k + 1000])
    q = Queries(db, load_settings(environ={}))
    pbx = fake_cdr(results, rng)
    for k in range(0, len(pbx), 1000):
        q.add_cdr(pbx[k:k + 1000], "bench")
    db.close()


def memory(pid: int) -> tuple[int, int]:
    """(RSS, peak RSS) in MB."""
    fields = {line.split(":")[0]: int(line.split()[1]) // 1024
              for line in Path(f"/proc/{pid}/status").read_text().splitlines()
              if line.startswith(("VmRSS", "VmHWM"))}
    return fields["VmRSS"], fields["VmHWM"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--no-asr", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="daemon-bench-"))
    proc = None
    try:
        build(work / "data", args.calls)
        token = TokenFile(work / "data").create("bench", "admin")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        (work / "box.toml").write_text(
            f'[paths]\ndata_dir = "{work / "data"}"\n[sip]\nenabled = false\n[mqtt]\n'
            f"embedded = false\n[inbox]\nenabled = false\n[asr]\n"
            f"enabled = {str(not args.no_asr).lower()}\n[web]\nport = {port}\n")
        log = work / "log.txt"
        proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "-c", str(work / "box.toml"),
                                 "run"], stdout=subprocess.DEVNULL, stderr=log.open("w"))

        def get(path: str) -> float:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": f"Bearer {token}"})
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=300) as resp:
                resp.read()
            return (time.perf_counter() - t0) * 1000

        deadline = time.monotonic() + 600
        # the background warm-up: the dashboard's months, then the managers' baselines
        while "managers' baselines ready" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        started = memory(proc.pid)
        month = time.strftime("%Y-%m")
        earlier = time.strftime("%Y-%m", time.localtime(time.time() - 32 * 86400))
        paths = {"dashboard": "/api/v1/dashboard", "KPIs, this month": f"/api/v1/kpis?period={month}",
                 "KPIs compared": f"/api/v1/kpis/compare?period={month}",
                 "calls list (30 days)": "/api/v1/calls",
                 "calls of a manager, last month": f"/api/v1/calls?period={earlier}&agent=101",
                 "missed calls, this month": f"/api/v1/missed?period={month}",
                 "alerts": "/api/v1/alerts", "system": "/api/v1/system",
                 "baseline flags (6 months back)": f"/api/v1/kpis/flags?period={month}",
                 "client lists (90 days)": "/api/v1/clients"}
        first = {name: get(path) for name, path in paths.items()}
        after_first = memory(proc.pid)
        again: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(20):
            for name, path in paths.items():
                again[name].append(get(path))
        after = memory(proc.pid)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    model = "without the speech model" if args.no_asr else "with the speech model loaded"
    lines = [f"## The daemon at {args.calls:,} calls, {model} (`bench/daemon.py`)", "",
             "| request | first time | again (p95 of 20) |", "|---|---|---|"]
    lines += [f"| {name} | {first[name]:,.0f} ms | {np.percentile(again[name], 95):.0f} ms |"
              for name in paths]
    lines += ["", f"Memory (RSS / peak): {started[0]} / {started[1]} MB after start and the "
              f"dashboard's months computed; {after_first[0]} / {after_first[1]} MB after the first "
              f"answers; {after[0]} / {after[1]} MB after the repeats. "
              f"`python bench/daemon.py --calls {args.calls}{' --no-asr' if args.no_asr else ''}`."]
    publish("daemon-noasr" if args.no_asr else "daemon", "\n".join(lines))


if __name__ == "__main__":
    main()
