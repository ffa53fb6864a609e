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
