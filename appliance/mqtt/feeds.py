"""What goes out over MQTT, and when: a summary and alerts per stored call, disk alerts as
they happen, and on timers the device status, missed calls never called back, and KPI
snapshots per manager, team and office."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from ..bus import Bus, Event
from ..config import Settings
from ..kpi.periods import current
from ..query import Queries, plan_alert
from ..system.health import recognition_backlog
from .messages import Topics, alert, box_id, call_alerts, call_summary, envelope
from .outbox import Outbox

log = logging.getLogger(__name__)

ALERTED_KEY = "mqtt.missed_alerted"
PLANS_ALERTED_KEY = "mqtt.plans_alerted"


class Feeds:
    def __init__(self, settings: Settings, outbox: Outbox, queries: Queries, bus: Bus,
                 status: Callable[[], dict[str, Any]]) -> None:
        self.settings = settings
        self.cfg = settings.mqtt
        self.outbox = outbox
        self.queries = queries
        self.status = status
        self.box = box_id(self.cfg)
        self.topics = Topics.of(self.cfg)
        self._registered: dict[str, bool] = {}
        self._asr_behind = False
        self._cdr_news = threading.Event()   # new PBX records: look for missed calls at once
        bus.subscribe("call.stored", self._on_call)
        bus.subscribe("cdr.", lambda _: self._cdr_news.set())
        bus.subscribe("disk.", self._on_disk)
        outbox.drop_note = self._drop_note

    # --- events ---
    def raise_alert(self, kind: str, message: str, severity: str = "warning",
                    ts: float | None = None, **detail: Any) -> None:
        self.outbox.put(self.topics.alerts, alert(self.box, kind, message, severity, ts, **detail),
                        qos=max(1, self.cfg.qos))

    def _drop_note(self, tally: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
        """The one alert that says what a full outbox dropped since its last summary."""
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(tally["kinds"].items()))
        limit = "outbox_max_messages" if tally["reason"] == "size" else "outbox_max_age_h"
        return self.topics.alerts, alert(
            self.box, "outbox_dropped", f"{tally['dropped']} unsent MQTT messages dropped "
            f"(mqtt.{limit} reached): {kinds}", "critical", tally["last_at"],
            dropped=tally["dropped"], kinds=tally["kinds"], reason=tally["reason"],
            first_at=tally["first_at"], last_at=tally["last_at"]), max(1, self.cfg.qos)

    def _on_call(self, event: Event) -> None:
        result = event.data["result"]
        call = result.get("call", {})
        ended = (call.get("started_at") or 0) + (result.get("duration_s") or 0)
        if time.time() - ended > self.cfg.outbox_max_age_h * 3600:
            return              # an old call found by reconciliation: not news
        self.outbox.put(self.topics.calls, call_summary(self.box, result, self.cfg.transcripts),
                        qos=self.cfg.qos)
        for a in call_alerts(self.box, result, self.settings.alerts.low_score):
            self.outbox.put(self.topics.alerts, a, qos=max(1, self.cfg.qos))

    def _on_disk(self, event: Event) -> None:
        d = event.data
        if event.topic == "disk.full":
            self.raise_alert("disk_full", d.get("message", "disk full"), "critical", event.ts,
                             free_mb=d.get("free_mb"))
        elif event.topic == "disk.low":
            self.raise_alert("disk_low", d.get("message", "disk low"), "warning", event.ts,
                             free_percent=d.get("free_percent"))

    # --- timers ---
    def publish_status(self) -> None:
        status = self.status()
        for reg in status.get("registrations", []):
            key = str(reg.get("account") or reg.get("uri") or reg.get("registrar"))
            was = self._registered.get(key)
            now = bool(reg.get("registered"))
            if was and not now:
                self.raise_alert("registration_lost", f"registration on the PBX lost ({key}): "
                                 f"{reg.get('reason') or reg.get('status')}", "critical",
                                 account=key, status=reg.get("status"))
            self._registered[key] = now
        keeping_up, detail = recognition_backlog(self.settings, status)
        if not keeping_up and not self._asr_behind:
            self.raise_alert("asr_behind", f"speech recognition falling behind: {detail}",
                             "warning", queue=status.get("asr_queue", 0),
                             backlog=status.get("asr_backlog") or {})
        self._asr_behind = not keeping_up
        self.outbox.put(self.topics.status, envelope(self.box, **status), qos=self.cfg.qos,
                        retain=True)
        self.publish_store_damage()

    def publish_store_damage(self) -> None:
        """A critical alert per store problem that lost data, once (kept across restarts)."""
        damage = self.queries.db.damage
        self.queries.db.check()
        todo = damage.unalerted()
        for entry in todo:
            self.raise_alert("store_damaged", f"stored data lost: {entry['problem']}", "critical",
                             entry["at"], problem=entry["problem"])
        if todo:
            damage.alerted(todo)

    def publish_missed(self, now: float | None = None) -> int:
        """An alert per missed call whose callback window closed with no callback."""
        now = time.time() if now is None else now
        db = self.queries.db
        stored = list((db.settings.get(ALERTED_KEY) or {}).get("groups", []))   # oldest first
        seen = set(stored)
        new = []
        today = current("day", now)
        for day in (today.shifted(-2), today.shifted(-1), today):
            for m in self.queries.missed(day.name, status="never", now=now):
                if m["group"] in seen:
                    continue
                new.append(m["group"])
                self.raise_alert("missed_not_called_back",
                                 f"missed call from {m['client']} not called back",
                                 "warning", m["start"], client=m["client"], rung=m["rung"],
                                 group=m["group"])
        if new:
            keep = (stored + new)[-5000:]          # the oldest are forgotten first
            db.settings.put(ALERTED_KEY, {"groups": keep})
        return len(new)

    def publish_plans(self, now: float | None = None) -> int:
        """An alert per plan that falls behind, once a period (the panel's rule: the
        plan's progress in ``Queries.plans``)."""
        now = time.time() if now is None else now
        db = self.queries.db
        stored = list((db.settings.get(PLANS_ALERTED_KEY) or {}).get("keys", []))   # oldest first
        seen = set(stored)
        new = []
        for p in self.queries.plans(now):
            key = f"{p['id']}@{p['period']}"
            if p["status"] != "behind" or key in seen:
                continue
            new.append(key)
            a = plan_alert(p, now)
            self.raise_alert("plan_behind", f"{p['who']} behind the {p['kind']}ly plan: "
                             f"{p['metric']} {p['value']} of {p['target']:g}, forecast "
                             f"{p['forecast']}", "warning", now,
                             **{k: a[k] for k in ("agent", "team", "plan", "period", "metric",
                                                  "value", "target", "forecast")})
        if new:
            db.settings.put(PLANS_ALERTED_KEY, {"keys": (stored + new)[-2000:]})
        return len(new)

    def publish_kpis(self, now: float | None = None) -> None:
        """Retained snapshots: today's and this month's figures per manager, team, office."""
        now = time.time() if now is None else now
        day = self.queries.kpis(current("day", now), now)
        month = self.queries.kpis(current("month", now), now)
        for group, key in (("managers", "manager"), ("teams", "team")):
            for name in sorted(set(day[group]) | set(month[group])):
                self.outbox.put(self.topics.kpi(key, name), envelope(
                    self.box, now, group=key, name=name, day=day["period"],
                    month=month["period"], today=day[group].get(name),
                    this_month=month[group].get(name)), qos=self.cfg.qos, retain=True)
        self.outbox.put(self.topics.kpi("office"), envelope(
            self.box, now, group="office", day=day["period"], month=month["period"],
            today=day["office"], this_month=month["office"]), qos=self.cfg.qos, retain=True)

    def publish_discovery(self) -> None:
        """Home Assistant MQTT discovery: the device's sensors read the retained status."""
        device = {"identifiers": [f"appliance_{self.box}"], "name": f"Call recorder {self.box}",
                  "manufacturer": "call-appliance"}
        sensors = {
            "active_calls": ("Active calls", "{{ value_json.active_calls }}", None),
            "asr_queue": ("Recognition queue", "{{ value_json.asr_queue }}", None),
            "disk_free": ("Disk free", "{{ value_json.disk.free_percent }}", "%"),
            "outbox": ("MQTT outbox", "{{ value_json.mqtt_outbox }}", None),
        }
        for key, (name, template, unit) in sensors.items():
            config: dict[str, Any] = {
                "name": name, "unique_id": f"appliance_{self.box}_{key}",
                "state_topic": self.topics.status, "value_template": template,
                "availability_topic": self.topics.availability, "device": device}
            if unit:
                config["unit_of_measurement"] = unit
            self.outbox.put(f"{self.cfg.ha_prefix}/sensor/appliance_{self.box}/{key}/config",
                            config, qos=1, retain=True)
        self.outbox.put(f"{self.cfg.ha_prefix}/binary_sensor/appliance_{self.box}/registered/config",
                        {"name": "Registered on the PBX", "unique_id": f"appliance_{self.box}_registered",
                         "state_topic": self.topics.status, "device_class": "connectivity",
                         "value_template": "{{ 'ON' if value_json.registered else 'OFF' }}",
                         "availability_topic": self.topics.availability, "device": device},
                        qos=1, retain=True)

    def run(self, stop: threading.Event) -> None:
        if self.cfg.ha_discovery:
            self.publish_discovery()
        next_status = next_kpi = 0.0
        while not stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_status:
                    self.publish_status()
                    next_status = now + self.cfg.status_interval_s
                if now >= next_kpi:
                    self._cdr_news.clear()
                    self.publish_missed()
                    self.publish_kpis()
                    self.publish_plans()
                    next_kpi = now + self.cfg.kpi_interval_s
                elif self._cdr_news.is_set():
                    self._cdr_news.clear()
                    self.publish_missed()
            except OSError as exc:          # a full disk: the outbox cannot grow
                log.error("mqtt feed failed", extra={"reason": str(exc)})
            stop.wait(max(0.2, min(next_status, next_kpi, time.monotonic() + 1.0) - time.monotonic()))
