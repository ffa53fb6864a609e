"""Background work yields the CPU to live capture."""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

BACKGROUND_NICE = 10


def lower_priority(nice: int = BACKGROUND_NICE) -> None:
    """Renice the calling thread (Linux: niceness is per thread, and inherited by threads it
    starts), so it yields the CPU to capture and DSP."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        log.warning("thread priority unchanged", extra={"reason": str(exc)})
