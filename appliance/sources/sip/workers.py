"""Scale-out of SIP capture: several capture processes behind one SIP address.

The pjsua2 wheel is built with ``PJSUA_MAX_CALLS = 4``: one process can hold four calls,
whatever ``UaConfig.maxCalls`` says. For more, the appliance runs ``ceil(max_calls / 4)``
capture workers (each a full ``SipEndpoint`` on a loopback SIP port, with its own slice of
RTP ports on the LAN address) behind a SIP front (``front.py``, kamailio) that owns the
public SIP port and hands each new call to a worker with room for it.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ...config import Settings
from ...system.process import spawn_child

log = logging.getLogger(__name__)

CALLS_PER_PROCESS = 4        # PJSUA_MAX_CALLS of the pjsua2-python 2.15.1 wheel
WORKER_HOST = "127.0.0.1"


def workers_needed(settings: Settings) -> int:
    return max(1, math.ceil(settings.sip.max_calls / CALLS_PER_PROCESS))


def worker_port(settings: Settings, index: int) -> int:
    return settings.sip.port + 1 + index


def worker_settings(settings: Settings, index: int, count: int) -> Settings:
    """The settings of capture worker ``index``: its SIP port on loopback, its RTP ports, its
    share of the calls; only worker 0 registers, with the front's address as Contact."""
    s = settings.model_copy(deep=True)
    sip = s.sip
    span = max(16, settings.sip.rtp_port_range // count)
    sip.rtp_port = settings.sip.rtp_port + index * span
    sip.rtp_port_range = span
    sip.max_calls = min(CALLS_PER_PROCESS, settings.sip.max_calls)
    sip.transports = ["udp"]
    sip.allowed_sources = ["127.0.0.0/8"]          # only the front talks to a worker
    if index != 0:
        sip.accounts = []
    s.inbox.enabled = False
    return s


class WorkerPool:
    """Starts the capture workers as child processes, restarts one that dies, stops them."""

    def __init__(self, settings: Settings, config_path: str | None, count: int,
                 on_death: Callable[[int], None] | None = None,
                 env: dict[str, str] | None = None) -> None:
        """``on_death(index)`` runs (on the watch thread) after a worker died and before it
        is restarted: the daemon recovers the calls it was recording. ``env``: added to the
        workers' environment (how to reach the daemon's recognizer)."""
        self.settings = settings
        self.env = env or {}
        self.on_death = on_death
        self.config_path = config_path
        self.count = count
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "appliance.cli"]
        if self.config_path:
            cmd += ["-c", self.config_path]
        cmd += ["run", "--sip-worker", str(index), "--sip-workers", str(self.count)]
        # workers log to the same stderr (the journal): one stream, tagged by process. Two
        # malloc arenas: a worker's many short-lived call threads would each get their own
        # and leave it fragmented, and there are 8 workers on a 4 GB box.
        return spawn_child(cmd, env={**os.environ, **self.env, "APPLIANCE_WORKER": str(index),
                                     "MALLOC_ARENA_MAX": "2"})

    def start(self) -> None:
        for i in range(self.count):
            self.procs[i] = self._spawn(i)
        log.info("capture workers started", extra={"workers": self.count,
                                                    "calls_per_worker": CALLS_PER_PROCESS})
        self._thread = threading.Thread(target=self._watch, name="sip-workers", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(2.0):
            for i, proc in list(self.procs.items()):
                rc = proc.poll()
                if rc is not None and not self._stop.is_set():
                    log.error("capture worker died; restarting", extra={"worker": i, "rc": rc})
                    if self.on_death is not None:
                        try:
                            self.on_death(i)
                        except Exception:   # noqa: BLE001 - restarting matters more
                            log.exception("recovery after worker death failed", extra={"worker": i})
                    try:
                        self.procs[i] = self._spawn(i)
                    except OSError as exc:   # out of memory or processes: try again next round
                        log.error("capture worker not restarted", extra={"worker": i,
                                                                         "reason": str(exc)})

    def stop(self, timeout: float = 150.0) -> None:
        self._stop.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for i, proc in self.procs.items():
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("capture worker did not stop; killed", extra={"worker": i})
                proc.kill()
                rc = proc.wait()
            if rc != 0:
                log.error("capture worker exit", extra={"worker": i, "rc": rc})


def state_files(data_dir: Path) -> list[Path]:
    """Every SIP state file: ``run/sip.json`` (one process) or ``run/sip-<i>.json``."""
    return sorted((data_dir / "run").glob("sip*.json"))
