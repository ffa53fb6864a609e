"""In-process events (a call stored, PBX records added, disk low ...).

Publishers never wait for subscribers: ``publish`` queues the event and one delivery thread
hands it to the subscribers in order, so the ingester never waits on the MQTT outbox's fsync.
A failing subscriber does not stop the others.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

BACKLOG_WARNING = 1000      # events waiting: a subscriber is stuck (logged once per crossing)


@dataclass(frozen=True)
class Event:
    topic: str                      # e.g. "call.stored", "cdr.added", "disk.low"
    data: dict[str, Any]
    ts: float = field(default_factory=time.time)


Handler = Callable[[Event], None]


class Bus:
    """Topic-prefix publish/subscribe with one delivery thread (started on first publish)."""

    def __init__(self) -> None:
        self._subs: list[tuple[str, Handler]] = []
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._warned = False

    def subscribe(self, prefix: str, handler: Handler) -> None:
        """Call ``handler`` for every event whose topic starts with ``prefix`` ('' = all)."""
        with self._lock:
            self._subs.append((prefix, handler))

    def publish(self, topic: str, **data: Any) -> None:
        """Queue an event for the subscribers; returns at once."""
        with self._lock:
            if not any(topic.startswith(p) for p, _ in self._subs):
                return                      # nobody listens: nothing to keep
            self._pending += 1
            if self._pending >= BACKLOG_WARNING and not self._warned:
                self._warned = True
                log.warning("events waiting for delivery", extra={"pending": self._pending})
            if self._thread is None:
                self._thread = threading.Thread(target=self._deliver, name="bus", daemon=True)
                self._thread.start()
        self._queue.put(Event(topic, data))

    @property
    def pending(self) -> int:
        """Events queued and not yet handed to every subscriber."""
        with self._lock:
            return self._pending

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is delivered (shutdown, tests); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the delivery thread."""
        self.drain(timeout)
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _deliver(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            with self._lock:
                subs = [h for p, h in self._subs if event.topic.startswith(p)]
            for handler in subs:
                try:
                    handler(event)
                except Exception:   # noqa: BLE001
                    log.exception("event handler failed", extra={"topic": event.topic})
            with self._idle:
                self._pending -= 1
                if self._pending < BACKLOG_WARNING // 2:
                    self._warned = False
                if self._pending == 0:
                    self._idle.notify_all()
