"""The central side: subscribe to many boxes' retained KPI snapshots and availability, and
add them up per manager and for the whole fleet (``appliance fleet``)."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import paho.mqtt.client as paho

from ..kpi.figures import COUNTS

log = logging.getLogger(__name__)

SUMMED = [k for k in COUNTS if k != "decided"] + ["revenue"]


class Fleet:
    """Collects ``<prefix>/+/kpi/#`` and ``<prefix>/+/availability``."""

    def __init__(self, host: str, port: int = 1883, prefix: str = "appliance",
                 username: str = "", password: str = "", ca_file: str | None = None) -> None:
        self.prefix = prefix
        self.snapshots: dict[tuple[str, str, str], dict[str, Any]] = {}   # (box, group, name)
        self.availability: dict[str, str] = {}
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=f"appliance-fleet-{int(time.time())}")
        if username:
            self.client.username_pw_set(username, password or None)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.host, self.port = host, port

    def start(self) -> None:
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any = None) -> None:
        if reason.is_failure:
            log.error("fleet: broker refused the connection", extra={"reason": str(reason)})
            return
        client.subscribe([(f"{self.prefix}/+/kpi/#", 1), (f"{self.prefix}/+/availability", 1)])

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) < 3:
            return
        box = parts[1]
        with self._lock:
            if parts[2] == "availability":
                self.availability[box] = msg.payload.decode(errors="replace")
                return
            try:
                doc = json.loads(msg.payload)
            except ValueError:
                log.warning("fleet: not JSON", extra={"topic": msg.topic})
                return
            if not isinstance(doc, dict) or doc.get("v") != 1:
                return
            self.snapshots[(box, doc.get("group", ""), doc.get("name", ""))] = doc

    def summary(self, which: str = "this_month") -> dict[str, Any]:
        """Per manager (summed over the boxes they appear on) and for the fleet: the counts
        and revenue of ``this_month`` (or ``today``); boxes online."""
        managers: dict[str, dict[str, Any]] = {}
        fleet = {k: 0 for k in SUMMED}
        boxes: set[str] = set()
        with self._lock:
            snaps = list(self.snapshots.items())
            online = dict(self.availability)
        for (box, group, name), doc in snaps:
            figures = doc.get(which) or {}
            boxes.add(box)
            if group == "manager":
                m = managers.setdefault(name, {"boxes": [], **{k: 0 for k in SUMMED}})
                m["boxes"].append(box)
                for k in SUMMED:
                    m[k] += figures.get(k) or 0
            elif group == "office":
                for k in SUMMED:
                    fleet[k] += figures.get(k) or 0
        return {"boxes": sorted(boxes), "online": sorted(b for b, s in online.items() if s == "online"),
                "offline": sorted(b for b, s in online.items() if s != "online"),
                "managers": dict(sorted(managers.items())), "fleet": fleet, "period": which}
