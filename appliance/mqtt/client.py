"""The connection to the broker: connects (TLS, credentials, MQTT 3.1.1 or 5), announces
availability with a retained last will, and drains the outbox in order.

A message leaves the outbox only when the broker acknowledged it (PUBACK/PUBCOMP; for QoS 0,
once written to the socket). Delivery is at least once: after a restart, messages sent but
not acknowledged go again (payloads carry an ``id`` to de-duplicate). A refused connection
(wrong password, TLS failure) is logged with what to fix, and retried with growing waits;
it never stops the appliance.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as paho

from ..config import MqttSettings
from .messages import Topics, box_id
from .outbox import Outbox

log = logging.getLogger(__name__)
UNREACHABLE_LOG_EVERY_S = 600.0      # while the broker stays away: one line in ten minutes

WINDOW = 200           # messages handed to the client library and not yet acknowledged
ACK_BATCH_S = 0.05     # acknowledged messages leave the outbox in batches (one fsync each)

HINTS = {
    "Bad user name or password": "check mqtt.username and mqtt.password",
    "Not authorized": "the broker refuses this client: check its ACL and mqtt.username",
    "Client identifier not valid": "set mqtt.client_id",
}


class Publisher:
    def __init__(self, cfg: MqttSettings, outbox: Outbox) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.topics = Topics.of(cfg)
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.failed_attempts = 0              # connection attempts failed since the last success
        self._unreachable_logged = -UNREACHABLE_LOG_EVERY_S    # when it was last said
        self._inflight: dict[int, int] = {}          # mid -> outbox seq
        self._acked: list[int] = []
        self._last_handed = 0
        self._early: set[int] = set()                # acknowledged before publish() returned
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="mqtt-drain", daemon=True)
        self.client = self._make_client()

    def _make_client(self) -> paho.Client:
        cfg = self.cfg
        protocol = paho.MQTTv5 if cfg.protocol == "5" else paho.MQTTv311
        client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id=cfg.client_id or f"appliance-{box_id(cfg)}",
                             protocol=protocol)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password or None)
        if cfg.tls:
            client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                           certfile=str(cfg.cert_file) if cfg.cert_file else None,
                           keyfile=str(cfg.key_file) if cfg.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, cfg.reconnect_max_s)
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        return client

    # --- lifecycle ---
    def start(self) -> None:
        log.info("mqtt connecting", extra={"broker": f"{self.cfg.host}:{self.cfg.port}",
                                           "tls": self.cfg.tls, "topics": self.topics.base})
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Drain what the broker can take within ``timeout``, say 'offline', disconnect."""
        deadline = time.monotonic() + timeout
        while self.connected.is_set() and len(self.outbox) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self.outbox.ready.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._flush_acks()
        if self.connected.is_set():
            info = self.client.publish(self.topics.availability, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    # --- callbacks (the client library's network thread) ---
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any = None) -> None:
        if reason.is_failure:
            text = str(reason)
            self.last_error = text
            self.failed_attempts += 1
            log.error("mqtt connection refused", extra={
                "reason": text, "broker": f"{self.cfg.host}:{self.cfg.port}",
                "hint": HINTS.get(text, "check the broker's log"),
                "retry": f"up to every {self.cfg.reconnect_max_s} s"})
            return
        self.last_error = None
        self.failed_attempts = 0
        self._unreachable_logged = -UNREACHABLE_LOG_EVERY_S     # a new outage is said at once
        client.publish(self.topics.availability, "online", qos=1, retain=True)
        # Messages handed over and not yet acknowledged are resent by the client library
        # itself (it keeps them across reconnections); handing them again would duplicate.
        self.connected.set()
        self.outbox.ready.set()
        log.info("mqtt connected", extra={"broker": f"{self.cfg.host}:{self.cfg.port}",
                                          "queued": len(self.outbox)})

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        """The broker could not be reached at all (paho retries, with backoff): said at the
        first failure, then every ``UNREACHABLE_LOG_EVERY_S`` while it lasts."""
        self.failed_attempts += 1
        self.last_error = "broker unreachable"
        now = time.monotonic()
        if now - self._unreachable_logged >= UNREACHABLE_LOG_EVERY_S:
            self._unreachable_logged = now
            log.warning("mqtt broker unreachable", extra={
                "broker": f"{self.cfg.host}:{self.cfg.port}", "attempts": self.failed_attempts,
                "queued": len(self.outbox), "retry": f"up to every {self.cfg.reconnect_max_s} s",
                "hint": "check the address, the network and that the broker runs; messages "
                        "wait in the outbox meanwhile"})

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any = None) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was:
            log.warning("mqtt disconnected", extra={"reason": str(reason),
                                                    "queued": len(self.outbox)})

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any = None) -> None:
        with self._lock:
            seq = self._inflight.pop(mid, None)
            if seq is not None:
                self._acked.append(seq)
            else:
                self._early.add(mid)

    # --- draining ---
    def _flush_acks(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
        if acked:
            self.outbox.ack(acked)

    def _drain(self) -> None:
        flushed = 0.0
        while not self._stop.is_set():
            self.outbox.ready.wait(ACK_BATCH_S)
            if time.monotonic() - flushed >= ACK_BATCH_S:
                self._flush_acks()              # one durable write per batch of PUBACKs
                flushed = time.monotonic()
            if not self.connected.is_set():
                continue
            with self._lock:
                room = WINDOW - len(self._inflight)
                after = self._last_handed
            if room <= 0:
                time.sleep(0.002)
                continue
            batch = self.outbox.pending(after=after, limit=room)
            if not batch:
                self.outbox.ready.clear()
                continue
            for seq, msg in batch:
                # Not under self._lock: the library calls _on_publish holding its own lock.
                info = self.client.publish(msg["topic"], msg["payload"], qos=msg["qos"],
                                           retain=msg["retain"])
                if info.rc == paho.MQTT_ERR_NO_CONN and msg["qos"] > 0:
                    pass             # kept by the library and sent on reconnection
                elif info.rc != paho.MQTT_ERR_SUCCESS:
                    break            # QoS 0 while disconnected: offered again later
                with self._lock:
                    self._last_handed = seq
                    if info.mid in self._early:          # acknowledged already
                        self._early.discard(info.mid)
                        self._acked.append(seq)
                    else:
                        self._inflight[info.mid] = seq
