"""systemd's notify protocol (sd_notify) without a library: READY, STATUS, STOPPING and the
watchdog keep-alive, sent to ``$NOTIFY_SOCKET``. Outside systemd every call is a no-op."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Callable

log = logging.getLogger(__name__)


def notify(*fields: str) -> bool:
    """Send ``KEY=value`` lines to systemd; False when not run by systemd (or it failed)."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):                   # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(fields).encode(), address)
        return True
    except OSError as exc:
        log.warning("systemd notify failed", extra={"reason": str(exc)})
        return False


def watchdog_interval() -> float | None:
    """Seconds between keep-alives (half of ``WatchdogSec``), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def feed_watchdog(alive: Callable[[], bool], stop: threading.Event) -> None:
    """Send WATCHDOG=1 every half period while ``alive()``; when it turns false, stop
    feeding so systemd restarts the service."""
    interval = watchdog_interval()
    if interval is None:
        return
    while not stop.wait(interval):
        if alive():
            notify("WATCHDOG=1")
        else:
            log.error("watchdog not fed: a worker thread of the daemon died; systemd restarts it")
            notify("STATUS=a worker thread died; waiting for the watchdog restart")
            return
