"""Waiting in tests: on a condition, never for a fixed time; and free ports on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable

from appliance.simulate.rawsip import free_port  # noqa: F401 - the one free-port helper


def wait_for(pred: Callable[[], object], timeout: float, step: float = 0.1) -> bool:
    """Whether ``pred()`` became true within ``timeout`` seconds (checked every ``step``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


class Heard(list):
    """Events of ``bus`` under ``prefix`` as (topic, data); ``now()`` waits until every
    event published so far is delivered (the bus delivers on its own thread)."""

    def __init__(self, bus, prefix: str = "") -> None:
        super().__init__()
        self.bus = bus
        bus.subscribe(prefix, lambda e: self.append((e.topic, e.data)))

    def now(self) -> list:
        assert self.bus.drain(timeout=60), "events still waiting for delivery after 60 s"
        return list(self)
