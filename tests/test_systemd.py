"""The systemd integration: the unit passes `systemd-analyze verify` with no warning, the
sysusers and tmpfiles files create the user and directories, and the daemon speaks the
notify protocol (READY, WATCHDOG while alive, STOPPING) on a real notify socket."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from appliance.system.watchdog import feed_watchdog, notify, watchdog_interval

UNITS = Path(__file__).parent.parent / "systemd"
APPLIANCE = shutil.which("appliance") or str(Path(sys.executable).parent / "appliance")


def _verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    unit = tmp_path / "appliance.service"
    unit.write_text(unit_text)
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)


def test_unit_verifies_without_warnings(tmp_path):
    text = (UNITS / "appliance.service").read_text()
    for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=appliance",
                "ProtectSystem=strict", "ReadWritePaths=/var/lib/appliance", "NoNewPrivileges=true",
                "PrivateTmp=true", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"):
        assert key in text, key
    # the image runs the venv of the current slot; here, the one under test
    local = text.replace("/opt/appliance/current/venv/bin/appliance", APPLIANCE)
    out = _verify(local, tmp_path)
    assert out.returncode == 0 and "appliance.service" not in out.stderr, out.stderr
    bad = _verify(local.replace("ProtectSystem=strict", "ProtectSystem=stricter"), tmp_path)
    assert "protect system value" in bad.stderr           # the check can fail


FIRMWARE = UNITS.parent / "firmware" / "rootfs"


def test_image_units_verify_without_warnings(tmp_path):
    """First-boot set-up, the root updater and the update check (the image's programs
    replaced by the repository's copies, which is where they come from)."""
    names = ["appliance-firstboot.service", "appliance-update.path", "appliance-update.service",
             "appliance-update-check.service", "appliance-update-check.timer"]
    for name in names:
        text = (UNITS / name).read_text().replace("/usr/lib/appliance/", f"{FIRMWARE}/usr/lib/appliance/")
        (tmp_path / name).write_text(text)
    out = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in names)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "appliance" not in out.stderr, out.stderr
    check = (UNITS / "appliance-update-check.service").read_text()
    assert "/usr/bin/python3 -S -m slotcheck.slots" in check      # not the slot's virtualenv
    watch = (UNITS / "appliance-update.path").read_text()
    assert "PathExists=/var/lib/appliance/updates/pending.tar" in watch


def test_sysusers_and_tmpfiles_create_the_user_and_directories(tmp_path):
    (tmp_path / "etc").mkdir()
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(UNITS / "appliance.sysusers")],
                   check=True, capture_output=True, timeout=60)
    entry = next(line for line in (tmp_path / "etc" / "passwd").read_text().splitlines()
                 if line.startswith("appliance:"))
    uid = int(entry.split(":")[2])
    assert entry.endswith("/var/lib/appliance:/usr/sbin/nologin")
    subprocess.run(["systemd-tmpfiles", f"--root={tmp_path}", "--create",
                    str(UNITS / "appliance.tmpfiles")], check=True, capture_output=True, timeout=60)
    data = tmp_path / "var" / "lib" / "appliance"
    for path, mode in ((data, 0o750), (data / "secrets", 0o700)):
        st = path.stat()
        assert st.st_uid == uid and stat.S_IMODE(st.st_mode) == mode, path


class NotifySocket:
    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.5)
        self.got: list[str] = []

    def wait_for(self, field: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(field in m for m in self.got):
                return True
            try:
                self.got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        return any(field in m for m in self.got)


def test_notify_and_watchdog_helpers(tmp_path, monkeypatch):
    assert notify("READY=1") is False                      # not under systemd: nothing
    ns = NotifySocket(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", ns.path)
    assert notify("READY=1", "STATUS=up")
    assert ns.wait_for("STATUS=up", 2)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    assert watchdog_interval() == 0.1
    monkeypatch.setenv("WATCHDOG_PID", "1")                 # meant for another process
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    alive = threading.Event()
    alive.set()
    stop = threading.Event()
    t = threading.Thread(target=feed_watchdog, args=(alive.is_set, stop))
    t.start()
    assert ns.wait_for("WATCHDOG=1", 2)
    alive.clear()                                          # a worker died: feeding stops
    t.join(timeout=2)
    assert not t.is_alive() and ns.wait_for("worker thread died", 1)
    stop.set()


def test_daemon_reports_ready_feeds_the_watchdog_and_says_stopping(tmp_path):
    ns = NotifySocket(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, NOTIFY_SOCKET=ns.path, WATCHDOG_USEC="1000000",
               APPLIANCE_PATHS__DATA_DIR=str(tmp_path / "data"), APPLIANCE_ASR__ENABLED="false",
               APPLIANCE_SIP__ENABLED="false", APPLIANCE_WEB__PORT=str(port))
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert ns.wait_for("READY=1", 60), ns.got
        # the daemon's own READY names the panel; nothing else (the embedded broker) speaks
        assert ns.got == [f"READY=1\nSTATUS=recording; panel http://127.0.0.1:{port}"], ns.got
        ns.got.clear()
        assert ns.wait_for("WATCHDOG=1", 5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert ns.wait_for("STOPPING=1", 2)
