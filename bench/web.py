"""The panel under load with 100k calls stored: the calls list (default 30 days, filters,
transcript search, pages) and the call page, requested by a second process over HTTP with a
signed-in session. Compared in the same run with the floor of the same server: waitress and
Flask answering a fixed string, under the same load.

    python bench/web.py [--calls 100000] [--requests 1500] [--clients 4]

Prints Markdown; saves bench/out/web.md.
"""

from __future__ import annotations

import argparse
from urllib.parse import quote
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import publish  # noqa: E402
from store import AGENTS, fake_results  # noqa: E402

from appliance.config import load_settings  # noqa: E402
from appliance.query import Queries  # noqa: E402
from appliance.store.database import Database  # noqa: E402
from appliance.web.app import WebServer, create_app  # noqa: E402

WORDS = ("здравствуйте компания доставка заказ оплата жалоба скидка договор менеджер счёт "
         "возврат сроки склад курьер адрес качество цена конкурент подумаю перезвоните").split()
PASSWORD = "bench password 123"

LOAD = r"""
import http.client, json, random, sys, time, urllib.parse
port, cookie, paths = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[5])
n, clients = int(sys.argv[3]), int(sys.argv[4])
import threading
out = {k: [] for k in paths}
errors = []
lock = threading.Lock()
deadline = time.monotonic() + 120
def worker(seed):
    try:
        run(seed)
    except Exception as exc:
        errors.append(repr(exc))
def run(seed):
    rnd = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(n // clients):
        if time.monotonic() > deadline:
            break
        kind = rnd.choice(list(paths))
        path = rnd.choice(paths[kind])
        t = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie, "Accept-Language": "ru"})
        resp = conn.getresponse()
        body = resp.read()
        dt = (time.perf_counter() - t) * 1000
        if resp.status != 200:
            errors.append(f"{path}: HTTP {resp.status} {body[:200]!r}")
            return
        with lock:
            out[kind].append(dt)
threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    raise SystemExit("; ".join(errors[:5]))
print(json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(root: Path, n: int) -> tuple[Database, Queries, list[str]]:
    rng = np.random.default_rng(7)
    settings = load_settings(environ={})
    settings.paths.data_dir = root
    db = Database(root)
    results = fake_results(n, rng)
    for r in results:
        r["transcript"] = [{"party": p, "start": 1.0 + i * 5, "end": 4.0 + i * 5,
                            "text": " ".join(rng.choice(WORDS, 8))}
                           for i, p in enumerate(["agent", "client"] * 6)]
    t0 = time.perf_counter()
    for i in range(0, n, 5000):
        db.calls.add_many(results[i:i + 5000])
    from appliance.store.search import transcript_text
    db.search.add_many((r["call"]["extra"]["uid"], r["call"]["started_at"], transcript_text(r))
                       for r in results)
    # the call page reads the call JSON: written for the newest 300 calls, those requested
    recent = sorted(results, key=lambda r: r["call"]["started_at"])[-300:]
    day = settings.paths.calls / "bench"
    day.mkdir(parents=True)
    for r in recent:
        uid = r["call"]["extra"]["uid"]
        r.update(segments=[{"party": s["party"], "start": s["start"], "end": s["end"]}
                           for s in r["transcript"]],
                 overlaps=[], interruptions=[], silences=[])
        (day / f"{uid}.json").write_text(json.dumps(r, ensure_ascii=False))
        db.calls.update(uid, {"result_path": f"bench/{uid}.json"})
    print(f"stored {n} calls in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return db, Queries(db, settings), [r["call"]["extra"]["uid"] for r in recent]


def load(port: int, cookie: str, paths: dict[str, list[str]], n: int, clients: int) -> dict:
    out = subprocess.run([sys.executable, "-c", LOAD, str(port), cookie, str(n), str(clients),
                          json.dumps(paths)], capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db, q, uids = build(Path(tmp), args.calls)
        settings = q.settings
        settings.web.port = free_port()
        app = create_app(q, settings)
        app.extensions["users"].create("bench", PASSWORD, "supervisor")
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = page.split('name="csrf-token" content="')[1].split('"')[0]
        client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
        cookie = "appliance_session=" + client.get_cookie("appliance_session").value
        server = WebServer(app, settings)
        server.start()
        agents = AGENTS[:10]
        paths = {
            "calls list (30 days, page 1)": ["/calls"],
            "calls list (filters, later pages)": [f"/calls?agent={a}&page={p}&min_score=50"
                                                  for a in agents for p in (1, 3, 7)],
            "calls list (transcript search)": ["/calls?q=" + quote(w) for w in (
                "жалоба", "доставк", "договор скидка", "курьер")],
            "call page": [f"/calls/{u}" for u in uids],
            "call JSON (API)": [f"/api/v1/calls/{u}/detail" for u in uids],
        }
        load(server.server.effective_port, cookie, {"call page": paths["call page"][:5]}, 40, 2)
        got = load(server.server.effective_port, cookie, paths, args.requests, args.clients)
        server.stop()

        from flask import Flask
        floor_app = Flask("floor")
        floor_app.add_url_rule("/", "ok", lambda: "ok")
        settings.web.port = free_port()
        floor = WebServer(floor_app, settings)
        floor.start()
        base = load(floor.server.effective_port, cookie, {"floor": ["/"]}, args.requests, args.clients)
        floor.stop()
        db.close()
    floor_p95 = float(np.percentile(base["floor"], 95))
    lines = [f"## Web panel, {args.calls:,} calls stored, {args.clients} clients in a second process",
             "", "| request | requests | p50 ms | p95 ms | p95 / server floor | target |",
             "|---|---|---|---|---|---|"]
    for kind, xs in got.items():
        p50, p95 = np.percentile(xs, 50), np.percentile(xs, 95)
        target = "150 ms" if kind.startswith(("calls list", "call page")) else ""
        lines.append(f"| {kind} | {len(xs)} | {p50:.1f} | {p95:.1f} | {p95 / floor_p95:.1f}x | {target} |")
    lines.append(f"| server floor (waitress + Flask, fixed string) | {len(base['floor'])} | "
                 f"{np.percentile(base['floor'], 50):.1f} | {floor_p95:.1f} | 1.0x | |")
    publish("web", "\n".join(lines))


if __name__ == "__main__":
    main()
