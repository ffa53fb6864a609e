"""CPU, memory and uptime of the box, read from /proc (Linux)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

_last: list[tuple[float, float]] = []       # (busy, total) jiffies at the previous reading
_lock = threading.Lock()


def _cpu_times() -> tuple[float, float]:
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [float(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def cpu_percent() -> float | None:
    """Busy share of all cores since the previous call (None on the first)."""
    busy, total = _cpu_times()
    with _lock:
        prev = _last[0] if _last else None
        _last[:] = [(busy, total)]
    if prev is None or total <= prev[1]:
        return None
    return round(100.0 * (busy - prev[0]) / (total - prev[1]), 1)


def _meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0]) * 1024
    return out


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def system_metrics() -> dict[str, Any]:
    """CPU use, load, memory of the box and of this process, uptime."""
    try:
        mem = _meminfo()
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        out: dict[str, Any] = {
            "cpu_percent": cpu_percent(), "cpus": os.cpu_count(), "load": list(os.getloadavg()),
            "memory_total_mb": round(mem.get("MemTotal", 0) / 2**20),
            "memory_available_mb": round(mem.get("MemAvailable", 0) / 2**20),
            "process_rss_mb": round(_rss() / 2**20, 1), "uptime_s": round(uptime)}
    except OSError:
        out = {}
    out["at"] = time.time()
    return out
