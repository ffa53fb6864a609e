"""A local MQTT broker for a box that has no central broker yet: Debian's mosquitto on
127.0.0.1 only, so the MQTT path (alerts, summaries, status, KPIs) works out of the box and
local tools can subscribe. Production settings point ``mqtt.host`` at the central broker,
and then none is started."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..system.process import spawn_child

log = logging.getLogger(__name__)


class EmbeddedBroker:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.folder = data_dir / "mosquitto"
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",   # loopback only
                 "persistence true", f"persistence_location {self.folder}/",
                 "log_dest stderr", "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            lines.append("user root")     # else it drops to 'mosquitto', who cannot write here
        path = self.folder / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout_s: float = 10.0) -> bool:
        """Start it and wait until it accepts connections; False (logged) when mosquitto is
        not installed or the port is taken: the appliance then runs without MQTT."""
        binary = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if os.path.exists(p)), None)
        if binary is None:
            log.warning("embedded mqtt broker not started", extra={
                "reason": "mosquitto is not installed", "hint": "apt install mosquitto, or set mqtt.host"})
            return False
        with socket.socket() as probe:        # a taken port would answer for mosquitto
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as exc:
                log.warning("embedded mqtt broker not started", extra={
                    "reason": f"127.0.0.1:{self.port}: {exc.strerror}",
                    "hint": "another broker listens there? set mqtt.host to it, or mqtt.embedded_port"})
                return False
        # mosquitto speaks sd_notify too: it must not tell systemd it is the service
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        self.proc = spawn_child([binary, "-c", str(self._config())], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
                log.warning("embedded mqtt broker not started", extra={
                    "reason": err.strip()[-300:] or f"exit {self.proc.returncode}",
                    "hint": f"port {self.port} taken? set mqtt.embedded_port or mqtt.host"})
                self.proc = None
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    log.info("embedded mqtt broker", extra={"address": f"127.0.0.1:{self.port}"})
                    return True
            except OSError:
                time.sleep(0.1)
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()             # SIGTERM: mosquitto saves its persistence
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
