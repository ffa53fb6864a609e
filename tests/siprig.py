"""Test rig for SIP: INVITE texts, a raw UDP user agent, kamailio, sipp and the appliance
daemon as real processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.simulate.rawsip import (HOST, RawUA, Response, free_port,  # noqa: F401
                                       invite, parse_response, sdp)
from waiting import wait_for
from appliance.sources.sip.workers import state_files
from appliance.system import sealing

HERE = Path(__file__).parent
DATA = HERE / "data" / "sip"


def metadata(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


# --- processes --------------------------------------------------------------------------

class Kamailio:
    """kamailio as the office PBX's registrar/proxy (no auth, in-memory location)."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = (DATA / "kamailio.cfg").read_text().replace("@PORT@", str(port))
        self.cfg = workdir / "kamailio.cfg"
        self.cfg.write_text(cfg)
        self.pidfile = workdir / "kamailio.pid"
        self.log = open(workdir / "kamailio.log", "ab")

    def start(self) -> None:
        subprocess.run(["kamailio", "-f", str(self.cfg), "-P", str(self.pidfile), "-Y",
                        str(self.workdir), "-E", "-w", str(self.workdir)], check=True,
                       stdout=self.log, stderr=self.log)
        ua = RawUA()
        try:
            assert wait_for(lambda: ua.options((HOST, self.port), timeout=0.5) is not None, 10), \
                "kamailio did not answer OPTIONS"
        finally:
            ua.close()

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10)
        self.pidfile.unlink(missing_ok=True)

    def registered(self, user: str) -> bool:
        """Whether the location table routes ``user`` (an OPTIONS reaches its contact)."""
        ua = RawUA()
        try:
            r = ua.options((HOST, self.port), ruri=f"sip:{user}@{HOST}:{self.port}", timeout=1.0)
        finally:
            ua.close()
        return r is not None and r.status == 200


@dataclass
class Box:
    """The appliance daemon (``appliance run``) as a child process."""

    workdir: Path
    sip_port: int
    rtp_port: int
    extra: str = ""
    asr: bool = False
    rtp_range: int = 400
    max_calls: int = 4
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    web_port: int = field(default_factory=lambda: free_port(socket.SOCK_STREAM))

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def addr(self) -> tuple[str, int]:
        return (HOST, self.sip_port)

    @property
    def uri(self) -> str:
        return f"sip:recorder@{HOST}:{self.sip_port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "box.toml"
        cfg.write_text(f"""
[paths]
data_dir = "{self.data}"
[inbox]
enabled = false
[asr]
enabled = {str(self.asr).lower()}
[sip]
bind_address = "{HOST}"
port = {self.sip_port}
rtp_port = {self.rtp_port}
rtp_port_range = {self.rtp_range}
max_calls = {self.max_calls}
{self.extra}
[web]
bind_address = "{HOST}"
port = {self.web_port}
""")
        self.log_path = self.workdir / "box.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "-c", str(cfg), "run"],
                                     stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.env}, start_new_session=True)
        ua = RawUA()
        workers = -(-self.max_calls // 4)
        expected = 1 if workers == 1 else workers
        try:        # up when SIP answers and every capture process has started
            ok = wait_for(lambda: self.proc.poll() is None and
                       ua.options(self.addr, timeout=0.5) is not None and
                       len(state_files(self.data)) >= expected, 120)
        finally:
            ua.close()
        assert ok, f"appliance did not start:\n{self.log_path.read_text()[-3000:]}"

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9

    def crash(self) -> None:
        """Power cut: SIGKILL the daemon and every process it started, at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        time.sleep(0.5)

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        ua = RawUA()
        try:    # a few tries: a flood may have filled the socket buffer (UDP drops, by design)
            return any(ua.options(self.addr, timeout=2.0) is not None for _ in range(3))
        finally:
            ua.close()

    def state(self) -> dict:
        """SIP state of the box: one process, or every capture worker merged."""
        merged: dict = {"registrations": [], "active_calls": [], "calls_finalized": 0}
        for path in state_files(self.data):
            try:
                part = json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            merged["registrations"] += part.get("registrations", [])
            merged["active_calls"] += part.get("active_calls", [])
            merged["calls_finalized"] += part.get("calls_finalized", 0)
        return merged

    def written(self) -> list[dict]:
        """Every call JSON on disk, complete or still waiting for its transcript."""
        out = []
        for p in sorted((self.data / "calls").glob("*/*.json")):
            if not p.name.endswith(".meta.json"):
                try:
                    out.append(sealing.read_json(p))      # sealed with [privacy] encrypt
                except FileNotFoundError:
                    continue
        return out

    def results(self) -> list[dict]:
        """The complete call JSONs (transcribed, tagged and scored)."""
        return [r for r in self.written() if r.get("asr", {}).get("status") != "pending"]

    def result_for(self, sip_call_id: str, timeout: float = 60) -> dict | None:
        found: list[dict] = []

        def look() -> bool:
            found[:] = [r for r in self.results()
                        if r["call"]["extra"].get("sip_call_id") == sip_call_id]
            return bool(found)
        wait_for(look, timeout)
        return found[0] if found else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def longest_call_s(self) -> float:
        """Seconds streamed so far by the longest call in progress (from the state files)."""
        calls = self.state().get("active_calls", [])
        return max((max(c["frames"].values(), default=0) * 0.02 for c in calls), default=0.0)


def start_src(target: str, wavs: list[Path], port: int, rtp_port: int, *args: str) -> subprocess.Popen:
    """The simulated recording client (a second pjsua2 endpoint) as a child process."""
    return subprocess.Popen([sys.executable, "-m", "appliance.simulate.src", target,
                             *map(str, wavs), "--port", str(port), "--rtp-port", str(rtp_port),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
