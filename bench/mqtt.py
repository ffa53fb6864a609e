"""MQTT: latency from a stored call to its summary on the broker, and how fast the outbox
drains after an outage. Compared in the same run with plain paho-mqtt publishing straight
to the broker (no outbox: fast, but a message raised while the broker is away is lost).

    python bench/mqtt.py [--messages 5000] [--calls 200]

Needs Debian's mosquitto. Prints Markdown; saves bench/out/mqtt.md.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from accuracy import publish  # noqa: E402
from storedata import result  # noqa: E402

from appliance.bus import Bus  # noqa: E402
from appliance.config import load_settings  # noqa: E402
from appliance.mqtt.client import Publisher  # noqa: E402
from appliance.mqtt.feeds import Feeds  # noqa: E402
from appliance.mqtt.outbox import Outbox  # noqa: E402
from appliance.query import Queries  # noqa: E402
from appliance.store.database import Database  # noqa: E402

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def broker(work: Path, port: int) -> subprocess.Popen:
    cfg = work / "mosquitto.conf"
    cfg.write_text(f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n"
                   "max_queued_messages 0\nuser root\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(cfg)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection((HOST, port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


class Sink:
    """Subscriber noting when each message arrived."""

    def __init__(self, port: int, topic: str) -> None:
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.done = threading.Event()
        self.expect = 0
        self.ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sink{time.monotonic_ns()}")
        self.client.on_connect = lambda c, *a: c.subscribe(topic, 1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._msg
        self.client.connect(HOST, port)
        self.client.loop_start()
        self.ready.wait(10)

    def _msg(self, c, u, msg) -> None:
        self.count += 1
        key = msg.payload[:200].decode(errors="replace")
        self.arrived[key] = time.perf_counter()
        if self.count >= self.expect:
            self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def appliance_box(work: Path, port: int) -> tuple[Database, Outbox, Publisher, Feeds, Bus]:
    s = load_settings(environ={})
    s.paths.data_dir = work
    s.mqtt.host, s.mqtt.port, s.mqtt.box_id, s.mqtt.reconnect_max_s = HOST, port, "bench", 1
    db = Database(work)
    outbox = Outbox(db.outbox, 1_000_000, 24)
    pub = Publisher(s.mqtt, outbox)
    bus = Bus()
    feeds = Feeds(s, outbox, Queries(db, s), bus, lambda: {})
    return db, outbox, pub, feeds, bus


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mqtt-bench-"))
    port = free_port()
    proc = broker(work, port)
    rows = []
    try:
        # 1. latency: a stored call -> its summary at a subscriber
        db, outbox, pub, feeds, bus = appliance_box(work / "a", port)
        pub.start()
        pub.connected.wait(10)
        sink = Sink(port, "appliance/bench/calls")
        sink.expect = args.calls
        lat = []
        for i in range(args.calls):
            r = result(f"lat{i}", time.time() - 60)
            t0 = time.perf_counter()
            bus.publish("call.stored", result=r)
            while f"lat{i}" not in "".join(list(sink.arrived)[-3:]):
                time.sleep(0.0005)
            lat.append(time.perf_counter() - t0)
        sink.close()
        plain = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="plain")
        plain.connect(HOST, port)
        plain.loop_start()
        sink = Sink(port, "plain/calls")
        sink.expect = args.calls
        plat = []
        for i in range(args.calls):
            payload = f'{{"uid": "plain{i}"}}'
            t0 = time.perf_counter()
            plain.publish("plain/calls", payload, qos=1)
            while payload not in sink.arrived:
                time.sleep(0.0005)
            plat.append(time.perf_counter() - t0)
        sink.close()
        rows.append(("stored call -> summary at a subscriber (p50 / p95)",
                     f"{np.median(lat) * 1000:.1f} / {np.percentile(lat, 95) * 1000:.1f} ms",
                     f"{np.median(plat) * 1000:.2f} / {np.percentile(plat, 95) * 1000:.2f} ms",
                     f"{np.median(lat) / np.median(plat):.1f}x"))

        # 2. drain: messages raised while the broker was away, then it returns
        pub.stop(timeout=1)
        db.close()
        db, outbox, pub, feeds, bus = appliance_box(work / "b", free_port())   # nobody there
        t0 = time.perf_counter()
        for i in range(args.messages):
            feeds.raise_alert("disk_low", f"m{i}", n=i)
        queue_rate = args.messages / (time.perf_counter() - t0)
        pub.stop(timeout=0)
        db.close()
        db, outbox, pub, feeds, bus = appliance_box(work / "b", port)          # back
        sink = Sink(port, "appliance/bench/alerts")
        sink.expect = args.messages
        t0 = time.perf_counter()
        pub.start()
        sink.done.wait(300)
        drain = sink.count / (time.perf_counter() - t0)
        deadline = time.monotonic() + 10
        while len(outbox) and time.monotonic() < deadline:
            time.sleep(0.01)
        sink.close()
        pub.stop(timeout=1)
        db.close()
        sink = Sink(port, "plain/alerts")
        sink.expect = args.messages
        t0 = time.perf_counter()
        for i in range(args.messages):
            plain.publish("plain/alerts", f'{{"n": {i}}}', qos=1)
        sink.done.wait(300)
        plain_rate = sink.count / (time.perf_counter() - t0)
        sink.close()
        plain.disconnect()
        plain.loop_stop()
        rows.append(("outbox drain after an outage (messages/s, QoS 1, in order)",
                     f"{drain:,.0f}/s (queued at {queue_rate:,.0f}/s, each fsync'd)",
                     f"{plain_rate:,.0f}/s", f"{plain_rate / drain:.1f}x"))
    finally:
        proc.terminate()
        proc.wait()
    lines = ["## MQTT (`bench/mqtt.py`)", "",
             "| path | appliance (outbox, durable) | plain paho-mqtt (no outbox) | cost of durability |",
             "|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"Local mosquitto; {args.calls} calls, {args.messages} messages; "
              f"`python bench/mqtt.py --messages {args.messages} --calls {args.calls}`."]
    publish("mqtt", "\n".join(lines))


if __name__ == "__main__":
    main()
