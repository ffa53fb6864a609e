"""In-process events (call started/ended, registration changed, ...): publishers never wait
for subscribers, and a failing subscriber does not stop the others."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    topic: str                      # e.g. "call.ended", "sip.registration"
    data: dict[str, Any]
    ts: float = field(default_factory=time.time)


Handler = Callable[[Event], None]


class Bus:
    def __init__(self) -> None:
        self._subs: list[tuple[str, Handler]] = []
        self._lock = threading.Lock()

    def subscribe(self, prefix: str, handler: Handler) -> None:
        """Call ``handler`` for every event whose topic starts with ``prefix`` ('' = all)."""
        with self._lock:
            self._subs.append((prefix, handler))

    def publish(self, topic: str, **data: Any) -> None:
        event = Event(topic, data)
        with self._lock:
            subs = [h for p, h in self._subs if topic.startswith(p)]
        for handler in subs:
            try:
                handler(event)
            except Exception:   # noqa: BLE001
                log.exception("event handler failed", extra={"topic": topic})
